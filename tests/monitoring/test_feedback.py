"""CDS Hooks feedback counts: each card once with its latest feedback, the share accepted with
its Wilson interval, override reasons; on SQLite and on PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from factories import audit_rows
from sepsis_api.db.cds_feedback import FeedbackIn, FeedbackLog
from sepsis_api.ids import new_ids
from sepsis_api.monitoring.feedback import feedback_report
from sepsis_api.monitoring.labelled import Selection
from sepsis_api.monitoring.stats import wilson

T0 = datetime(2026, 12, 1, 8, tzinfo=UTC)


def _cards(audit, n, version="v1", model="m", created=T0):
    ids = new_ids(n)
    audit.record(
        audit_rows(
            audit,
            n,
            ids=ids,
            probability=0.7,
            created_at=created,
            caller="ehr",
            source="cds-hooks",
            model_name=model,
            model_version=version,
        )
    )
    return ids


def test_each_card_counts_once_with_its_latest_feedback(audit):
    cards = _cards(audit, 5)
    other = _cards(audit, 1, version="v0")  # another version: not counted
    late = _cards(audit, 1, created=T0 + timedelta(days=2))  # outside [since, until)
    reason = {"override_system": "urn:x", "override_code": "assessed", "override_display": "A"}
    log = FeedbackLog(audit.engine)
    log.record(
        "sepsis-risk",
        [
            FeedbackIn(cards[0], "accepted", T0),
            FeedbackIn(cards[1], "accepted", T0),
            FeedbackIn(cards[2], "overridden", T0, **reason),
            # overridden first, accepted later: accepted
            FeedbackIn(cards[3], "overridden", T0, **reason),
            FeedbackIn(cards[3], "accepted", T0 + timedelta(minutes=5)),
            # accepted first, overridden later without a reason: overridden
            FeedbackIn(cards[4], "accepted", T0),
            FeedbackIn(cards[4], "overridden", T0 + timedelta(hours=1)),
            FeedbackIn(other[0], "accepted", T0),
            FeedbackIn(late[0], "overridden", T0),
        ],
        "ehr",
        source="cds-hooks",
    )
    got = feedback_report(audit.engine, Selection("v1", "m", T0, T0 + timedelta(days=1)))
    assert (got["cards"], got["accepted"], got["overridden"]) == (5, 3, 2)
    assert got["acceptance_rate"] == wilson(3, 5).as_dict()
    assert got["override_reasons"] == [
        {"system": "urn:x", "code": "assessed", "display": "A", "n": 1},
        {"system": None, "code": None, "display": None, "n": 1},
    ] or got["override_reasons"] == [
        {"system": None, "code": None, "display": None, "n": 1},
        {"system": "urn:x", "code": "assessed", "display": "A", "n": 1},
    ]
    everything = feedback_report(audit.engine, Selection("v1", "m"))
    assert (everything["accepted"], everything["overridden"]) == (3, 3)


def test_no_feedback_is_no_rate(audit):
    _cards(audit, 2)
    got = feedback_report(audit.engine, Selection("v1", "m"))
    assert (got["cards"], got["accepted"], got["overridden"]) == (0, 0, 0)
    assert got["acceptance_rate"] == {"estimate": None, "ci_low": None, "ci_high": None}
    assert got["override_reasons"] == []
