"""GET /v1/monitoring/performance on a real server, SQLite and PostgreSQL: the data set's
patients scored over HTTP, their outcomes recorded over HTTP (some revised), and the figures
equal to scikit-learn's on the same rows; bad parameters are 422s naming the parameter."""

from __future__ import annotations

import itertools
import math
from typing import Any

import httpx
import numpy as np
import pytest
from sklearn.metrics import brier_score_loss, recall_score, roc_auc_score

from sepsis_api.ml.data import load_training_data
from sepsis_api.schema import FEATURES
from server import ServerProcess

KEY = "perf-test-key-0123456789"
HEADERS = {"Authorization": f"Bearer {KEY}"}
_names = itertools.count()


def _patients(X: np.ndarray) -> list[dict[str, Any]]:
    return [
        {
            f.code: None if math.isnan(v) else (int(v) if f.integer else float(v))
            for f, v in zip(FEATURES, row, strict=True)
        }
        for row in X
    ]


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def served(request, train_csv, tmp_path_factory):
    """A server whose audit log holds the training file's estimates and their outcomes: the
    first 30 recorded wrong and then corrected (the latest revision counts)."""
    env = {"SEPSIS_API_KEYS": f"perf:{KEY}"}
    if request.param == "postgresql":
        env["SEPSIS_API_DATABASE_URL"] = request.getfixturevalue("postgres").create_database(
            f"performance_{next(_names)}"
        )
    data = load_training_data(train_csv)
    with (
        ServerProcess(tmp_path_factory.mktemp(f"perf-{request.param}"), env) as srv,
        httpx.Client(base_url=srv.url, headers=HEADERS, timeout=60) as client,
    ):
        r = client.post("/v1/predict/batch", json={"patients": _patients(data.X)})
        assert r.status_code == 200, r.text
        results = r.json()["results"]
        ids = [item["prediction_id"] for item in results]
        p = np.array([item["probability"] for item in results])
        names = ["Positive" if v else "Negative" for v in data.y]
        flipped = ["Negative" if n == "Positive" else "Positive" for n in names[:30]]
        for batch in (
            [{"prediction_id": i, "outcome": o} for i, o in zip(ids[:30], flipped, strict=True)],
            [{"prediction_id": i, "outcome": o} for i, o in zip(ids, names, strict=True)],
        ):
            r = client.post("/v1/outcomes", json={"outcomes": batch})
            assert r.status_code in (200, 201), r.text
        yield client, p, data.y.astype(int), [item["label"] for item in results]


def test_figures_over_the_api_equal_scikit_learn(served) -> None:
    client, p, y, labels = served
    r = client.get("/v1/monitoring/performance")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model_version"] and body["model"]
    assert body["n"] == len(y) and body["events"] == y.sum()
    assert body["status"] == "ok"
    assert body["roc_auc"]["estimate"] == pytest.approx(roc_auc_score(y, p), abs=1e-12)
    assert body["brier"]["estimate"] == pytest.approx(brier_score_loss(y, p), abs=1e-12)
    flagged = np.array([label == "Positive" for label in labels], dtype=int)
    assert body["sensitivity"]["estimate"] == pytest.approx(recall_score(y, flagged))
    assert body["alert_rate"]["estimate"] == pytest.approx(flagged.mean())
    assert body["card"]["roc_auc"]["estimate"] is not None
    assert [b["band"] for b in body["by_band"]] == ["low", "moderate", "high"]
    assert body["calibration_slope"]["ci_low"] < body["calibration_slope"]["estimate"]


def test_windows_and_filters(served) -> None:
    client, _, y, _ = served
    weekly = client.get("/v1/monitoring/performance", params={"every": "week"}).json()
    assert weekly["every"] == "week"
    assert sum(w["n"] for w in weekly["windows"]) == len(y)
    assert all(w["start"] < w["end"] for w in weekly["windows"])
    monthly = client.get("/v1/monitoring/performance", params={"every": "month"}).json()
    assert sum(w["n"] for w in monthly["windows"]) == len(y)
    later = client.get("/v1/monitoring/performance", params={"since": "2999-01-01T00:00:00Z"})
    assert later.status_code == 200
    assert later.json()["n"] == 0 and later.json()["status"] == "insufficient_data"
    assert later.json()["roc_auc"] == {"estimate": None, "ci_low": None, "ci_high": None}
    other = client.get("/v1/monitoring/performance", params={"model": "random_forest"}).json()
    assert other["model"] == "random_forest" and other["n"] == 0  # nothing scored with it


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"every": "year"}, "every"),
        ({"since": "yesterday"}, "since"),
        ({"until": "2026-13-01T00:00:00Z"}, "until"),
        ({"model": "no_such_model"}, "model"),
        ({"model_version": "19990101-deadbeef"}, "model_version"),
    ],
)
def test_bad_parameters_are_422_naming_them(served, params, field) -> None:
    client, *_ = served
    r = client.get("/v1/monitoring/performance", params=params)
    assert r.status_code == 422, r.text
    errors = r.json()["errors"]
    assert errors[0]["field"] == field, errors
    assert errors[0]["value"] == next(iter(params.values()))


def test_a_key_is_needed(served) -> None:
    client, *_ = served
    r = httpx.get(f"{client.base_url}/v1/monitoring/performance", timeout=30)
    assert r.status_code == 401
