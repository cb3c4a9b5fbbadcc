"""Training: the documented rules (threshold, bands, default choice), determinism."""

from __future__ import annotations

import numpy as np
import pytest

from sepsis_api.ml import evaluate as ev
from sepsis_api.ml.scoring import RiskBands
from sepsis_api.ml.train import CANDIDATES, CandidateResult, choose_default, train


def test_threshold_rule_finds_at_least_80_percent_of_cases(small_version, train_csv):
    from sepsis_api.ml.data import load_training_data

    data = load_training_data(train_csv)
    for name in small_version.model_names:
        card = small_version.model_card(name)
        p = small_version.load_sklearn(name).predict_proba(data.X)[:, 1]
        assert 0 < card["threshold"] < 1
        op = card["operating_point"]
        assert op["sensitivity"]["value"] >= 0.80
        assert op["sensitivity"]["low"] <= op["sensitivity"]["value"] <= op["sensitivity"]["high"]
        bands = card["risk_bands"]
        assert bands["moderate_from"] <= card["threshold"] <= bands["high_from"]
        assert p.min() < bands["moderate_from"] and p.max() >= bands["high_from"]


def test_threshold_helpers_on_a_known_case():
    y = np.array([0, 0, 0, 0, 1, 1, 1, 1, 1])
    p = np.array([0.1, 0.2, 0.3, 0.6, 0.4, 0.5, 0.7, 0.8, 0.9])
    t = ev.threshold_for_sensitivity(y, p, 0.8)  # 4 of 5 positives: the 4th highest is 0.5
    assert t == 0.5
    assert ev.operating_metrics(y, p, t)["sensitivity"] == 0.8
    t_spec = ev.threshold_for_specificity(y, p, 0.75)  # 3 of 4 negatives below
    assert 0.3 < t_spec <= 0.31
    assert ev.operating_metrics(y, p, t_spec)["specificity"] == 0.75
    bands = RiskBands(0.2, 0.6)
    assert list(bands.band(np.array([0.1, 0.2, 0.59, 0.6]))) == [
        "low",
        "moderate",
        "moderate",
        "high",
    ]


def _fake(name: str, aucs: list[float]) -> CandidateResult:
    return CandidateResult(
        name=name,
        display_name=name,
        calibration="none",
        fold_scores={"roc_auc": np.array(aucs)},
        uncalibrated_fold_scores={},
        oof=np.zeros(1),
        threshold=0.5,
        bands=RiskBands(0.2, 0.6),
        operating_point={},
        importance={},
        fitted=None,
    )


def test_default_is_the_simpler_model_when_within_the_best_interval():
    lr, rf, gb = (c.name for c in CANDIDATES)
    close = {lr: _fake(lr, [0.80, 0.82]), rf: _fake(rf, [0.78, 0.86]), gb: _fake(gb, [0.7, 0.7])}
    assert choose_default(close) == lr
    far = {lr: _fake(lr, [0.70, 0.71]), rf: _fake(rf, [0.85, 0.86]), gb: _fake(gb, [0.7, 0.7])}
    assert choose_default(far) == rf


@pytest.mark.slow
def test_same_seed_gives_identical_models(train_csv, small_version):
    again = train(train_csv, seed=7, n_repeats=1, n_jobs=1)  # other worker count, same seed
    assert again.version == small_version.version
    assert again.default == small_version.default_model
    from sepsis_api.ml.data import load_table
    from sepsis_api.ml.flatten import compile_pipeline

    X = load_table(train_csv).X
    for name, result in again.candidates.items():
        card = small_version.model_card(name)
        assert {k: v.as_dict() for k, v in result.metrics().items()} == card["metrics"]
        assert result.threshold == card["threshold"]
        assert np.array_equal(
            compile_pipeline(result.fitted).predict_proba(X),
            small_version.load_compiled(name).predict_proba(X),
        )
