"""The audit log: write estimates in one transaction, read them back newest first."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, insert, select, text, update

from sepsis_api.db import migrate
from sepsis_api.db.models import ActiveVersion, Prediction
from sepsis_api.db.session import make_engine

if TYPE_CHECKING:
    from sepsis_api.config import Settings

@dataclass(frozen=True)
class HistoryFilter:
    patient_id: str | None = None
    label: str | None = None
    model_version: str | None = None
    model_name: str | None = None
    since: datetime | None = None
    until: datetime | None = None


class AuditLog:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def record(self, rows: list[dict[str, Any]]) -> None:
        """Commit all rows or none; returns only once they are durable in the database."""
        with self.engine.begin() as conn:
            conn.execute(insert(Prediction), rows)

    def active_version(self) -> str | None:
        """The version set by `models activate` (shared by all replicas), if any."""
        with self.engine.connect() as conn:
            return conn.execute(select(ActiveVersion.version).where(ActiveVersion.id == 1)
                                ).scalar_one_or_none()

    def set_active_version(self, version: str, by: str) -> None:
        row = {"version": version, "activated_at": datetime.now(UTC), "activated_by": by}
        with self.engine.begin() as conn:
            done = conn.execute(update(ActiveVersion).where(ActiveVersion.id == 1).values(**row))
            if done.rowcount == 0:
                conn.execute(insert(ActiveVersion).values(id=1, **row))

    def ping(self) -> None:
        with self.engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    def page(self, flt: HistoryFilter, *, limit: int, before: str | None = None
             ) -> list[dict[str, Any]]:
        """Up to ``limit`` records newest first, strictly older than the id ``before``."""
        q = select(Prediction.__table__).order_by(Prediction.id.desc()).limit(limit)
        if before:
            q = q.where(Prediction.id < before)
        for column, value in (
            (Prediction.patient_id, flt.patient_id), (Prediction.label, flt.label),
            (Prediction.model_version, flt.model_version), (Prediction.model_name, flt.model_name),
        ):
            if value is not None:
                q = q.where(column == value)
        if flt.since is not None:
            q = q.where(Prediction.created_at >= self._stored_time(flt.since))
        if flt.until is not None:
            q = q.where(Prediction.created_at < self._stored_time(flt.until))
        with self.engine.connect() as conn:
            return [self._row(r._mapping) for r in conn.execute(q)]

    def get(self, prediction_id: str) -> dict[str, Any] | None:
        q = select(Prediction.__table__).where(Prediction.id == prediction_id)
        with self.engine.connect() as conn:
            row = conn.execute(q).first()
        return self._row(row._mapping) if row else None

    def _stored_time(self, t: datetime) -> datetime:
        # SQLite keeps no zone: times are stored as naive UTC there.
        t = t.astimezone(UTC)
        return t.replace(tzinfo=None) if self.engine.dialect.name == "sqlite" else t

    @staticmethod
    def _row(mapping: Any) -> dict[str, Any]:
        row = dict(mapping)
        if row["created_at"].tzinfo is None:
            row["created_at"] = row["created_at"].replace(tzinfo=UTC)
        return row


class SchemaBehind(RuntimeError):
    pass


def open_audit(settings: Settings) -> AuditLog:
    """Connect to the audit database and make sure its schema is current."""
    engine = make_engine(settings.effective_database_url)
    if settings.db_auto_upgrade:
        migrate.upgrade(engine)
    elif not migrate.is_current(engine):
        raise SchemaBehind(
            f"the audit database schema is at {migrate.current_revision(engine) or 'nothing'}, "
            f"this release needs {migrate.head_revision(engine)}: run `sepsis-api db upgrade`"
        )
    return AuditLog(engine)
