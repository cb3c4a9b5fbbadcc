"""The `postgres` fixture gives a real server that keeps its data across stop() and start()."""

from __future__ import annotations

import psycopg
import pytest
import sqlalchemy as sa

from pg import PostgresCluster


def _connect(dsn: str) -> psycopg.Connection:
    return psycopg.connect(dsn, connect_timeout=5, autocommit=True)


def test_dsn_and_url_connect(postgres: PostgresCluster) -> None:
    with _connect(postgres.dsn) as conn:
        row = conn.execute("select version()").fetchone()
    assert row is not None and row[0].startswith("PostgreSQL")

    engine = sa.create_engine(postgres.url)
    try:
        with engine.connect() as conn:
            db = conn.execute(sa.text("select current_database()")).scalar_one()
    finally:
        engine.dispose()
    assert db == postgres.db


def test_data_survives_stop_and_start(postgres: PostgresCluster) -> None:
    # Own database, so other tests sharing the session cluster are not affected.
    url = postgres.create_database("restart_check")
    dsn = url.replace("+psycopg", "")
    with _connect(dsn) as conn:
        conn.execute("create table notes (id int primary key, body text)")
        conn.execute("insert into notes values (1, 'kept')")

    postgres.stop()
    try:
        with pytest.raises(psycopg.OperationalError):
            _connect(dsn).close()
    finally:
        postgres.start()  # the cluster is session-wide: always bring it back

    with _connect(dsn) as conn:
        assert conn.execute("select id, body from notes").fetchall() == [(1, "kept")]
