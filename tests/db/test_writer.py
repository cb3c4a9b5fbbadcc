"""The audit writer thread on a real SQLite file: group commits and streamed batches."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from sepsis_api.config import Settings
from sepsis_api.db.audit import AuditLog, open_audit
from sepsis_api.db.writer import AuditWriter, StreamAborted
from sepsis_api.ids import new_ids


@pytest.fixture
def audit(tmp_path) -> AuditLog:
    log = open_audit(Settings(_env_file=None, data_dir=tmp_path))
    yield log
    log.engine.dispose()


def _rows(audit: AuditLog, n: int, patient: str) -> list[tuple]:
    return audit.insert.params(
        n,
        {
            "id": new_ids(n),
            "patient_id": [f"{patient}{i}" for i in range(n)],
            "probability": [0.5] * n,
            "label": ["Positive"] * n,
            "risk_band": ["high"] * n,
        },
        {
            "created_at": datetime.now(UTC),
            "request_id": "r",
            "caller": "c",
            "source": "batch",
            "inputs": {"PL": 148},
            "model_name": "m",
            "model_version": "v",
            "threshold": 0.3,
            "contributions": None,
        },
    )


def _count(audit: AuditLog, prefix: str) -> int:
    with audit.engine.connect() as conn:
        return conn.exec_driver_sql(
            "SELECT count(*) FROM predictions WHERE patient_id LIKE ?", (f"{prefix}%",)
        ).scalar()


def test_a_stream_commits_all_its_chunks_and_what_was_queued_behind_it(audit):
    writer = AuditWriter(audit)
    try:
        stream = writer.stream()
        after = writer.submit(_rows(audit, 3, "B"))  # queued behind the open stream
        for _ in range(3):
            stream.put(_rows(audit, 1000, "S"))
        assert not stream.future.done() and not after.done()
        stream.close()
        stream.future.result(timeout=10)
        after.result(timeout=10)
        assert _count(audit, "S") == 3000 and _count(audit, "B") == 3
    finally:
        writer.close()


def test_an_aborted_stream_leaves_nothing_behind(audit):
    writer = AuditWriter(audit)
    try:
        stream = writer.stream()
        stream.put(_rows(audit, 500, "S"))
        stream.abort()
        with pytest.raises(StreamAborted):
            stream.future.result(timeout=10)
        writer.submit(_rows(audit, 2, "B")).result(timeout=10)
        assert _count(audit, "S") == 0 and _count(audit, "B") == 2
    finally:
        writer.close()
