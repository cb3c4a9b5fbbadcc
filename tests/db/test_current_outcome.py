"""``predictions.outcome``: migration 0006 fills it from the outcomes already recorded, and the
outcome log keeps it equal to the latest revision; on SQLite and on PostgreSQL."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

from sqlalchemy import func, insert, inspect, select

from factories import audit_rows
from sepsis_api.db import migrate
from sepsis_api.db.audit import AuditLog
from sepsis_api.db.models import Outcome, Prediction
from sepsis_api.db.outcomes import OutcomeIn, OutcomeLog
from sepsis_api.ids import new_id, new_ids

_names = itertools.count()


def _predictions(audit: AuditLog, n: int) -> list[str]:
    ids = new_ids(n)
    probability = [0.1 * i for i in range(n)]
    audit.record(
        audit_rows(
            audit,
            n,
            ids=ids,
            probability=probability,
            label="Negative",
            risk_band="low",
            threshold=0.5,
        )
    )
    return ids


def _current(engine) -> dict[str, str | None]:
    with engine.connect() as conn:
        return dict(conn.execute(select(Prediction.id, Prediction.outcome)).all())


def test_the_migration_fills_the_current_outcome_and_goes_back(engine):
    migrate.upgrade(engine, "0005")
    ids = _predictions(AuditLog(engine), 3)
    now = datetime.now(UTC)
    revisions = [(ids[0], 1, "Positive"), (ids[1], 1, "Positive"), (ids[1], 2, "Negative")]
    with engine.begin() as conn:
        conn.execute(
            insert(Outcome),
            [
                {
                    "id": new_id(),
                    "prediction_id": pid,
                    "revision": rev,
                    "outcome": outcome,
                    "recorded_at": now,
                    "recorded_by": "k",
                }
                for pid, rev, outcome in revisions
            ],
        )
    migrate.upgrade(engine)
    assert _current(engine) == {ids[0]: "Positive", ids[1]: "Negative", ids[2]: None}
    migrate.downgrade(engine, "0005")
    columns = {c["name"] for c in inspect(engine).get_columns("predictions")}
    assert "outcome" not in columns
    with engine.connect() as conn:
        assert sorted(conn.scalars(select(Prediction.id))) == sorted(ids)
        assert conn.scalar(select(func.count()).select_from(Outcome)) == len(revisions)
    migrate.upgrade(engine)
    assert _current(engine) == {ids[0]: "Positive", ids[1]: "Negative", ids[2]: None}


def test_recording_outcomes_keeps_the_latest_revision_on_the_prediction(engine):
    migrate.upgrade(engine)
    ids = _predictions(AuditLog(engine), 3)
    log = OutcomeLog(engine)
    log.record([OutcomeIn(ids[0], "Positive"), OutcomeIn(ids[1], "Negative")], "k")
    assert _current(engine) == {ids[0]: "Positive", ids[1]: "Negative", ids[2]: None}
    # a revision, and the same prediction twice in one call: the last one is current
    log.record(
        [
            OutcomeIn(ids[0], "Negative"),
            OutcomeIn(ids[2], "Negative"),
            OutcomeIn(ids[2], "Positive"),
        ],
        "k",
    )
    assert _current(engine) == {ids[0]: "Negative", ids[1]: "Negative", ids[2]: "Positive"}
    latest = {pid: r["outcome"] for pid, r in log.current(ids).items()}
    assert latest == _current(engine)
    # an idempotent repeat changes nothing
    log.record([OutcomeIn(ids[1], "Negative")], "k")
    assert _current(engine)[ids[1]] == "Negative"
    assert len(log.revisions(ids[2])) == 2
