"""Background WAL checkpoints: the Checkpointer thread copies committed rows into the file."""

from __future__ import annotations

import os

from sepsis_api.db.checkpoint import Checkpointer


def test_the_checkpointer_copies_the_wal_into_the_database_file(
    audit, writers, commit_on_the_loop, wait_until
):
    checkpointer = Checkpointer(audit, 0.05)
    before = os.path.getsize(audit.sqlite_file)
    try:
        commit_on_the_loop(writers[1], 20, 100)
        wait_until(
            lambda: os.path.getsize(audit.sqlite_file) > before + 100_000,  # 2,000 rows moved in
            "a checkpoint to grow the database file",
        )
    finally:
        checkpointer.close()


def test_without_background_checkpoints_the_rows_stay_in_the_wal(
    audit, writers, commit_on_the_loop, count
):
    # The control for the test above: commits alone do not copy the WAL back.
    before = os.path.getsize(audit.sqlite_file)
    commit_on_the_loop(writers[1], 20, 100)
    assert os.path.getsize(audit.sqlite_file) == before and count() == 2000
