"""Each prediction's current outcome beside it: ``predictions.outcome``.

The performance figures read every estimate of a model with its current outcome. Found through
the outcomes table, that is a join of a million rows with a million (and a look for a later
revision of each): about 1 s on SQLite and 2 s on PostgreSQL before a row is sent. Kept on the
prediction's row, it is one scan. The outcomes table stays the append-only history;
``db/outcomes.py`` sets the column in the transaction that adds the revision, so it always
equals the latest revision's outcome (NULL: none recorded). The audit insert does not write it.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

LATEST = (
    "SELECT o.outcome FROM outcomes o WHERE o.prediction_id = predictions.id "
    "ORDER BY o.revision DESC LIMIT 1"
)


# PostgreSQL: one pass over the outcomes joined to the predictions, not a look-up per row.
LATEST_POSTGRESQL = (
    "UPDATE predictions SET outcome = c.outcome FROM (SELECT DISTINCT ON (prediction_id) "
    "prediction_id, outcome FROM outcomes ORDER BY prediction_id, revision DESC) AS c "
    "WHERE predictions.id = c.prediction_id"
)


def upgrade() -> None:
    op.add_column("predictions", sa.Column("outcome", sa.String(16), nullable=True))
    if op.get_bind().dialect.name == "postgresql":
        op.execute(LATEST_POSTGRESQL)
    else:
        op.execute(
            f"UPDATE predictions SET outcome = ({LATEST}) "
            "WHERE id IN (SELECT prediction_id FROM outcomes)"
        )


def downgrade() -> None:
    with op.batch_alter_table("predictions") as batch:
        batch.drop_column("outcome")
