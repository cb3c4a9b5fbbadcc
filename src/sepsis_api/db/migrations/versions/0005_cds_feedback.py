"""CDS Hooks feedback: accepted or overridden per card (a card's uuid is its estimate's id).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "cds_feedback",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("card", sa.String(36), sa.ForeignKey("predictions.id"), nullable=False),
        sa.Column("service", sa.String(64), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("outcome_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("override_system", sa.String(256), nullable=True),
        sa.Column("override_code", sa.String(128), nullable=True),
        sa.Column("override_display", sa.String(256), nullable=True),
        sa.Column("user_comment", sa.Text(), nullable=True),
        sa.Column("accepted_suggestions", sa.JSON(), nullable=True),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("recorded_by", sa.String(64), nullable=False),
    )
    op.create_index(
        "ix_cds_feedback_card_outcome_at",
        "cds_feedback",
        ["card", "outcome", "outcome_at"],
        unique=True,
    )


def downgrade() -> None:
    op.drop_table("cds_feedback")
