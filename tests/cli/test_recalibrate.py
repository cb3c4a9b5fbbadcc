"""`sepsis-api recalibrate` end to end: a local population whose risk the shipped model gets
wrong, a new version whose calibration-in-the-large there is ~0, listed, verified, activated
on a real server and served."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest

from factories import PATIENT
from sepsis_api.ml.data import load_training_data
from sepsis_api.ml.scoring import Predictor, score
from sepsis_api.ml.store import ModelVersion, Registry, sha256_of
from sepsis_api.monitoring.calibration import calibration_figures
from server import ServerProcess

ADMIN_KEY = "r" * 24


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sepsis_api.cli", *args], capture_output=True, text=True, timeout=600
    )


@pytest.fixture(scope="module")
def local_csv(train_csv: Path, tmp_path_factory) -> Path:
    """The training rows with two negatives in three left out: sepsis is more common here
    than where the model was fitted, so its risks are too low."""
    frame = pd.read_csv(train_csv, encoding="utf-8-sig", lineterminator="\r")
    frame.columns = [c.strip() for c in frame.columns]
    negatives = frame.index[frame["Sepssis"].str.strip() == "Negative"]
    local = frame.drop(negatives[np.arange(len(negatives)) % 3 != 0])
    path = tmp_path_factory.mktemp("local") / "local.csv"
    local.to_csv(path, index=False)
    return path


def _citl(version: ModelVersion, name: str, csv: Path) -> float:
    data = load_training_data(csv)
    p = score(Predictor(version).models[name], data.X).probability
    intercept, _ = calibration_figures(p, data.y)
    assert intercept.estimate is not None
    return intercept.estimate


@pytest.fixture(scope="module", params=["intercept", "logistic"])
def recalibrated(request, shipped, local_csv, tmp_path_factory) -> tuple[ModelVersion, Path, str]:
    out = tmp_path_factory.mktemp(f"models-{request.param}")
    done = _cli("recalibrate", "--data", str(local_csv), "--from", shipped.version,
                "--out", str(out), "--method", request.param)  # fmt: skip
    assert done.returncode == 0, done.stderr
    [path] = [p for p in out.iterdir() if p.is_dir()]
    assert path.name in done.stdout
    return ModelVersion.open(path), out, request.param  # open() verifies every hash


def test_calibration_in_the_large_on_the_local_data_is_zero(recalibrated, shipped, local_csv):
    version, _, method = recalibrated
    for name in version.model_names:
        assert _citl(shipped, name, local_csv) > 0.3  # the parent's risks are too low here
        assert _citl(version, name, local_csv) == pytest.approx(0.0, abs=1e-6)
    if method == "logistic":
        data = load_training_data(local_csv)
        p = score(Predictor(version).default, data.X).probability
        _, slope = calibration_figures(p, data.y)
        assert slope.estimate == pytest.approx(1.0, abs=1e-6)


def test_the_card_records_parent_method_and_data(recalibrated, shipped, local_csv):
    version, _, method = recalibrated
    card = version.card
    assert card["parent_version"] == shipped.version
    assert card["recalibration"]["method"] == method
    assert card["recalibration"]["data"]["sha256"] == sha256_of(local_csv)
    assert card["recalibration"]["data"]["rows"] == len(load_training_data(local_csv))
    for name in version.model_names:
        model = card["models"][name]
        fitted = model["recalibration"]["fitted"]
        if method == "intercept":
            assert fitted["slope"] == 1.0 and fitted["slope_interval"] is None
        else:
            low, high = fitted["slope_interval"]["low"], fitted["slope_interval"]["high"]
            assert low < fitted["slope"] < high
        # the parent has no map, so the stored map is the fitted one
        assert model["recalibration"]["slope"] == fitted["slope"]
        assert model["recalibration"]["intercept"] == fitted["intercept"] != 0.0
        # threshold chosen again by the training rule, on the local data
        assert model["threshold"] != shipped.model_card(name)["threshold"]
        assert model["metrics"] == shipped.model_card(name)["metrics"]
    model_card = (version.path / "MODEL_CARD.md").read_text()
    assert shipped.version in model_card and sha256_of(local_csv) in model_card
    # the same fitted pipelines
    for name in version.model_names:
        rel = card["models"][name]["files"]["sklearn"]
        assert sha256_of(version.path / rel) == sha256_of(shipped.path / rel)


def test_it_is_listed_activated_and_served(recalibrated, shipped, tmp_path):
    version, out, _ = recalibrated
    listed = _cli("models", "list", "--registry", str(out))
    assert listed.returncode == 0 and version.version in listed.stdout
    env = {"SEPSIS_API_MODEL_DIR": str(out), "SEPSIS_API_ADMIN_KEYS": f"ops:{ADMIN_KEY}"}
    with ServerProcess(tmp_path, env) as srv:
        r = httpx.post(srv.url + "/v1/admin/activate", json={"version": version.version},
                       headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=60)  # fmt: skip
        assert r.status_code == 200, r.text
        reply = httpx.post(srv.url + "/v1/predict", json=PATIENT, timeout=30).json()
    [served] = reply["predictions"]
    assert served["model_version"] == version.version
    model = Predictor(version).default
    x = np.array([[PATIENT[c] for c in version.card["features"]]], dtype=float)
    assert served["probability"] == pytest.approx(score(model, x).probability[0], abs=1e-12)
    parent = score(Predictor(shipped).default, x).probability[0]
    assert served["probability"] > parent  # the local population's risk is higher
    assert served["threshold"] == version.model_card(model.name)["threshold"]


def test_an_unknown_parent_is_refused(local_csv, tmp_path):
    done = _cli("recalibrate", "--data", str(local_csv), "--from", "19990101-00000000",
                "--out", str(tmp_path))  # fmt: skip
    assert done.returncode == 2
    assert "unknown model version '19990101-00000000'" in done.stderr
    assert not any(tmp_path.iterdir())
    assert Registry([tmp_path]).versions() == []
