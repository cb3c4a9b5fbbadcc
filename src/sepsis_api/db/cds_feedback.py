"""CDS Hooks feedback on cards: accepted or overridden, one transaction per call.

A card's uuid is the id of the estimate it shows (a prediction the CDS service audited), so
feedback names predictions. Feedback is kept as sent; the same outcome of the same card at the
same time is stored once (a CDS client's retry), whichever of two racing writers wins.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, Insert, select

from sepsis_api.db.models import Base, CDSFeedback, Prediction
from sepsis_api.db.session import insert_new
from sepsis_api.ids import new_id

IN_LIST = 1_000  # ids per IN (...) list


@dataclass(frozen=True)
class FeedbackIn:
    """One feedback item as sent (``outcome_at`` aware, any zone)."""

    card: str
    outcome: str  # accepted | overridden
    outcome_at: datetime
    override_system: str | None = None
    override_code: str | None = None
    override_display: str | None = None
    user_comment: str | None = None
    accepted_suggestions: list[str] | None = field(default=None)


class UnknownCards(LookupError):
    """Some items name cards this service did not issue to this caller; nothing was stored."""

    def __init__(self, rows: list[int], cards: list[str], source: str) -> None:
        super().__init__(
            f"no card with uuid {cards[0]!r} was issued by this CDS service to this caller"
            + (" (and more)" if cards[1:] else "")
        )
        self.rows, self.cards, self.source = rows, cards, source


def _utc(t: datetime) -> datetime:
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


class FeedbackLog:
    """The cds_feedback table of the audit database (``engine`` is the audit log's)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def record(
        self, service: str, items: Sequence[FeedbackIn], recorded_by: str, *, source: str
    ) -> list[bool]:
        """Store every item or none; per item whether it was new (False: stored before).
        Raises UnknownCards before writing when a card is not an estimate of ``source``
        requested by ``recorded_by``."""
        with self.engine.begin() as conn:
            self._check(conn, items, recorded_by, source)
            now = datetime.now(UTC)
            stored = []
            for item in items:
                row = {
                    "id": new_id(),
                    "card": item.card,
                    "service": service,
                    "outcome": item.outcome,
                    "outcome_at": _utc(item.outcome_at),
                    "override_system": item.override_system,
                    "override_code": item.override_code,
                    "override_display": item.override_display,
                    "user_comment": item.user_comment,
                    "accepted_suggestions": item.accepted_suggestions,
                    "recorded_at": now,
                    "recorded_by": recorded_by,
                }
                # RETURNING, not rowcount: the PostgreSQL driver reports -1 for this statement
                stored.append(conn.execute(self._insert().values(row)).first() is not None)
            return stored

    def _insert(self) -> Insert:
        """INSERT that skips a row already stored (the unique card, outcome, time index)."""
        table = Base.metadata.tables[CDSFeedback.__tablename__]
        return insert_new(self.engine, table).returning(table.c.id)

    @staticmethod
    def _check(conn: Connection, items: Sequence[FeedbackIn], caller: str, source: str) -> None:
        cards = list(dict.fromkeys(i.card for i in items if "\x00" not in i.card))
        issued: set[str] = set()
        for start in range(0, len(cards), IN_LIST):
            chunk = cards[start : start + IN_LIST]
            issued.update(
                conn.scalars(
                    select(Prediction.id).where(
                        Prediction.id.in_(chunk),
                        Prediction.source == source,
                        Prediction.caller == caller,
                    )
                )
            )
        unknown = [n for n, item in enumerate(items) if item.card not in issued]
        if unknown:
            raise UnknownCards(unknown, [items[n].card for n in unknown], source)

    def of_cards(self, cards: Sequence[str]) -> list[dict[str, Any]]:
        """The feedback stored for ``cards``, oldest first (times as aware UTC)."""
        table = Base.metadata.tables[CDSFeedback.__tablename__]
        q = select(table).where(table.c.card.in_(list(cards))).order_by(table.c.id)
        with self.engine.connect() as conn:
            rows = [dict(r._mapping) for r in conn.execute(q)]
        for row in rows:
            row["outcome_at"] = _utc(row["outcome_at"])
            row["recorded_at"] = _utc(row["recorded_at"])
        return rows
