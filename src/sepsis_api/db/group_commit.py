"""Group commit: one thread writes the audit log for every request in the process.

Requests hand their rows over and wait for the commit; the writer takes everything that is
waiting and commits it in one transaction. That keeps the promise "a 2xx means the record is
committed" while SQLite sees one writer instead of dozens of threads queueing for its lock,
and each commit is shared by all the requests that arrived during the previous one. One bad
submission does not fail its group: the group is retried a submission at a time.

A large batch is handed over as a ``RowStream`` (db/row_stream.py) and committed in a
transaction of its own.

If the thread dies (anything escaping its loop, SystemExit included), that is logged, every
submission still waiting fails with ``WriterStopped`` and so does every later one, so no request
waits for a commit that will never come; ``alive`` turns false for /readyz.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
from concurrent.futures import Future, InvalidStateError
from typing import Any

from sepsis_api.db.audit import AuditLog
from sepsis_api.db.row_stream import Rows, RowStream

log = logging.getLogger("sepsis_api.audit")

THREAD_NAME = "audit-writer"
_STOP = object()


class WriterStopped(RuntimeError):
    """The audit writer thread is not running: nothing handed to it will be committed."""

    def __init__(self, why: str = "is not running") -> None:
        super().__init__(f"the audit writer thread ({THREAD_NAME}) {why}")


class AuditWriter:
    def __init__(self, audit: AuditLog, max_rows: int = 5_000) -> None:
        self.audit = audit
        self.max_rows = max_rows  # rows per transaction, unless one submission is larger
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._lock = threading.Lock()  # orders every submission before or after a stop
        self._stopped: str | None = None  # why nothing is accepted any more
        self._in_hand: list[Future[None]] = []  # what the thread is committing now
        self._thread = threading.Thread(target=self._main, name=THREAD_NAME, daemon=True)
        self._thread.start()

    @property
    def alive(self) -> bool:
        """The thread is running and takes submissions."""
        return self._stopped is None and self._thread.is_alive()

    def submit(self, rows: Rows) -> Future[None]:
        """Queue rows (``AuditLog.insert.params``); the future completes once they are
        committed (or fails with the error). Raises WriterStopped when the thread is not
        running."""
        future: Future[None] = Future()
        self._put((rows, future))
        return future

    def stream(self) -> RowStream:
        """A submission whose rows are put chunk by chunk; see ``RowStream``. Raises
        WriterStopped when the thread is not running."""
        stream = RowStream()
        self._put(stream)
        return stream

    def close(self, timeout: float = 30) -> None:
        """Commit what is queued, then stop the thread."""
        with self._lock:
            if self._stopped is None:
                self._stopped = "has been stopped"
                self._queue.put(_STOP)
        self._thread.join(timeout)

    def _put(self, item: Any) -> None:
        with self._lock:
            if self._stopped is not None:
                raise WriterStopped(self._stopped)
            if not self._thread.is_alive():
                raise WriterStopped()
            self._queue.put(item)

    def _main(self) -> None:
        try:
            self._run()
        except BaseException as exc:
            log.critical(
                "the audit writer thread died; every audit commit handed to it fails from now "
                "on (restart the server)",
                exc_info=True,
            )
            self._fail_everything(f"died ({type(exc).__name__}: {exc})")

    def _fail_everything(self, why: str) -> None:
        with self._lock:  # from here on, nothing more is queued
            self._stopped = why
        waiting = list(self._in_hand)
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if isinstance(item, RowStream):
                waiting.append(item.future)
            elif item is not _STOP:
                waiting.append(item[1])
        for future in waiting:
            _settle(future, WriterStopped(why))

    def _run(self) -> None:
        item = self._queue.get()
        while item is not _STOP:
            if isinstance(item, RowStream):
                self._in_hand = [item.future]
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
            self._in_hand = [future for _, future in group]
            self._commit(group)
            if item is None:
                item = self._queue.get()

    def _commit_stream(self, stream: RowStream) -> None:
        try:
            self.audit.record_chunks(stream)
        except Exception as exc:
            _settle(stream.future, exc)
        else:
            _settle(stream.future)

    def _commit(self, group: list[tuple[Rows, Future[None]]]) -> None:
        try:
            self.audit.record([row for rows, _ in group for row in rows])
        except Exception as exc:
            if len(group) == 1:
                _settle(group[0][1], exc)
                return
            # One bad submission must not fail its neighbours: retry each on its own.
            for rows, future in group:
                try:
                    self.audit.record(rows)
                except Exception as single:
                    _settle(future, single)
                else:
                    _settle(future)
            return
        for _, future in group:
            _settle(future)


def _settle(future: Future[None], error: BaseException | None = None) -> None:
    """Complete a future, unless its waiter gave up and cancelled it."""
    with contextlib.suppress(InvalidStateError):
        if error is None:
            future.set_result(None)
        else:
            future.set_exception(error)
