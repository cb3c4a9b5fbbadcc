"""Drift: PSI against a hand computation; the route over real SQLite and PostgreSQL databases
flags a shifted feature and leaves an unshifted sample of adequate size alone."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from factories import record_scored
from sepsis_api.cli.traffic import Shift, patient_records, shifted
from sepsis_api.ml.data import load_table
from sepsis_api.monitoring import drift as d
from sepsis_api.schema import FEATURES

N = 600  # above MIN_PSI_ROWS


def test_psi_matches_a_hand_computation():
    # shares 0.1, 0.2, 0.3, 0.4 against 0.2, 0.2, 0.2, 0.4:
    # (0.2 - 0.1) ln(0.2 / 0.1) + 0 + (0.2 - 0.3) ln(0.2 / 0.3) + 0
    hand = 0.1 * math.log(2) + (-0.1) * math.log(2 / 3)
    assert d.psi([10, 20, 30, 40], [2, 2, 2, 4]) == pytest.approx(hand, rel=1e-12)
    assert hand == pytest.approx(0.1098612, abs=1e-7)
    # An empty reference bin is floored at 1e-4 instead of dividing by zero; a bin empty on
    # both sides adds nothing.
    floored = (0.5 - 1e-4) * math.log(0.5 / 1e-4) + (0.5 - 1.0) * math.log(0.5 / 1.0)
    assert d.psi([0, 10, 0], [5, 5, 0]) == pytest.approx(floored, rel=1e-12)
    assert d.psi([3, 7], [30, 70]) == 0
    with pytest.raises(ValueError):
        d.psi([1, 2], [0, 0])


def test_status_thresholds():
    assert [d.psi_status(v) for v in (None, 0.0, 0.099, 0.1, 0.249, 0.25)] == [
        "insufficient_data",
        "ok",
        "ok",
        "warn",
        "warn",
        "alert",
    ]


def expected_psi(card: dict, X: np.ndarray) -> dict[str, float]:
    """The window's PSI per feature from numpy and the card's bins (the SQL's reference)."""
    out = {}
    for j, f in enumerate(FEATURES):
        ref = card["drift_reference"]["features"][f.code]
        col = X[:, j]
        missing = np.isnan(col) | ((col == 0) if f.zero_means_missing else False)
        bins = np.searchsorted(ref["edges"], col[~missing], side="right")
        live = [*np.bincount(bins, minlength=len(ref["counts"])), int(missing.sum())]
        out[f.code] = d.psi([*ref["counts"], ref["missing"]], live)
    return out


def sample(train_csv: Path, seed: int, shifts: list[Shift] = ()) -> np.ndarray:  # type: ignore[assignment]
    X = load_table(train_csv).X
    return shifted(X[np.random.default_rng(seed).integers(0, len(X), N)], list(shifts))


def post(client, X: np.ndarray) -> None:
    r = client.post("/v1/predict/batch", json={"patients": patient_records(X)})
    assert r.status_code == 200, r.text


def check_route(client, shipped, train_csv: Path) -> None:
    plain = sample(train_csv, 1)
    post(client, plain)
    report = client.get("/v1/monitoring/drift").json()
    assert report["model_version"] == shipped.version
    assert report["model"] == shipped.default_model
    assert report["n"] == N
    want = expected_psi(shipped.card, plain)
    for f in report["features"]:
        assert f["psi"] == pytest.approx(want[f["feature"]], abs=1e-9), f["feature"]
        assert f["status"] == "ok", f
        assert f["out_of_range_fraction"] == 0.0
    assert report["predicted_risk"]["status"] == "ok"
    assert report["alert_rate"]["status"] == "ok"
    assert report["status"] == "ok"
    pl = next(f for f in report["features"] if f["feature"] == "PL")
    measured = plain[:, 1][plain[:, 1] > 0]
    assert pl["mean"] == pytest.approx(measured.mean())
    assert pl["missing_fraction"] == pytest.approx(1 - len(measured) / N)
    assert sum(day["n"] for day in report["alerts_per_day"]) == N
    assert sum(day["alerts"] for day in report["alerts_per_day"]) == report["alert_rate"]["alerts"]

    # A second window of patients with PL shifted by +30: only PL (and the risk) drift.
    since = report["until"]  # after the first batch was committed
    moved = sample(train_csv, 2, [Shift("PL", 1, 30.0)])
    post(client, moved)
    later = client.get("/v1/monitoring/drift", params={"since": since}).json()
    assert later["n"] == N
    status = {f["feature"]: f["status"] for f in later["features"]}
    assert status.pop("PL") == "alert"
    assert set(status.values()) == {"ok"}
    assert later["predicted_risk"]["psi"] >= d.PSI_WARN
    assert later["status"] == "alert"
    pl = next(f for f in later["features"] if f["feature"] == "PL")
    assert pl["out_of_range_fraction"] > 0  # PL + 30 passes the training maximum of 198


def test_route_on_sqlite(make_client, shipped, train_csv):
    check_route(make_client(), shipped, train_csv)


def test_route_on_postgresql(make_client, postgres, shipped, train_csv):
    url = postgres.create_database("drift_route")
    check_route(make_client(database_url=url), shipped, train_csv)


def test_small_windows_are_insufficient_data_not_a_number(client, shipped, train_csv):
    post(client, sample(train_csv, 3)[:50])
    report = client.get("/v1/monitoring/drift").json()
    assert report["n"] == 50
    assert report["status"] == "insufficient_data"
    assert "500" in report["detail"]
    assert all(f["psi"] is None and f["status"] == "insufficient_data" for f in report["features"])
    risk = report["predicted_risk"]
    assert {k: risk[k] for k in ("n", "psi", "status")} == {
        "n": 50,
        "psi": None,
        "status": "insufficient_data",
    }
    # the bins are still given, to draw: one more count than edges, summing to the window
    assert len(risk["counts"]) == len(risk["edges"]) + 1 == len(risk["reference_counts"])
    assert sum(risk["counts"]) == 50 and risk["edges"] == sorted(risk["edges"])
    assert report["alert_rate"]["status"] == "insufficient_data"
    assert report["alert_rate"]["ci_low"] is not None  # the interval itself is still given


def test_a_window_without_estimates_is_insufficient_data_not_an_error(client):
    r = client.get("/v1/monitoring/drift", params={"since": "2020-01-06T00:00:00Z"})
    assert r.status_code == 200, r.text
    report = r.json()
    assert report["n"] == 0 and report["status"] == "insufficient_data"
    assert report["features"] and all(
        f["psi"] is None and f["observed"] == 0 and f["mean"] is None for f in report["features"]
    )
    risk = report["predicted_risk"]
    assert risk["psi"] is None and sum(risk["counts"]) == 0 and sum(risk["reference_counts"]) > 0
    assert report["alert_rate"]["estimate"] is None and report["alerts_per_day"] == []


def test_a_version_without_reference_bins_says_so(make_client, shipped, tmp_path, train_csv):
    old = tmp_path / "models" / shipped.version
    shutil.copytree(shipped.path, old)
    card = json.loads((old / "card.json").read_text())
    del card["drift_reference"]  # as cards were before they stored the bins
    (old / "card.json").write_text(json.dumps(card))
    client = make_client(model_dir=tmp_path / "models")
    post(client, sample(train_csv, 4)[:200])
    r = client.get("/v1/monitoring/drift")
    assert r.status_code == 200
    report = r.json()
    assert report["status"] == "no_reference"
    assert "no drift reference" in report["detail"]
    assert report["features"] == [] and report["predicted_risk"]["status"] == "no_reference"
    assert report["alert_rate"]["n"] == 200 and report["alert_rate"]["status"] != "no_reference"


def test_bad_queries_are_422_naming_the_field(client, shipped):
    r = client.get("/v1/monitoring/drift", params={"model_version": "19990101-nope"})
    assert r.status_code == 422
    err = r.json()["errors"][0]
    assert err["field"] == "model_version" and err["value"] == "19990101-nope"
    assert shipped.version in err["expected"]
    r = client.get("/v1/monitoring/drift", params={"model": "svm"})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "model"
    r = client.get(
        "/v1/monitoring/drift",
        params={"since": "2026-12-02T00:00:00Z", "until": "2026-12-01T00:00:00Z"},
    )
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "since"
    r = client.get("/v1/monitoring/drift", params={"since": "yesterday"})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "since"


def test_whole_past_days_are_counted_once_and_kept(tmp_path, shipped, train_csv):
    from datetime import UTC, datetime, timedelta

    from sepsis_api.config import Settings
    from sepsis_api.db.audit import open_audit
    from sepsis_api.ml.scoring import Predictor

    audit = open_audit(Settings(_env_file=None, data_dir=tmp_path))
    model = Predictor(shipped).default
    X = sample(train_csv, 5)
    now = datetime.now(UTC)
    # 600 estimates over four days: three whole past days and today (the last 150).
    stamps = [now - timedelta(days=3 - i // 150, minutes=i % 150) for i in range(N)]
    s = record_scored(audit, model, X, stamps)
    window = d.Window.recent(shipped.version, model.name)
    d.CLOSED_DAYS.clear()
    cold = d.drift_report(audit.engine, shipped.card, window).as_dict()
    kept = len(d.CLOSED_DAYS._days)
    assert kept >= 2  # the whole past days (the oldest may start inside the window)
    warm = d.drift_report(audit.engine, shipped.card, window).as_dict()
    assert warm == cold
    assert len(d.CLOSED_DAYS._days) == kept
    assert cold["n"] == N
    want = expected_psi(shipped.card, X)
    for f in cold["features"]:
        assert f["psi"] == pytest.approx(want[f["feature"]], abs=1e-9), f["feature"]
    days = cold["alerts_per_day"]
    assert [day["date"] for day in days] == sorted({t.date().isoformat() for t in stamps})
    assert sum(day["n"] for day in days) == N
    assert sum(day["alerts"] for day in days) == int(s.positive.sum())
    audit.engine.dispose()


def test_an_empty_window_is_insufficient_data(client):
    for params in ({}, {"until": "2000-01-01T00:00:00Z"}, {"since": "0001-01-01T00:00:00Z"}):
        r = client.get("/v1/monitoring/drift", params=params)
        assert r.status_code == 200, r.text
        report = r.json()
        assert report["n"] == 0 and report["status"] == "insufficient_data"
        assert all(f["psi"] is None and f["mean"] is None for f in report["features"])
        assert report["alerts_per_day"] == [] and report["alert_rate"]["estimate"] is None
