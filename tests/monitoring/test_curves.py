"""The plotted curves against scikit-learn's."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.calibration import calibration_curve
from sklearn.metrics import roc_curve

from sepsis_api.monitoring.curves import reliability, roc
from sepsis_api.monitoring.stats import wilson


def test_roc_points_equal_scikit_learn_with_wilson_bands() -> None:
    rng = np.random.default_rng(4)
    p = np.round(rng.random(500), 2)  # ties
    y = rng.random(500) < p
    got = roc(y, p)
    fpr, tpr, _ = roc_curve(y, p, drop_intermediate=False)
    np.testing.assert_allclose(got["fpr"], fpr)
    np.testing.assert_allclose(got["tpr"], tpr)
    k = round(got["tpr"][10] * y.sum())
    assert got["tpr_low"][10] == pytest.approx(wilson(k, int(y.sum())).ci_low)
    assert got["tpr_high"][10] == pytest.approx(wilson(k, int(y.sum())).ci_high)
    thin = roc(y, rng.random(500), max_points=50)
    assert len(thin["fpr"]) == 50 and thin["fpr"][0] == 0 and thin["tpr"][-1] == 1


def test_reliability_bins_equal_scikit_learn() -> None:
    rng = np.random.default_rng(6)
    p = rng.random(1000)
    y = rng.random(1000) < p
    bins = reliability(y, p, bins=10)
    observed, predicted = calibration_curve(y, p, n_bins=10, strategy="quantile")
    np.testing.assert_allclose([b["estimate"] for b in bins], observed)
    np.testing.assert_allclose([b["predicted"] for b in bins], predicted)
    assert sum(b["n"] for b in bins) == 1000
    assert roc(np.ones(3, bool), np.array([0.1, 0.2, 0.3]))["fpr"] == []
