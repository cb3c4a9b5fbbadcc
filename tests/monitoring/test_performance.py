"""The performance figures against scikit-learn on the same rows; status; windows."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest
from sklearn.metrics import brier_score_loss, confusion_matrix, recall_score, roc_auc_score

from sepsis_api.ml.data import load_training_data
from sepsis_api.ml.scoring import Predictor, score
from sepsis_api.monitoring.performance import (
    BANDS,
    FIGURES,
    MIN_EVENTS,
    Labelled,
    band_codes,
    figures,
    report,
    windows,
)


@pytest.fixture(scope="module")
def scored(train_csv, shipped):
    data = load_training_data(train_csv)
    model = Predictor(shipped).default
    s = score(model, data.X)
    band = band_codes(s.band)
    assert [BANDS[b] for b in band] == list(s.band)
    labelled = Labelled(s.probability, data.y.astype(bool), s.positive, band, None)
    return labelled, shipped.model_card(model.name), shipped.card["validation"]


def test_figures_equal_scikit_learn_on_the_same_rows(scored) -> None:
    data, _, _ = scored
    y, p = data.outcome.astype(int), data.probability
    got = figures(data)
    assert got["n"] == len(y) and got["events"] == int(y.sum())
    assert got["roc_auc"]["estimate"] == pytest.approx(roc_auc_score(y, p), abs=1e-12)
    assert got["brier"]["estimate"] == pytest.approx(brier_score_loss(y, p), abs=1e-12)
    flagged = data.alert.astype(int)
    assert got["sensitivity"]["estimate"] == pytest.approx(recall_score(y, flagged))
    tn, fp, fn, tp = confusion_matrix(y, flagged).ravel()
    assert got["specificity"]["estimate"] == pytest.approx(tn / (tn + fp))
    assert got["ppv"]["estimate"] == pytest.approx(tp / (tp + fp))
    assert got["npv"]["estimate"] == pytest.approx(tn / (tn + fn))
    assert got["alert_rate"]["estimate"] == pytest.approx(flagged.mean())
    assert got["observed_expected_ratio"]["estimate"] == pytest.approx(y.sum() / p.sum())
    for key in FIGURES:
        f = got[key]
        assert f["ci_low"] <= f["estimate"] <= f["ci_high"], key
    assert [b["band"] for b in got["by_band"]] == list(BANDS)
    assert sum(b["n"] for b in got["by_band"]) == len(y)
    assert sum(b["events"] for b in got["by_band"]) == y.sum()
    # the training rows: enough events and non-events
    assert got["status"] == "ok" and got["reason"] is None


def test_card_figures_sit_beside_the_local_ones(scored) -> None:
    data, model_card, validation = scored
    got = report(data, model_card=model_card, validation=validation)
    card = got["card"]
    assert card["roc_auc"]["estimate"] == model_card["metrics"]["roc_auc"]["mean"]
    assert card["sensitivity"]["ci_low"] == model_card["operating_point"]["sensitivity"]["low"]
    assert card["calibration_slope"] == {"estimate": None, "ci_low": None, "ci_high": None}
    assert card["threshold"] == model_card["threshold"]
    assert set(FIGURES) <= set(card)


def test_few_outcomes_are_insufficient_data(scored) -> None:
    data, _, _ = scored
    some = data.take(np.arange(60))
    got = figures(some)
    assert got["status"] == "insufficient_data"
    assert got["minimum"] == {"events": MIN_EVENTS, "non_events": 100}
    assert f"{got['events']} events (need {MIN_EVENTS})" in got["reason"]
    assert got["roc_auc"]["estimate"] is not None  # still computed, with its wide interval
    none = figures(data.take(np.arange(0)))
    assert none["n"] == 0 and none["status"] == "insufficient_data"
    assert all(none[k] == {"estimate": None, "ci_low": None, "ci_high": None} for k in FIGURES)


def test_windows_are_calendar_weeks_and_months_in_utc() -> None:
    times = [
        datetime(2026, 11, 29, 23, 59, tzinfo=UTC),  # a Sunday
        datetime(2026, 11, 30, 0, 0, 1, tzinfo=UTC),  # the Monday after
        datetime(2026, 12, 1, tzinfo=UTC),
        datetime(2024, 2, 29, tzinfo=UTC),
    ]
    created = np.array([t.timestamp() for t in times], dtype=np.int64)
    weeks = [
        (datetime.fromtimestamp(s, UTC).date().isoformat(), list(i))
        for s, _, i in windows(created, "week")
    ]

    assert weeks == [("2024-02-26", [3]), ("2026-11-23", [0]), ("2026-11-30", [1, 2])]

    def day(t: int) -> str:
        return datetime.fromtimestamp(t, UTC).date().isoformat()

    months = [(day(s), day(e), list(i)) for s, e, i in windows(created, "month")]
    assert list(windows(created[:0], "week")) == list(windows(created[:0], "month")) == []
    assert months == [
        ("2024-02-01", "2024-03-01", [3]),
        ("2026-11-01", "2026-12-01", [0, 1]),
        ("2026-12-01", "2027-01-01", [2]),
    ]
    assert [list(windows(created[:0], every)) for every in ("week", "month")] == [[], []]


def test_report_by_window_holds_each_windows_figures(scored) -> None:
    data, model_card, validation = scored
    n = len(data)
    start = int(datetime(2026, 1, 5, tzinfo=UTC).timestamp())  # a Monday
    created = start + (np.arange(n) % 3) * 7 * 86_400  # three weeks, rows interleaved
    timed = Labelled(data.probability, data.outcome, data.alert, data.band, created)
    got = report(timed, model_card=model_card, validation=validation, every="week")
    assert [w["start"] for w in got["windows"]] == [
        "2026-01-05T00:00:00+00:00",
        "2026-01-12T00:00:00+00:00",
        "2026-01-19T00:00:00+00:00",
    ]
    first = got["windows"][0]
    rows = np.arange(n) % 3 == 0
    assert first["n"] == rows.sum()
    y, p = data.outcome[rows].astype(int), data.probability[rows]
    assert first["roc_auc"]["estimate"] == pytest.approx(roc_auc_score(y, p), abs=1e-12)
    assert got["n"] == n
