"""`sepsis-api evaluate` end to end: a labelled file (CSV and Parquet) scored with a version,
evaluation.json with the keys of GET /v1/monitoring/performance and figures equal to
scikit-learn's, evaluation.html with its plots; bad input writes nothing."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from sklearn.metrics import brier_score_loss, recall_score, roc_auc_score

from sepsis_api.api.routes.performance import Figures
from sepsis_api.ml.data import load_training_data
from sepsis_api.ml.scoring import Predictor, score
from sepsis_api.monitoring.performance import FIGURES


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sepsis_api.cli", "evaluate", *args],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip


def _frame(train_csv: Path) -> pd.DataFrame:
    frame = pd.read_csv(train_csv, encoding="utf-8-sig", lineterminator="\r")
    frame.columns = [c.strip() for c in frame.columns]
    return frame


@pytest.fixture(scope="module")
def parquet(train_csv: Path, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("parquet") / "local.parquet"
    _frame(train_csv).to_parquet(path)
    return path


@pytest.mark.parametrize("kind", ["csv", "parquet"])
def test_evaluation_files_hold_the_figures(kind, train_csv, parquet, shipped, tmp_path) -> None:
    data_file = train_csv if kind == "csv" else parquet
    out = tmp_path / "eval"
    done = _cli("--data", str(data_file), "--output", str(out), "--chunk-rows", "100")
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in out.iterdir()) == ["evaluation.html", "evaluation.json"]
    result = json.loads((out / "evaluation.json").read_text())
    # the keys of the API's figures, the same function computing them
    assert set(Figures.model_fields) <= set(result)
    assert {"card", "methods", "model_version", "model", "threshold", "data"} <= set(result)
    Figures.model_validate({k: result[k] for k in Figures.model_fields})
    data = load_training_data(train_csv)
    model = Predictor(shipped).default
    s = score(model, data.X)
    assert result["model_version"] == shipped.version and result["model"] == model.name
    assert result["data"]["rows"] == len(data) == result["n"]
    assert result["roc_auc"]["estimate"] == pytest.approx(roc_auc_score(data.y, s.probability))
    assert result["brier"]["estimate"] == pytest.approx(brier_score_loss(data.y, s.probability))
    assert result["sensitivity"]["estimate"] == pytest.approx(recall_score(data.y, s.positive))
    assert (
        result["card"]["roc_auc"]["estimate"]
        == (shipped.model_card(model.name)["metrics"]["roc_auc"]["mean"])
    )
    html = (out / "evaluation.html").read_text()
    assert html.count('src="data:image/png;base64,') == 3
    for text in ("ROC curve", "Calibration curve", "Event rate by risk band", "cross-validation"):
        assert text in html
    assert all(f in result for f in FIGURES)


def test_another_model_and_too_few_outcomes(train_csv, tmp_path) -> None:
    small = tmp_path / "small.csv"
    _frame(train_csv).head(80).to_csv(small, index=False)
    done = _cli("--data", str(small), "--output", str(tmp_path / "o"), "--model", "random_forest")
    assert done.returncode == 0, done.stderr
    result = json.loads((tmp_path / "o" / "evaluation.json").read_text())
    assert result["model"] == "random_forest" and result["n"] == 80
    assert result["status"] == "insufficient_data" and "need 100" in result["reason"]
    assert "Not enough outcomes to judge the model" in (tmp_path / "o/evaluation.html").read_text()


def test_bad_input_writes_nothing(train_csv, tmp_path) -> None:
    frame = _frame(train_csv).head(50)
    frame.loc[7, "PR"] = -5
    bad = tmp_path / "bad.csv"
    frame.to_csv(bad, index=False)
    out = tmp_path / "out"
    done = _cli("--data", str(bad), "--output", str(out))
    assert done.returncode == 2
    assert "row 8" in done.stderr and "PR" in done.stderr and "nothing was written" in done.stderr
    assert not out.exists() or not any(out.iterdir())
    unlabelled = tmp_path / "unlabelled.csv"
    frame.drop(columns=["Sepssis"]).to_csv(unlabelled, index=False)
    done = _cli("--data", str(unlabelled), "--output", str(out))
    assert done.returncode == 2 and "Sepssis" in done.stderr
    assert not out.exists() or not any(out.iterdir())
