"""Group commit: one thread writes the audit log for every request in the process.

Requests hand their rows over and wait for the commit; the writer takes everything that is
waiting and commits it in one transaction. That keeps the promise "a 2xx means the record is
committed" while SQLite sees one writer instead of dozens of threads queueing for its lock,
and each commit is shared by all the requests that arrived during the previous one.

A large batch is handed over as a ``RowStream`` instead: its rows arrive in chunks while the
request is still preparing the rest, so the database inserts one chunk while Python builds the
next. A stream is committed in a transaction of its own.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Iterator
from concurrent.futures import Future
from typing import Any

from sepsis_api.db.audit import AuditLog

log = logging.getLogger("sepsis_api.audit")

_STOP = object()
_END = object()
_ABORT = object()
Rows = list[tuple[Any, ...]]  # from AuditLog.insert.params


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


class AuditWriter:
    def __init__(self, audit: AuditLog, max_rows: int = 5_000) -> None:
        self.audit = audit
        self.max_rows = max_rows  # rows per transaction, unless one submission is larger
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="audit-writer", daemon=True)
        self._thread.start()

    def submit(self, rows: Rows) -> Future[None]:
        """Queue rows (``AuditLog.insert.params``); the future completes once they are
        committed (or fails with the error)."""
        future: Future[None] = Future()
        self._queue.put((rows, future))
        return future

    def stream(self) -> RowStream:
        """A submission whose rows are put chunk by chunk; see ``RowStream``."""
        stream = RowStream()
        self._queue.put(stream)
        return stream

    def close(self, timeout: float = 30) -> None:
        """Commit what is queued, then stop the thread."""
        self._queue.put(_STOP)
        self._thread.join(timeout)

    def _run(self) -> None:
        item = self._queue.get()
        while item is not _STOP:
            if isinstance(item, RowStream):
                self._commit_stream(item)
                item = self._queue.get()
                continue
            group = [item]
            size = len(item[0])
            item = None
            while size < self.max_rows:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is _STOP or isinstance(nxt, RowStream):
                    item = nxt  # handled after this group is committed
                    break
                group.append(nxt)
                size += len(nxt[0])
            self._commit(group)
            if item is None:
                item = self._queue.get()

    def _commit_stream(self, stream: RowStream) -> None:
        try:
            self.audit.record_chunks(stream)
        except Exception as exc:
            stream.future.set_exception(exc)
        else:
            stream.future.set_result(None)

    def _commit(self, group: list[tuple[Rows, Future[None]]]) -> None:
        try:
            self.audit.record([row for rows, _ in group for row in rows])
        except Exception as exc:
            if len(group) == 1:
                group[0][1].set_exception(exc)
                return
            # One bad submission must not fail its neighbours: retry each on its own.
            for rows, future in group:
                try:
                    self.audit.record(rows)
                except Exception as single:
                    future.set_exception(single)
                else:
                    future.set_result(None)
            return
        for _, future in group:
            future.set_result(None)
