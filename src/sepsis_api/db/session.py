"""Engines for the audit database: a SQLite file (WAL) by default, PostgreSQL by URL."""

from __future__ import annotations

from pathlib import Path

import orjson
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url


def make_engine(url: str, *, background_checkpoints: bool = False) -> Engine:
    """An engine for the audit database. With ``background_checkpoints`` SQLite never copies
    its WAL back into the database file on a commit; the caller runs ``PRAGMA wal_checkpoint``
    off the request path instead (the server's writer thread does)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30},
                               json_serializer=_dumps)

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn, _record) -> None:
            cur = dbapi_conn.cursor()
            # WAL: readers never block the writer; NORMAL: durable at checkpoints, fast commits.
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA busy_timeout=30000")
            if background_checkpoints:
                cur.execute("PRAGMA wal_autocheckpoint=0")
            cur.close()

        return engine
    # pre-ping: a connection dropped while the database was away is replaced, not reused.
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20,
                         json_serializer=_dumps)


def _dumps(value: object) -> str:
    return orjson.dumps(value).decode()
