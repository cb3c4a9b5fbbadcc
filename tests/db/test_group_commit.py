"""The group-commit writer thread on a real SQLite file: shared transactions, the retry that
isolates a bad submission, and what happens when the thread stops or dies."""

from __future__ import annotations

import logging
import threading

import pytest
from sqlalchemy.exc import IntegrityError

from sepsis_api.db.group_commit import AuditWriter, WriterStopped
from sepsis_api.ids import new_ids

WAIT = 30  # seconds; only ever reached when a test is failing


@pytest.fixture
def writer(audit):
    writer = AuditWriter(audit)
    yield writer
    writer.close()


def test_submissions_queued_during_a_commit_share_the_next_transaction(
    writer, rows, count, transactions, locked
):
    with locked():  # the first commit waits for the lock ...
        first = writer.submit(rows(1, "F"))
        assert transactions.began.wait(WAIT)  # ... inside its transaction
        queued = [writer.submit(rows(2, f"Q{i}-")) for i in range(5)]
        assert not first.done()
    for future in [first, *queued]:
        future.result(timeout=WAIT)
    assert transactions.committed == 2  # the first, then the five together
    assert count("F") == 1 and count("Q") == 10


def test_one_bad_submission_fails_alone_and_its_neighbours_commit(
    writer, rows, count, transactions, locked
):
    taken = new_ids(1)
    with locked():
        first = writer.submit(rows(1, "F", ids=taken))
        assert transactions.began.wait(WAIT)
        good = writer.submit(rows(2, "G"))
        bad = writer.submit(rows(1, "X", ids=taken))  # duplicate primary key
        more = writer.submit(rows(3, "H"))
    first.result(timeout=WAIT)
    good.result(timeout=WAIT)
    more.result(timeout=WAIT)
    with pytest.raises(IntegrityError):
        bad.result(timeout=WAIT)
    # the group of three failed as a whole, then each was retried alone: only "bad" failed
    assert (transactions.committed, transactions.rolled_back) == (3, 2)
    assert (count("F"), count("G"), count("X"), count("H")) == (1, 2, 0, 3)
    assert writer.alive


def test_a_cancelled_wait_leaves_the_writer_committing(writer, rows, count, transactions, locked):
    with locked():
        given_up = writer.submit(rows(1, "C"))
        assert transactions.began.wait(WAIT)
        assert given_up.cancel()  # what asyncio does when a waiting request is cancelled
        after = writer.submit(rows(2, "A"))
    after.result(timeout=WAIT)
    assert writer.alive and count("A") == 2
    assert count("C") == 1  # handed over is committed, even when nobody waits any more


def test_a_writer_thread_that_dies_fails_everything_queued_and_refuses_more(
    audit, writer, rows, monkeypatch, caplog, wait_until
):
    inside, release = threading.Event(), threading.Event()

    def fatal(batch):
        inside.set()
        release.wait(WAIT)
        raise SystemExit("killed by the test")

    monkeypatch.setattr(audit, "record", fatal)
    assert writer.alive
    in_hand = writer.submit(rows(1))
    assert inside.wait(WAIT)
    queued = writer.submit(rows(2))
    stream = writer.stream()
    with caplog.at_level(logging.CRITICAL, logger="sepsis_api.audit"):
        release.set()
        for future in (in_hand, queued, stream.future):
            with pytest.raises(WriterStopped, match=r"audit writer thread .* died \(SystemExit"):
                future.result(timeout=WAIT)
        wait_until(lambda: not writer.alive, "the writer to report itself dead")
    [record] = [r for r in caplog.records if r.levelno == logging.CRITICAL]
    assert "audit writer thread died" in record.getMessage()
    assert record.exc_info is not None and record.exc_info[0] is SystemExit
    with pytest.raises(WriterStopped, match="audit writer thread"):
        writer.submit(rows(1))
    with pytest.raises(WriterStopped, match="audit writer thread"):
        writer.stream()


def test_a_closed_writer_commits_what_was_queued_and_refuses_more(audit, rows, count):
    writer = AuditWriter(audit)
    queued = [writer.submit(rows(1, f"Q{i}-")) for i in range(3)]
    writer.close()
    assert all(future.done() and future.exception() is None for future in queued)
    assert count("Q") == 3 and not writer.alive
    with pytest.raises(WriterStopped, match=r"audit writer thread \(audit-writer\) has been"):
        writer.submit(rows(1))
