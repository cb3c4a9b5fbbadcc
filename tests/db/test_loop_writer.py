"""Single-prediction commits on the event loop (SQLite file), and their hand-over to the writer
thread when the database is locked: waited for, but never for longer than asked."""

from __future__ import annotations

import asyncio

import pytest

from sepsis_api.db.group_commit import WriterStopped

WAIT = 30  # seconds; only ever reached when a test is failing


def test_concurrent_requests_commit_on_the_loop_together(writers, rows, count):
    writer, loop_writer = writers

    async def main() -> None:
        await asyncio.gather(*(loop_writer.commit(rows(2)) for _ in range(50)))

    asyncio.run(main())
    assert count() == 100 and writer.handed_over == 0


def test_a_locked_database_hands_the_rows_to_the_writer_thread_which_waits(
    writers, rows, count, transactions, locked
):
    writer, loop_writer = writers

    async def main() -> None:
        with locked():  # another process holding the write lock
            pending = asyncio.ensure_future(loop_writer.commit(rows(3)))
            await asyncio.to_thread(transactions.began.wait, WAIT)  # the thread is in its commit
            assert writer.handed_over == 1 and not pending.done()  # waiting there, not failed
        await asyncio.wait_for(pending, WAIT)

    asyncio.run(main())
    assert count() == 3 and writer.handed_over == 1


def test_the_wait_for_the_writer_thread_ends_at_the_timeout(
    writers, rows, count, transactions, locked, wait_until
):
    writer, loop_writer = writers

    async def main() -> None:
        with pytest.raises(TimeoutError):
            await loop_writer.commit(rows(3, "T"), timeout=0.05)

    with locked():
        asyncio.run(main())
        assert transactions.began.is_set() and writer.alive  # still waiting for the lock
    # The rows were handed over: the thread still commits them once the lock is free.
    wait_until(lambda: count("T") == 3, "the writer thread to commit the handed-over rows")


def test_a_stopped_writer_thread_fails_only_the_hand_over(writers, rows, count, locked):
    writer, loop_writer = writers
    writer.close()

    async def commit(n: int) -> None:
        await loop_writer.commit(rows(n), timeout=WAIT)

    asyncio.run(commit(2))  # on the loop: no thread involved
    with locked(), pytest.raises(WriterStopped, match="audit writer thread"):
        asyncio.run(commit(3))
    assert count() == 2
