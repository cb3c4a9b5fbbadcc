"""SQLite file only: commit the rows of single predictions on the event loop itself.

Handing rows to a thread and waking the loop again costs more than the commit itself: in WAL
mode with synchronous=NORMAL a commit appends the new pages to the log and does not sync (the
checkpoints, which do, run in their own thread: db/checkpoint.py); with synchronous=FULL
(SEPSIS_API_SQLITE_SYNCHRONOUS) each commit also syncs the log, here on the loop. The attempt
never waits for a lock; when it cannot commit, the rows go to the group-commit writer thread
(db/group_commit.py), and only that wait is bounded by a timer.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3

from sepsis_api.config import SqliteSynchronous
from sepsis_api.db.audit import AuditLog
from sepsis_api.db.group_commit import AuditWriter
from sepsis_api.db.row_stream import Rows
from sepsis_api.db.session import sqlite_pragmas

log = logging.getLogger("sepsis_api.audit")


class LoopWriter:
    """Everything submitted during one pass of the loop is committed together at its end.

    Its connection has busy_timeout 0, so a lock held elsewhere (another worker process, a
    batch in the writer thread) makes it hand the rows to the writer thread, which waits for
    the lock. Any other error does the same, and the writer thread then reports it.
    """

    def __init__(
        self, audit: AuditLog, fallback: AuditWriter, *, synchronous: SqliteSynchronous
    ) -> None:
        """``synchronous``: the PRAGMA of the engine's connections (Settings.sqlite_synchronous)."""
        if audit.sqlite_file is None:
            raise ValueError("LoopWriter needs an SQLite file as the audit database")
        self.audit, self.path, self.fallback = audit, audit.sqlite_file, fallback
        self.synchronous = synchronous
        self._conn: sqlite3.Connection | None = None
        self._pending: list[tuple[Rows, asyncio.Future[bool]]] = []

    async def commit(self, rows: Rows, timeout: float | None = None) -> None:
        """Return once ``rows`` are committed; raise what the writer thread raised if not.

        The commit on the loop is never timed; when the rows go to the writer thread, its
        confirmation is awaited at most ``timeout`` seconds (then TimeoutError; the thread
        may still commit them later). WriterStopped when that thread is not running.
        """
        loop = asyncio.get_running_loop()
        done: asyncio.Future[bool] = loop.create_future()
        if not self._pending:
            loop.call_soon(self._flush)
        self._pending.append((rows, done))
        if not await done:
            handed = asyncio.wrap_future(self.fallback.submit(rows))
            # shielded: giving up waiting leaves the thread's own future alone
            await asyncio.wait_for(asyncio.shield(handed), timeout)

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
            sqlite_pragmas(
                conn, busy_timeout_ms=0, background_checkpoints=True, synchronous=self.synchronous
            )
            self._conn = conn
        return self._conn


def _busy(exc: Exception) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    return code is not None and code & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
