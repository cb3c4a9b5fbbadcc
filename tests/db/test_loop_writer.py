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
    return audit.insert.params(n, {
        "id": new_ids(n), "probability": [0.5] * n, "label": ["Positive"] * n,
        "risk_band": ["high"] * n, "model_name": ["m"] * n, "model_version": ["v"] * n,
        "threshold": [0.3] * n, "contributions": [None] * n,
    }, {"created_at": datetime.now(UTC), "request_id": "r", "caller": "c", "source": "predict",
        "patient_id": "P1", "inputs": {"PL": 148}})


def _count(audit: AuditLog) -> int:
    with audit.engine.connect() as conn:
        return conn.exec_driver_sql("SELECT count(*) FROM predictions").scalar()


def test_concurrent_requests_commit_on_the_loop_together(audit):
    writer = CountingWriter(audit)
    loop_writer = LoopWriter(audit, audit.sqlite_file, writer)

    async def main() -> None:
        await asyncio.gather(*(loop_writer.commit(_rows(audit, 2)) for _ in range(50)))

    try:
        asyncio.run(main())
        assert _count(audit) == 100 and writer.handed_over == 0
    finally:
        loop_writer.close()
        writer.close()


def test_a_locked_database_hands_the_rows_to_the_writer_thread_which_waits(audit):
    writer = CountingWriter(audit)
    loop_writer = LoopWriter(audit, audit.sqlite_file, writer)
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
        loop_writer.close()
        writer.close()


def test_the_checkpointer_copies_the_wal_into_the_database_file(audit):
    writer = AuditWriter(audit)
    loop_writer = LoopWriter(audit, audit.sqlite_file, writer)
    checkpointer = Checkpointer(audit, 0.05)
    before = os.path.getsize(audit.sqlite_file)

    async def main() -> None:
        for _ in range(20):
            await loop_writer.commit(_rows(audit, 100))

    try:
        asyncio.run(main())
        deadline = time.monotonic() + 5
        while os.path.getsize(audit.sqlite_file) <= before and time.monotonic() < deadline:
            time.sleep(0.05)
        assert os.path.getsize(audit.sqlite_file) > before + 100_000  # 2,000 rows moved in
    finally:
        checkpointer.close()
        loop_writer.close()
        writer.close()


def test_without_background_checkpoints_the_rows_stay_in_the_wal(audit):
    # The control for the test above: commits alone do not copy the WAL back.
    writer = AuditWriter(audit)
    loop_writer = LoopWriter(audit, audit.sqlite_file, writer)
    before = os.path.getsize(audit.sqlite_file)

    async def main() -> None:
        for _ in range(20):
            await loop_writer.commit(_rows(audit, 100))

    try:
        asyncio.run(main())
        time.sleep(0.3)
        assert os.path.getsize(audit.sqlite_file) == before and _count(audit) == 2000
    finally:
        loop_writer.close()
        writer.close()
