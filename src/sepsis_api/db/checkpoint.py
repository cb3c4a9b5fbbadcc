"""SQLite WAL checkpoints in a thread of their own, so no commit waits for one.

The server's connections do not checkpoint on commit (db/session.py), since a checkpoint
syncs the files and would stall whichever commit triggered it. A passive checkpoint runs
beside the writers every few seconds and copies what no reader still needs back into the
database file.
"""

from __future__ import annotations

import logging
import threading

from sepsis_api.db.audit import AuditLog

log = logging.getLogger("sepsis_api.audit")


class Checkpointer:
    """SQLite: run ``PRAGMA wal_checkpoint(PASSIVE)`` every ``seconds`` in its own thread."""

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
