"""Engines for the audit database: a SQLite file (WAL) by default, PostgreSQL by URL."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import URL, Engine, Insert, create_engine, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url

from sepsis_api.config import SqliteSynchronous


def make_engine(
    url: str, *, background_checkpoints: bool = False, synchronous: SqliteSynchronous = "NORMAL"
) -> Engine:
    """An engine for the audit database. With ``background_checkpoints`` SQLite never copies
    its WAL back into the database file on a commit; the caller runs ``PRAGMA wal_checkpoint``
    off the request path instead (the server's Checkpointer thread does). ``synchronous`` is
    SQLite's PRAGMA synchronous for every connection (see ``sqlite_pragmas``)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if path := sqlite_file(parsed):
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url, connect_args={"check_same_thread": False, "timeout": 30}, json_serializer=_dumps
        )

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: sqlite3.Connection, _record: object) -> None:
            sqlite_pragmas(
                dbapi_conn,
                busy_timeout_ms=30_000,
                background_checkpoints=background_checkpoints,
                synchronous=synchronous,
            )

        return engine
    # pre-ping: a connection dropped while the database was away is replaced, not reused.
    return create_engine(
        url, pool_pre_ping=True, pool_size=10, max_overflow=20, json_serializer=_dumps
    )


def _dumps(value: object) -> str:
    return orjson.dumps(value).decode()


def insert_new(engine: Engine, table: Any) -> Insert:
    """INSERT that skips a row whose key is already stored (ON CONFLICT DO NOTHING), in the
    engine's dialect. To learn whether a row went in, add RETURNING: the PostgreSQL driver
    reports no rowcount for it."""
    if engine.dialect.name == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing()
    return sqlite.insert(table).on_conflict_do_nothing()


def stored_time(engine: Engine, t: datetime) -> datetime:
    """``t`` as the audit tables hold times, for comparing in SQL: UTC, and naive on SQLite,
    which keeps no zone (db/audit.py writes naive UTC there)."""
    t = t.astimezone(UTC)
    return t.replace(tzinfo=None) if engine.dialect.name == "sqlite" else t


def sqlite_file(url: URL | str) -> str | None:
    """The database file of an SQLite URL; None for other databases and in-memory SQLite."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        return parsed.database
    return None


def sqlite_pragmas(
    conn: sqlite3.Connection,
    *,
    busy_timeout_ms: int,
    background_checkpoints: bool,
    synchronous: SqliteSynchronous,
) -> None:
    """The settings of every SQLite connection to the audit log. WAL: readers never block the
    writer; synchronous NORMAL: a commit appends to the log without a sync (durable at the next
    checkpoint; a power cut can lose the last commits, never corrupt the file); FULL: every
    commit syncs the log (durable on return, at the cost of a sync a commit)."""
    if synchronous not in ("NORMAL", "FULL"):
        raise ValueError(f"synchronous must be NORMAL or FULL, not {synchronous!r}")
    pragmas = ["journal_mode=WAL", f"synchronous={synchronous}", f"busy_timeout={busy_timeout_ms}"]
    if background_checkpoints:
        pragmas.append("wal_autocheckpoint=0")
    for pragma in pragmas:
        conn.execute(f"PRAGMA {pragma}")
