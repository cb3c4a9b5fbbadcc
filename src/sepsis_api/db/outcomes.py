"""Outcomes recorded against estimates: append-only revisions, one transaction per call.

A prediction's current outcome is its highest revision; earlier revisions are kept. Sending the
current outcome again (same outcome, observed_at, source and note) adds nothing. The current
outcome is also copied onto the prediction's row (``predictions.outcome``, in the same
transaction), where the performance figures read it without a join.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, RowMapping, bindparam, insert, select, update
from sqlalchemy.exc import IntegrityError

from sepsis_api.db.models import Base, Outcome, Prediction
from sepsis_api.ids import new_id

IN_LIST = 1_000  # ids per IN (...) list
ATTEMPTS = 3  # a writer that lost a race for a revision number reads again and retries
_COMPARED = ("outcome", "observed_at", "source", "note")


@dataclass(frozen=True)
class OutcomeIn:
    """One outcome as sent; ``observed_at`` aware (any zone), text fields None when absent."""

    prediction_id: str
    outcome: str
    observed_at: datetime | None = None
    source: str | None = None
    note: str | None = None


class UnknownPredictions(LookupError):
    """Some outcomes name predictions the audit log does not hold; nothing was recorded."""

    def __init__(self, rows: list[int], ids: list[str]) -> None:
        super().__init__(f"no prediction with id {ids[0]!r}" + (" (and more)" if ids[1:] else ""))
        self.rows, self.ids = rows, ids  # positions in the call, and their ids


def _chunks(ids: Sequence[str]) -> Iterator[Sequence[str]]:
    for start in range(0, len(ids), IN_LIST):
        yield ids[start : start + IN_LIST]


def _utc(t: datetime | None) -> datetime | None:
    """A stored time as an aware UTC datetime (SQLite keeps naive UTC)."""
    if t is None:
        return None
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


def _revision(mapping: RowMapping) -> dict[str, Any]:
    row = dict(mapping)
    row["observed_at"] = _utc(row["observed_at"])
    row["recorded_at"] = _utc(row["recorded_at"])
    return row


class OutcomeLog:
    """The outcomes table of the audit database (``engine`` is the audit log's)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def record(
        self, items: Sequence[OutcomeIn], recorded_by: str
    ) -> list[tuple[dict[str, Any], bool]]:
        """Record every item or none, in order; per item (the prediction's current revision
        afterwards with its ``revisions`` count, whether this item added it). Raises
        UnknownPredictions before writing anything when any prediction id is unknown."""
        for attempt in range(ATTEMPTS):
            try:
                with self.engine.begin() as conn:
                    return self._record(conn, items, recorded_by)
            except IntegrityError:  # another writer took a revision number first
                if attempt == ATTEMPTS - 1:
                    raise
        raise AssertionError("unreachable")

    def _record(
        self, conn: Connection, items: Sequence[OutcomeIn], recorded_by: str
    ) -> list[tuple[dict[str, Any], bool]]:
        ids = list(dict.fromkeys(item.prediction_id for item in items))
        known = self._known(conn, ids)
        unknown = [i for i, item in enumerate(items) if item.prediction_id not in known]
        if unknown:
            raise UnknownPredictions(unknown, [items[i].prediction_id for i in unknown])
        current = self._current(conn, ids)
        now = datetime.now(UTC)
        added: list[dict[str, Any]] = []
        results: list[tuple[dict[str, Any], bool]] = []
        for item in items:
            wanted = {
                "outcome": item.outcome,
                "observed_at": _utc(item.observed_at),
                "source": item.source,
                "note": item.note,
            }
            cur = current.get(item.prediction_id)
            if cur is not None and all(cur[k] == wanted[k] for k in _COMPARED):
                results.append((cur, False))
                continue
            row = {
                "id": new_id(),
                "prediction_id": item.prediction_id,
                "revision": cur["revision"] + 1 if cur else 1,
                **wanted,
                "recorded_at": now,
                "recorded_by": recorded_by,
            }
            added.append(row)
            current[item.prediction_id] = {**row, "revisions": row["revision"]}
            results.append((current[item.prediction_id], True))
        if added:
            conn.execute(insert(Outcome), added)
            # The copy on the prediction's row (what performance reads), in this transaction:
            # a writer racing for the same revision number fails on the insert above first.
            latest = {r["prediction_id"]: r["outcome"] for r in added}
            table = Base.metadata.tables[Prediction.__tablename__]
            conn.execute(
                update(table)
                .where(table.c.id == bindparam("pid"))
                .values(outcome=bindparam("current")),
                [{"pid": pid, "current": o} for pid, o in latest.items()],
            )
        return results

    def known(self, ids: Sequence[str]) -> set[str]:
        """The ids among ``ids`` of recorded predictions."""
        with self.engine.connect() as conn:
            return self._known(conn, list(dict.fromkeys(ids)))

    @staticmethod
    def _known(conn: Connection, ids: Sequence[str]) -> set[str]:
        found: set[str] = set()
        ids = [i for i in ids if "\x00" not in i]  # never an id; PostgreSQL refuses NUL
        for chunk in _chunks(ids):
            found.update(conn.scalars(select(Prediction.id).where(Prediction.id.in_(chunk))))
        return found

    def current(self, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """Prediction id -> its current revision with ``revisions`` (their count), for the ids
        that have an outcome."""
        with self.engine.connect() as conn:
            return self._current(conn, list(dict.fromkeys(ids)))

    def revisions(self, prediction_id: str) -> list[dict[str, Any]]:
        """Every revision of a prediction's outcome, oldest first."""
        q = (
            select(Outcome.__table__)
            .where(Outcome.prediction_id == prediction_id)
            .order_by(Outcome.revision)
        )
        with self.engine.connect() as conn:
            return [_revision(r._mapping) for r in conn.execute(q)]

    @staticmethod
    def _current(conn: Connection, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        for chunk in _chunks(ids):
            q = (
                select(Outcome.__table__)
                .where(Outcome.prediction_id.in_(chunk))
                .order_by(Outcome.prediction_id, Outcome.revision)
            )
            for r in conn.execute(q):  # revisions are numbered 1, 2, ...: the last is the count
                row = _revision(r._mapping)
                found[row["prediction_id"]] = {**row, "revisions": row["revision"]}
        return found
