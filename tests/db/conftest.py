"""Shared by the writer tests: a real SQLite audit log, its rows, and ways to watch it work."""

from __future__ import annotations

import asyncio
import itertools
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import event

from factories import audit_rows
from sepsis_api.config import Settings
from sepsis_api.db.audit import AuditLog, open_audit
from sepsis_api.db.group_commit import AuditWriter
from sepsis_api.db.loop_writer import LoopWriter
from sepsis_api.db.session import make_engine
from sepsis_api.ids import new_ids

Rows = list[tuple[Any, ...]]
MakeRows = Callable[..., Rows]
_databases = itertools.count()


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[Any]:
    """An empty database (no schema yet): a SQLite file, or one of the throwaway cluster's."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'audit.db'}"
    else:
        url = request.getfixturevalue("postgres").create_database(f"db_{next(_databases)}")
    engine = make_engine(url)
    yield engine
    engine.dispose()


@pytest.fixture
def audit(tmp_path) -> Iterator[AuditLog]:
    """A migrated SQLite audit log as the server opens it (no checkpoints on commit)."""
    log = open_audit(Settings(_env_file=None, data_dir=tmp_path), background_checkpoints=True)
    yield log
    log.engine.dispose()


@pytest.fixture
def rows(audit: AuditLog) -> MakeRows:
    """rows(n, patient="P", ids=None): ``n`` audit rows for patients ``P0``, ``P1``..."""

    def make(n: int = 1, patient: str = "P", ids: list[str] | None = None) -> Rows:
        rows: Rows = audit_rows(audit, n, ids=ids or new_ids(n), patient=patient)
        return rows

    return make


@pytest.fixture
def count(audit: AuditLog) -> Callable[[str], int]:
    """count(prefix=""): committed rows whose patient id starts with ``prefix``."""

    def rows_of(prefix: str = "") -> int:
        with audit.engine.connect() as conn:
            return int(
                conn.exec_driver_sql(
                    "SELECT count(*) FROM predictions WHERE patient_id LIKE ?", (f"{prefix}%",)
                ).scalar_one()
            )

    return rows_of


class CountingWriter(AuditWriter):
    """The real writer thread, counting what is handed over to it."""

    handed_over = 0

    def submit(self, rows: Rows) -> Any:
        self.handed_over += 1
        return super().submit(rows)


@pytest.fixture
def writers(audit: AuditLog) -> Iterator[tuple[CountingWriter, LoopWriter]]:
    """(the writer thread, counting hand-overs; the loop writer in front of it)."""
    writer = CountingWriter(audit)
    loop_writer = LoopWriter(audit, writer, synchronous="NORMAL")
    yield writer, loop_writer
    loop_writer.close()
    writer.close()


@pytest.fixture
def commit_on_the_loop(rows: MakeRows) -> Callable[[LoopWriter, int, int], None]:
    """commit_on_the_loop(loop_writer, times, n): ``times`` commits of ``n`` rows, one by one."""

    def run(loop_writer: LoopWriter, times: int, n: int) -> None:
        async def main() -> None:
            for _ in range(times):
                await loop_writer.commit(rows(n))

        asyncio.run(main())

    return run


class Transactions:
    """The engine's transactions as SQLAlchemy reports them (from whichever thread)."""

    def __init__(self) -> None:
        self.begun = self.committed = self.rolled_back = 0
        self.began = threading.Event()  # set by every transaction's start

    def on_begin(self, _conn: object) -> None:
        self.begun += 1
        self.began.set()

    def on_commit(self, _conn: object) -> None:
        self.committed += 1

    def on_rollback(self, _conn: object) -> None:
        self.rolled_back += 1


@pytest.fixture
def transactions(audit: AuditLog) -> Iterator[Transactions]:
    seen = Transactions()
    hooks = [("begin", seen.on_begin), ("commit", seen.on_commit), ("rollback", seen.on_rollback)]
    for name, hook in hooks:
        event.listen(audit.engine, name, hook)
    yield seen
    for name, hook in hooks:
        event.remove(audit.engine, name, hook)


@contextmanager
def _write_lock(path: str) -> Iterator[sqlite3.Connection]:
    """Another connection (another process, as far as SQLite knows) holds the write lock."""
    other = sqlite3.connect(path, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        yield other
        if other.in_transaction:
            other.execute("ROLLBACK")
    finally:
        other.close()


@pytest.fixture
def write_lock() -> Callable[[str], Any]:
    """``with write_lock(path):`` the write lock of the SQLite file is held elsewhere."""
    return _write_lock


@pytest.fixture
def locked(audit: AuditLog) -> Callable[[], Any]:
    """``with locked():`` the audit database's write lock is held elsewhere."""
    assert audit.sqlite_file is not None
    return lambda: _write_lock(str(audit.sqlite_file))


def _wait_until(condition: Callable[[], bool], what: str, timeout: float = 30) -> None:
    """Poll ``condition`` until it holds; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.005)


@pytest.fixture
def wait_until() -> Callable[..., None]:
    """wait_until(condition, what, timeout=30): poll until ``condition()`` holds."""
    return _wait_until
