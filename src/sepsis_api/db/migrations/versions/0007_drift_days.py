"""Drift counts of whole past days, kept in the database (``drift_days``).

Counting a day's estimates against the card's bins is one aggregate over every row of the day;
a day that is over never changes, so its counts are written once and read back by every worker
process and after a restart instead of being counted again.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "drift_days",
        sa.Column("model_version", sa.String(64), primary_key=True),
        sa.Column("model_name", sa.String(64), primary_key=True),
        sa.Column("reference", sa.String(64), primary_key=True),
        sa.Column("day", sa.Date(), primary_key=True),
        sa.Column("counts", sa.JSON(), nullable=False),
        sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("drift_days")
