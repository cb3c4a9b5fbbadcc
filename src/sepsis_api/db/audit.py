"""The audit log: write estimates in one transaction, read them back newest first."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import chain, repeat
from typing import TYPE_CHECKING, Any

from sqlalchemy import Dialect, Engine, Table, insert, select, text, update

from sepsis_api.db import migrate
from sepsis_api.db.models import AUDITED, ActiveVersion, Base, Prediction
from sepsis_api.db.session import make_engine, sqlite_file, stored_time

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


class BulkInsert:
    """Whole rows as multi-row ``INSERT ... VALUES (..), (..)`` statements.

    One statement for up to ``rows_per_statement`` rows, not one driver call per row: the
    database does the work in a single step, and the writer thread gives up and takes back
    the interpreter lock once per statement instead of once per row (under load each take-back
    can wait for the event loop's thread). Column conversions (JSON, DateTime on SQLite...)
    come from the table definition and the engine's dialect; values shared by all rows are
    converted once. ``keys`` names the columns written (default: all of them).
    """

    def __init__(self, table: Table, dialect: Dialect, keys: Sequence[str] | None = None) -> None:
        if dialect.paramstyle not in _MARKS:
            raise ValueError(f"unsupported driver parameter style {dialect.paramstyle!r}")
        quote = dialect.identifier_preparer.quote
        self.keys = list(keys) if keys is not None else [c.key for c in table.columns]
        names = ", ".join(quote(table.c[key].name) for key in self.keys)
        self._head = f"INSERT INTO {quote(table.name)} ({names}) VALUES "
        self._row = "(" + ", ".join([_MARKS[dialect.paramstyle]] * len(self.keys)) + ")"
        self.rows_per_statement = _max_parameters(dialect) // len(self.keys)
        self.convert = {
            key: proc
            for key in self.keys
            if (proc := table.c[key].type.dialect_impl(dialect).bind_processor(dialect))
        }

    def params(
        self, n: int, each: Mapping[str, Sequence[Any]], same: Mapping[str, Any]
    ) -> list[tuple[Any, ...]]:
        """Driver values for ``n`` rows: ``each`` holds a value per row, ``same`` one value
        for all rows; together they name every column."""
        columns: list[Iterable[Any]] = []
        for key in self.keys:
            proc = self.convert.get(key)
            if key in same:
                value = same[key]
                columns.append(repeat(proc(value) if proc else value, n))
            else:
                values = each[key]
                if len(values) != n:
                    raise ValueError(f"{key}: {len(values)} values for {n} rows")
                columns.append(map(proc, values) if proc else values)
        return list(zip(*columns, strict=False))

    def statements(self, rows: list[tuple[Any, ...]]) -> Iterator[tuple[str, tuple[Any, ...]]]:
        """(SQL, flat parameters) for each chunk of ``rows``."""
        for start in range(0, len(rows), self.rows_per_statement):
            chunk = rows[start : start + self.rows_per_statement]
            yield (
                self._head + ", ".join([self._row] * len(chunk)),
                tuple(chain.from_iterable(chunk)),
            )


_MARKS = {"qmark": "?", "format": "%s", "pyformat": "%s"}


def _max_parameters(dialect: Dialect) -> int:
    """Bound parameters one statement may carry."""
    if dialect.name == "sqlite":
        return 32_766 if sqlite3.sqlite_version_info >= (3, 32) else 999
    return 65_535  # PostgreSQL's wire protocol


class AuditLog:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.insert = BulkInsert(
            Base.metadata.tables[Prediction.__tablename__], engine.dialect, AUDITED
        )

    def record(self, rows: list[tuple[Any, ...]]) -> None:
        """Commit all rows (from ``self.insert.params``) or none; returns only once they are
        durable in the database."""
        self.record_chunks([rows])

    def record_chunks(self, chunks: Iterable[list[tuple[Any, ...]]]) -> None:
        """Like ``record`` for rows that arrive in chunks: one transaction for all of them."""
        with self.engine.begin() as conn:
            for rows in chunks:
                for sql, values in self.insert.statements(rows):
                    conn.exec_driver_sql(sql, values)

    def active_version(self) -> str | None:
        """The version set by `models activate` (shared by all replicas), if any."""
        with self.engine.connect() as conn:
            return conn.execute(
                select(ActiveVersion.version).where(ActiveVersion.id == 1)
            ).scalar_one_or_none()

    def set_active_version(self, version: str, by: str) -> None:
        row = {"version": version, "activated_at": datetime.now(UTC), "activated_by": by}
        with self.engine.begin() as conn:
            done = conn.execute(update(ActiveVersion).where(ActiveVersion.id == 1).values(**row))
            if done.rowcount == 0:
                conn.execute(insert(ActiveVersion).values(id=1, **row))

    @property
    def sqlite_file(self) -> str | None:
        """The database file when the audit log is an SQLite file, else None."""
        return sqlite_file(self.engine.url)

    def checkpoint(self) -> None:
        """Copy SQLite's write-ahead log into the database file (without blocking writers)."""
        if self.engine.dialect.name == "sqlite":
            with self.engine.connect() as conn:
                conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")

    def ping(self) -> None:
        with self.engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    def page(
        self, flt: HistoryFilter, *, limit: int, before: str | None = None
    ) -> list[dict[str, Any]]:
        """Up to ``limit`` records newest first, strictly older than the id ``before``."""
        q = select(Prediction.__table__).order_by(Prediction.id.desc()).limit(limit)
        if before:
            q = q.where(Prediction.id < before)
        for column, value in (
            (Prediction.patient_id, flt.patient_id),
            (Prediction.label, flt.label),
            (Prediction.model_version, flt.model_version),
            (Prediction.model_name, flt.model_name),
        ):
            if value is not None:
                q = q.where(column == value)
        if flt.since is not None:
            q = q.where(Prediction.created_at >= stored_time(self.engine, flt.since))
        if flt.until is not None:
            q = q.where(Prediction.created_at < stored_time(self.engine, flt.until))
        with self.engine.connect() as conn:
            return [self._row(r._mapping) for r in conn.execute(q)]

    def get(self, prediction_id: str) -> dict[str, Any] | None:
        q = select(Prediction.__table__).where(Prediction.id == prediction_id)
        with self.engine.connect() as conn:
            row = conn.execute(q).first()
        return self._row(row._mapping) if row else None

    @staticmethod
    def _row(mapping: Any) -> dict[str, Any]:
        row = dict(mapping)
        if row["created_at"].tzinfo is None:
            row["created_at"] = row["created_at"].replace(tzinfo=UTC)
        return row


class SchemaBehind(RuntimeError):
    pass


def open_audit(settings: Settings, *, background_checkpoints: bool = False) -> AuditLog:
    """Connect to the audit database and make sure its schema is current."""
    engine = make_engine(
        settings.effective_database_url,
        background_checkpoints=background_checkpoints,
        synchronous=settings.sqlite_synchronous,
    )
    if settings.db_auto_upgrade:
        migrate.upgrade(engine)
    elif not migrate.is_current(engine):
        raise SchemaBehind(
            f"the audit database schema is at {migrate.current_revision(engine) or 'nothing'}, "
            f"this release needs {migrate.head_revision(engine)}: run `sepsis-api db upgrade`"
        )
    return AuditLog(engine)
