"""Group commit: one thread writes the audit log for every request in the process.

Requests hand their rows over and wait for the commit; the writer takes everything that is
waiting and commits it in one transaction. That keeps the promise "a 2xx means the record is
committed" while SQLite sees one writer instead of dozens of threads queueing for its lock,
and each commit is shared by all the requests that arrived during the previous one.

A large batch is handed over as a ``RowStream`` instead: its rows arrive in chunks while the
request is still preparing the rest, so the database inserts one chunk while Python builds the
next. A stream is committed in a transaction of its own.

With an SQLite file, ``LoopWriter`` commits the rows of single predictions on the event loop
itself and only hands them to the thread when it cannot (see there), and ``Checkpointer`` copies
the write-ahead log back into the database file in a thread of its own, so no commit waits for
a checkpoint.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import sqlite3
import threading
from collections.abc import Iterator
from concurrent.futures import Future
from typing import Any

from sepsis_api.db.audit import AuditLog
from sepsis_api.db.session import sqlite_pragmas

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


class Checkpointer:
    """SQLite: run ``PRAGMA wal_checkpoint(PASSIVE)`` every few seconds in a thread of its own.

    The server's connections do not checkpoint on commit (db/session.py), since a checkpoint
    syncs the files and would stall whichever commit triggered it. A passive checkpoint runs
    beside the writers and copies what no reader still needs.
    """

    def __init__(self, audit: AuditLog, seconds: float) -> None:
        self.audit, self.seconds = audit, seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="audit-checkpoint", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(30)
        self._checkpoint()  # leave the database file complete

    def _run(self) -> None:
        while not self._stop.wait(self.seconds):
            self._checkpoint()

    def _checkpoint(self) -> None:
        try:
            self.audit.checkpoint()
        except Exception as exc:  # the next commit reports an unreachable database
            log.debug("WAL checkpoint failed: %s", exc)


class LoopWriter:
    """SQLite file only: commit the rows of single predictions on the event loop.

    Handing rows to a thread and waking the loop again costs more than the commit itself: in
    WAL mode with synchronous=NORMAL a commit appends the new pages to the log and does not
    sync (the checkpoints, which do, run in the Checkpointer's thread). Everything submitted
    during one pass of the loop is committed together at its end. The attempt never waits:
    its connection has busy_timeout 0, so a lock held elsewhere (another worker process, a
    batch in the writer thread) makes it hand the rows to the writer thread, which waits for
    the lock. Any other error does the same, and the writer thread then reports it.
    """

    def __init__(self, audit: AuditLog, fallback: AuditWriter) -> None:
        if audit.sqlite_file is None:
            raise ValueError("LoopWriter needs an SQLite file as the audit database")
        self.audit, self.path, self.fallback = audit, audit.sqlite_file, fallback
        self._conn: sqlite3.Connection | None = None
        self._pending: list[tuple[Rows, asyncio.Future[bool]]] = []

    async def commit(self, rows: Rows) -> None:
        """Return once ``rows`` are committed; raise what the writer thread raised if not."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[bool] = loop.create_future()
        if not self._pending:
            loop.call_soon(self._flush)
        self._pending.append((rows, done))
        if not await done:
            await asyncio.wrap_future(self.fallback.submit(rows))

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _flush(self) -> None:
        pending, self._pending = self._pending, []
        committed = self._try_commit([row for rows, _ in pending for row in rows])
        for _, done in pending:
            if not done.cancelled():
                done.set_result(committed)

    def _try_commit(self, rows: Rows) -> bool:
        try:
            conn = self._connection()
            conn.execute("BEGIN")
            try:
                for sql, values in self.audit.insert.statements(rows):
                    conn.execute(sql, values)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        except Exception as exc:
            if not _busy(exc):
                log.debug("audit commit on the loop failed (%s); the writer thread retries", exc)
                self.close()
            return False
        return True

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            sqlite_pragmas(conn, busy_timeout_ms=0, background_checkpoints=True)
            self._conn = conn
        return self._conn


def _busy(exc: Exception) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    return code is not None and code & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
