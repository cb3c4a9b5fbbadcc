"""Logistic recalibration fits and their profile-likelihood intervals against scipy."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import brentq, minimize, minimize_scalar
from scipy.stats import chi2

from sepsis_api.monitoring.calibration import (
    NotEstimable,
    calibration_figures,
    logit,
    recalibration,
)
from sepsis_api.monitoring.stats import Interval


def _sample(n: int, a: float, b: float, seed: int = 5) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    lp = rng.normal(-0.7, 1.3, n)
    y = rng.random(n) < 1 / (1 + np.exp(-(a + b * lp)))
    return 1 / (1 + np.exp(-lp)), y.astype(int)


def _nll(a: float, b: float, x: np.ndarray, y: np.ndarray) -> float:
    eta = a + b * x
    return float(-(y @ eta - np.logaddexp(0, eta).sum()))


def _reference(p: np.ndarray, y: np.ndarray) -> dict[str, tuple[float, float, float]]:
    """Maximum likelihood by scipy's optimisers and the profile bounds by root finding."""
    x = logit(p)
    cut = chi2.ppf(0.95, 1) / 2
    one = minimize_scalar(lambda a: _nll(a, 1, x, y), bounds=(-5, 5), method="bounded",
                          options={"xatol": 1e-12})  # fmt: skip
    a0 = float(one.x)

    def dev_a(a: float) -> float:
        return _nll(a, 1, x, y) - one.fun - cut

    both = minimize(lambda t: _nll(t[0], t[1], x, y), [0, 1], method="BFGS",
                    options={"gtol": 1e-9})  # fmt: skip
    b0 = float(both.x[1])

    def profile(b: float) -> float:
        inner = minimize_scalar(lambda a: _nll(a, b, x, y), bounds=(-10, 10), method="bounded",
                                options={"xatol": 1e-12})  # fmt: skip
        return float(inner.fun) - both.fun - cut

    return {
        "intercept": (a0, brentq(dev_a, a0 - 2, a0), brentq(dev_a, a0, a0 + 2)),
        "slope": (b0, brentq(profile, b0 - 2, b0), brentq(profile, b0, b0 + 2)),
        "joint_intercept": (float(both.x[0]), 0.0, 0.0),
    }


@pytest.mark.parametrize(("a", "b"), [(0.0, 1.0), (0.6, 0.7), (-0.4, 1.4)])
def test_fits_and_profile_intervals_match_scipy(a: float, b: float) -> None:
    p, y = _sample(3000, a, b)
    ref = _reference(p, y)
    intercept, slope = calibration_figures(p, y)
    for got, want in ((intercept, ref["intercept"]), (slope, ref["slope"])):
        assert got.estimate == pytest.approx(want[0], abs=1e-5)
        assert got.ci_low == pytest.approx(want[1], abs=1e-5)
        assert got.ci_high == pytest.approx(want[2], abs=1e-5)
    fit = recalibration(p, y, "logistic")
    assert fit.intercept.estimate == pytest.approx(ref["joint_intercept"][0], abs=1e-5)
    assert fit.slope == slope


def test_a_calibrated_model_has_intercept_zero_and_slope_one_within_the_interval() -> None:
    p, y = _sample(20_000, 0.0, 1.0, seed=11)
    intercept, slope = calibration_figures(p, y)
    assert intercept.ci_low < 0 < intercept.ci_high
    assert slope.ci_low < 1 < slope.ci_high


def test_intercept_recalibration_makes_the_mean_risk_right() -> None:
    p, y = _sample(5000, 0.8, 1.0)
    fit = recalibration(p, y, "intercept")
    assert fit.slope == Interval(1.0, None, None)
    assert fit.apply(p).mean() == pytest.approx(y.mean(), abs=1e-9)  # the MLE's score is zero
    refit, _ = calibration_figures(fit.apply(p), y)
    assert refit.estimate == pytest.approx(0.0, abs=1e-8)


def test_logistic_recalibration_makes_slope_one() -> None:
    p, y = _sample(5000, 0.3, 0.6)
    fit = recalibration(p, y, "logistic")
    _, slope = calibration_figures(fit.apply(p), y)
    assert slope.estimate == pytest.approx(1.0, abs=1e-7)


def test_what_cannot_be_estimated_is_none() -> None:
    p = np.array([0.2, 0.4, 0.6, 0.8])
    assert calibration_figures(p, np.ones(4)) == (Interval.none(), Interval.none())
    # perfect separation: the slope runs off to infinity
    _, slope = calibration_figures(p, np.array([0, 0, 1, 1]))
    assert slope == Interval.none()
    # constant risk: no information about a slope
    _, slope = calibration_figures(np.full(6, 0.3), np.array([0, 1, 0, 0, 1, 0]))
    assert slope == Interval.none()
    with pytest.raises(NotEstimable):
        recalibration(p, np.zeros(4), "intercept")
    with pytest.raises(ValueError, match="method"):
        recalibration(p, np.array([0, 1, 0, 1]), "isotonic")
