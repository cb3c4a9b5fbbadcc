"""Streamed batches through the writer thread on a real SQLite file."""

from __future__ import annotations

import pytest

from sepsis_api.db.group_commit import AuditWriter, WriterStopped
from sepsis_api.db.row_stream import StreamAborted

WAIT = 30  # seconds; only ever reached when a test is failing


@pytest.fixture
def writer(audit):
    writer = AuditWriter(audit)
    yield writer
    writer.close()


def test_a_stream_commits_all_its_chunks_and_what_was_queued_behind_it(writer, rows, count):
    stream = writer.stream()
    after = writer.submit(rows(3, "B"))  # queued behind the open stream
    for _ in range(3):
        stream.put(rows(1000, "S"))
    assert not stream.future.done() and not after.done()
    stream.close()
    stream.future.result(timeout=WAIT)
    after.result(timeout=WAIT)
    assert count("S") == 3000 and count("B") == 3


def test_an_aborted_stream_leaves_nothing_behind(writer, rows, count):
    stream = writer.stream()
    stream.put(rows(500, "S"))
    stream.abort()
    with pytest.raises(StreamAborted):
        stream.future.result(timeout=WAIT)
    writer.submit(rows(2, "B")).result(timeout=WAIT)
    assert count("S") == 0 and count("B") == 2


def test_a_stream_whose_writer_dies_fails_with_writer_stopped(audit, writer, rows, monkeypatch):
    def fatal(chunks):
        for _ in chunks:
            raise SystemExit("killed by the test")

    monkeypatch.setattr(audit, "record_chunks", fatal)
    stream = writer.stream()
    behind = writer.submit(rows(1))
    stream.put(rows(10))
    for future in (stream.future, behind):
        with pytest.raises(WriterStopped, match="audit writer thread"):
            future.result(timeout=WAIT)
