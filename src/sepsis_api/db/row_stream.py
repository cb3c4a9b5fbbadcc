"""A streamed submission: the rows of one large batch, handed to the writer chunk by chunk.

A batch's rows arrive while the request is still validating and scoring the rest, so the
writer thread (db/group_commit.py) inserts one chunk while Python builds the next. A stream
is committed in a transaction of its own; ``abort`` rolls back whatever was inserted.
"""

from __future__ import annotations

import queue
from collections.abc import Iterator
from concurrent.futures import Future
from typing import Any

Rows = list[tuple[Any, ...]]  # from AuditLog.insert.params

_END = object()  # no more chunks: commit
_ABORT = object()  # the producer gave up: roll back


class StreamAborted(Exception):
    """The producer of a RowStream gave up; its rows were rolled back."""


class RowStream:
    """Chunks of one submission, put by the request while the writer inserts earlier ones."""

    def __init__(self) -> None:
        self.future: Future[None] = Future()  # completes once every chunk is committed
        self._chunks: queue.SimpleQueue[Any] = queue.SimpleQueue()

    def put(self, rows: Rows) -> None:
        self._chunks.put(rows)

    def close(self) -> None:
        """No more chunks: commit."""
        self._chunks.put(_END)

    def abort(self) -> None:
        """Roll back whatever was inserted."""
        self._chunks.put(_ABORT)

    def __iter__(self) -> Iterator[Rows]:
        while (chunk := self._chunks.get()) is not _END:
            if chunk is _ABORT:
                raise StreamAborted
            yield chunk
