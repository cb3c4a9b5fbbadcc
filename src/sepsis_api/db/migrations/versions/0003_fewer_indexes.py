"""Drop the label, model version and (model name, version) indexes.

Every row is written once and the history reads newest first by id, so an index pays only
where it narrows a search a lot: patient id and time. A label (two values), a model name or a
model version (a handful, the served one on most rows) matches a large share of the rows;
walking the id order and filtering finds a page about as quickly, and each of these indexes
cost 10-25% of a 10,000-patient batch insert.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_predictions_label", table_name="predictions")
    op.drop_index("ix_predictions_model", table_name="predictions")
    op.drop_index("ix_predictions_model_version", table_name="predictions")


def downgrade() -> None:
    op.create_index("ix_predictions_label", "predictions", ["label"])
    op.create_index("ix_predictions_model", "predictions", ["model_name", "model_version"])
    op.create_index("ix_predictions_model_version", "predictions", ["model_version"])
