"""Single-prediction commits on the event loop (SQLite file), their hand-over to the writer
thread when the database is locked, and the background WAL checkpoints."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import time
from datetime import UTC, datetime

import pytest

from sepsis_api.config import Settings
from sepsis_api.db.audit import AuditLog, open_audit
from sepsis_api.db.writer import AuditWriter, Checkpointer, LoopWriter
from sepsis_api.ids import new_ids


@pytest.fixture
def audit(tmp_path) -> AuditLog:
    log = open_audit(Settings(_env_file=None, data_dir=tmp_path), background_checkpoints=True)
    yield log
    log.engine.dispose()


class CountingWriter(AuditWriter):
    """The real writer thread, counting what is handed over to it."""

    handed_over = 0

    def submit(self, rows):
        self.handed_over += 1
        return super().submit(rows)


def _rows(audit: AuditLog, n: int = 1) -> list[tuple]:
    return audit.insert.params(
        n,
        {
            "id": new_ids(n),
            "probability": [0.5] * n,
            "label": ["Positive"] * n,
            "risk_band": ["high"] * n,
            "model_name": ["m"] * n,
            "model_version": ["v"] * n,
            "threshold": [0.3] * n,
            "contributions": [None] * n,
        },
        {
            "created_at": datetime.now(UTC),
            "request_id": "r",
            "caller": "c",
            "source": "predict",
            "patient_id": "P1",
            "inputs": {"PL": 148},
        },
    )


def _count(audit: AuditLog) -> int:
    with audit.engine.connect() as conn:
        return conn.exec_driver_sql("SELECT count(*) FROM predictions").scalar()


@pytest.fixture
def writers(audit):
    """(the writer thread, counting hand-overs; the loop writer in front of it)."""
    writer = CountingWriter(audit)
    loop_writer = LoopWriter(audit, writer)
    yield writer, loop_writer
    loop_writer.close()
    writer.close()


def _commit_on_the_loop(loop_writer: LoopWriter, audit: AuditLog, times: int, n: int) -> None:
    async def main() -> None:
        for _ in range(times):
            await loop_writer.commit(_rows(audit, n))

    asyncio.run(main())


def test_concurrent_requests_commit_on_the_loop_together(audit, writers):
    writer, loop_writer = writers

    async def main() -> None:
        await asyncio.gather(*(loop_writer.commit(_rows(audit, 2)) for _ in range(50)))

    asyncio.run(main())
    assert _count(audit) == 100 and writer.handed_over == 0


def test_a_locked_database_hands_the_rows_to_the_writer_thread_which_waits(audit, writers):
    writer, loop_writer = writers
    other = sqlite3.connect(audit.sqlite_file, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another process holding the write lock

    async def main() -> None:
        pending = asyncio.ensure_future(loop_writer.commit(_rows(audit, 3)))
        await asyncio.sleep(0.3)
        assert not pending.done()  # waiting in the writer thread, not failed
        other.execute("ROLLBACK")
        await asyncio.wait_for(pending, 10)

    try:
        asyncio.run(main())
        assert _count(audit) == 3 and writer.handed_over == 1
    finally:
        other.close()


def test_the_checkpointer_copies_the_wal_into_the_database_file(audit, writers):
    checkpointer = Checkpointer(audit, 0.05)
    before = os.path.getsize(audit.sqlite_file)
    try:
        _commit_on_the_loop(writers[1], audit, 20, 100)
        deadline = time.monotonic() + 5
        while os.path.getsize(audit.sqlite_file) <= before and time.monotonic() < deadline:
            time.sleep(0.05)
        assert os.path.getsize(audit.sqlite_file) > before + 100_000  # 2,000 rows moved in
    finally:
        checkpointer.close()


def test_without_background_checkpoints_the_rows_stay_in_the_wal(audit, writers):
    # The control for the test above: commits alone do not copy the WAL back.
    before = os.path.getsize(audit.sqlite_file)
    _commit_on_the_loop(writers[1], audit, 20, 100)
    time.sleep(0.3)
    assert os.path.getsize(audit.sqlite_file) == before and _count(audit) == 2000
