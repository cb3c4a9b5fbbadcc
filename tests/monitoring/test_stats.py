"""Interval estimates against published reference values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sepsis_api.monitoring.stats import (
    Interval,
    delong_auc,
    mean_interval,
    observed_expected,
    wilson,
    z_for,
)


def test_z_for_95_percent() -> None:
    assert z_for(0.95) == pytest.approx(1.959964, abs=1e-6)


def test_wilson_matches_reference_values() -> None:
    # Newcombe (1998), Statistics in Medicine 17:857, table I, method 3: 81/263 -> 0.2553-0.3662.
    interval = wilson(81, 263)
    assert interval.estimate == pytest.approx(81 / 263)
    assert interval.ci_low == pytest.approx(0.2553, abs=5e-5)
    assert interval.ci_high == pytest.approx(0.3662, abs=5e-5)
    # 0/10 -> 0-0.2775 (the interval stays inside [0, 1] and is not degenerate at 0).
    zero = wilson(0, 10)
    assert zero.ci_low == 0.0
    assert zero.ci_high == pytest.approx(0.2775, abs=5e-5)


def test_wilson_without_observations_is_not_estimable() -> None:
    assert wilson(0, 0) == Interval.none()
    assert wilson(0, 0).as_dict() == {"estimate": None, "ci_low": None, "ci_high": None}


@pytest.mark.parametrize(("successes", "n"), [(-1, 5), (6, 5), (0, -1)])
def test_wilson_refuses_impossible_counts(successes: int, n: int) -> None:
    with pytest.raises(ValueError, match="successes"):
        wilson(successes, n)


# -- DeLong -------------------------------------------------------------------------------------


def _delong_pairwise(y: np.ndarray, p: np.ndarray) -> tuple[float, float]:
    """DeLong, DeLong & Clarke-Pearson (Biometrics 1988) written out: every positive against
    every negative (O(n^2)), ties counting one half. (AUC, its variance)."""
    pos, neg = p[y == 1], p[y == 0]
    psi = (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])
    v10, v01 = psi.mean(axis=1), psi.mean(axis=0)
    return float(psi.mean()), v10.var(ddof=1) / len(pos) + v01.var(ddof=1) / len(neg)


@pytest.mark.parametrize("ties", [False, True])
def test_delong_matches_the_pairwise_definition_and_scikit_learn(ties: bool) -> None:
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(3)
    y = (rng.random(400) < 0.35).astype(int)
    p = np.clip(0.3 * y + rng.normal(0.4, 0.25, 400), 0, 1)
    if ties:
        p = np.round(p, 1)  # many ties, within and across the classes
    auc, var = _delong_pairwise(y, p)
    got = delong_auc(y, p)
    assert got.estimate == pytest.approx(auc, abs=1e-12)
    assert got.estimate == pytest.approx(roc_auc_score(y, p), abs=1e-12)
    half = 1.959963984540054 * math.sqrt(var)
    assert got.ci_low == pytest.approx(auc - half, abs=1e-12)
    assert got.ci_high == pytest.approx(auc + half, abs=1e-12)


def test_delong_published_example() -> None:
    # Hanley & McNeil (Radiology 1982;143:29), table 1: CT ratings (1-5) of 58 normal and
    # 51 abnormal patients; they report AUC 0.893 with SE 0.032 by their own approximation,
    # which DeLong's SE (0.0307) should be close to.
    normal = [33, 6, 6, 11, 2]
    abnormal = [3, 2, 2, 11, 33]
    rating = np.arange(1, 6, dtype=float)
    p = np.concatenate([np.repeat(rating, normal), np.repeat(rating, abnormal)])
    y = np.repeat([0, 1], [sum(normal), sum(abnormal)])
    got = delong_auc(y, p)
    assert got.estimate == pytest.approx(0.8932, abs=5e-5)
    auc, var = _delong_pairwise(y, p)
    assert math.sqrt(var) == pytest.approx(0.032, abs=2e-3)
    assert got.ci_high == pytest.approx(auc + 1.959964 * math.sqrt(var), abs=1e-9)


def test_delong_needs_two_of_each_class() -> None:
    assert delong_auc(np.array([1, 0, 0]), np.array([0.9, 0.1, 0.2])) == Interval.none()
    assert delong_auc(np.array([], dtype=int), np.array([])) == Interval.none()


def test_auc_interval_stays_within_zero_and_one() -> None:
    y = np.array([0, 0, 0, 1, 1, 1])
    got = delong_auc(y, np.array([0.1, 0.2, 0.3, 0.7, 0.8, 0.9]))
    assert (got.estimate, got.ci_low, got.ci_high) == (1.0, 1.0, 1.0)


# -- Brier, O/E ---------------------------------------------------------------------------------


def test_mean_interval_is_the_normal_approximation() -> None:
    values = np.array([0.1, 0.4, 0.35, 0.8, 0.05, 0.2])
    got = mean_interval(values)
    se = values.std(ddof=1) / math.sqrt(len(values))
    assert got.estimate == pytest.approx(values.mean())
    assert got.ci_high - got.estimate == pytest.approx(1.959964 * se, rel=1e-6)
    assert mean_interval(np.array([])) == Interval.none()


def test_observed_expected_ratio() -> None:
    got = observed_expected(50, 40.0, 200)
    half = 1.959964 * math.sqrt(1 / 50 - 1 / 200)
    assert got.estimate == pytest.approx(1.25)
    assert got.ci_low == pytest.approx(1.25 * math.exp(-half), rel=1e-6)
    assert got.ci_high == pytest.approx(1.25 * math.exp(half), rel=1e-6)
    assert observed_expected(0, 3.0, 10) == Interval(0.0, None, None)
    assert observed_expected(0, 0.0, 0) == Interval.none()
