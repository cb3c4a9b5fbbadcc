"""The shipped default model is reproducible from the data set and its card."""

from __future__ import annotations

import pytest

from sepsis_api.ml.publish import library_versions
from sepsis_api.ml.store import sha256_of
from sepsis_api.ml.train import train


@pytest.mark.slow
def test_retraining_reproduces_the_shipped_card(shipped, train_csv):
    card = shipped.card
    assert sha256_of(train_csv) == card["training_data"]["sha256"], "data set changed"
    run = train(
        train_csv,
        seed=card["seed"],
        n_repeats=card["validation"]["repeats"],
        n_splits=card["validation"]["splits"],
    )
    assert run.default == card["default_model"]
    same_libs = all(
        library_versions().get(k) == v
        for k, v in card["libraries"].items()
        if k in ("numpy", "scikit-learn")
    )
    # Identical library versions reproduce every figure to rounding; other versions of
    # numpy/scikit-learn may move them slightly, never by more than this.
    tol = 1e-6 if same_libs else 0.01
    for name, result in run.candidates.items():
        shipped_model = card["models"][name]
        assert result.calibration == shipped_model["calibration"]
        for metric, interval in result.metrics().items():
            for key, value in interval.as_dict().items():
                assert value == pytest.approx(shipped_model["metrics"][metric][key], abs=tol), (
                    name,
                    metric,
                    key,
                )
        assert result.threshold == pytest.approx(shipped_model["threshold"], abs=tol)
