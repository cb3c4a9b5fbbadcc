"""The ``drift_days`` table: drift counts of whole past days, written once, read by all."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import Engine, select

from sepsis_api.db.models import DriftDay
from sepsis_api.db.session import insert_new


class DriftDays:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def load(
        self, model_version: str, model_name: str, reference: str, first: date, last: date
    ) -> dict[date, dict[str, Any]]:
        """The stored counts of the days from ``first`` to ``last`` (inclusive) that have them."""
        q = select(DriftDay.day, DriftDay.counts).where(
            DriftDay.model_version == model_version,
            DriftDay.model_name == model_name,
            DriftDay.reference == reference,
            DriftDay.day >= first,
            DriftDay.day <= last,
        )
        with self.engine.connect() as conn:
            return {day: counts for day, counts in conn.execute(q)}

    def store(
        self,
        model_version: str,
        model_name: str,
        reference: str,
        days: dict[date, dict[str, Any]],
    ) -> None:
        """Keep the counts of ``days``, in one transaction; a day another process stored first
        is left as it is (its counts are the same)."""
        if not days:
            return
        now = datetime.now(UTC)
        rows = [
            {
                "model_version": model_version,
                "model_name": model_name,
                "reference": reference,
                "day": day,
                "counts": counts,
                "computed_at": now,
            }
            for day, counts in days.items()
        ]
        with self.engine.begin() as conn:
            conn.execute(insert_new(self.engine, DriftDay), rows)
