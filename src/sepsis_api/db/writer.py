"""Group commit: one thread writes the audit log for every request in the process.

Requests hand their rows over and wait for the commit; the writer takes everything that is
waiting and commits it in one transaction. That keeps the promise "a 2xx means the record is
committed" while SQLite sees one writer instead of dozens of threads queueing for its lock,
and each commit is shared by all the requests that arrived during the previous one.
"""

from __future__ import annotations

import logging
import queue
import threading
from concurrent.futures import Future
from typing import Any

from sepsis_api.db.audit import AuditLog

log = logging.getLogger("sepsis_api.audit")

_STOP = object()


class AuditWriter:
    def __init__(self, audit: AuditLog, max_rows: int = 5_000) -> None:
        self.audit = audit
        self.max_rows = max_rows  # rows per transaction, unless one submission is larger
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="audit-writer", daemon=True)
        self._thread.start()

    def submit(self, rows: list[Any]) -> Future[None]:
        """Queue rows (``AuditLog.insert.params``); the future completes once they are
        committed (or fails with the error)."""
        future: Future[None] = Future()
        self._queue.put((rows, future))
        return future

    def close(self, timeout: float = 30) -> None:
        """Commit what is queued, then stop the thread."""
        self._queue.put(_STOP)
        self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            group = [item]
            size = len(item[0])
            stop = False
            while size < self.max_rows:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is _STOP:
                    stop = True
                    break
                group.append(nxt)
                size += len(nxt[0])
            self._commit(group)
            if stop:
                return

    def _commit(self, group: list[tuple[list[Any], Future[None]]]) -> None:
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
