"""Interval estimates shared by the monitoring figures (numpy and the standard library only)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np


@dataclass(frozen=True, slots=True)
class Interval:
    """A point estimate with its two-sided confidence interval; all None when not estimable."""

    estimate: float | None
    ci_low: float | None
    ci_high: float | None

    @classmethod
    def none(cls) -> Interval:
        return cls(None, None, None)

    def as_dict(self) -> dict[str, float | None]:
        return {"estimate": self.estimate, "ci_low": self.ci_low, "ci_high": self.ci_high}


def z_for(confidence: float) -> float:
    """The standard normal quantile of a two-sided ``confidence`` interval (1.96 for 0.95)."""
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be between 0 and 1, got {confidence}")
    return NormalDist().inv_cdf(0.5 + confidence / 2.0)


def wilson(successes: int, n: int, confidence: float = 0.95) -> Interval:
    """A proportion with its Wilson score interval (good coverage for small n and rates near 0)."""
    if n < 0 or not 0 <= successes <= n:
        raise ValueError(f"need 0 <= successes <= n, got {successes} of {n}")
    if n == 0:
        return Interval.none()
    z = z_for(confidence)
    p = successes / n
    denominator = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1.0 - p) / n + z * z / (4 * n * n)) / denominator
    # At 0 or n the bound is exactly 0 or 1; the formula leaves rounding dust there.
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == n else min(1.0, centre + half)
    return Interval(p, low, high)


def _sorted_midranks(xs: np.ndarray) -> np.ndarray:
    """1-based ranks of the sorted ``xs``, ties given the mean of the ranks they span."""
    bounds = np.flatnonzero(np.concatenate(([True], xs[1:] != xs[:-1], [True])))
    mid = (bounds[:-1] + bounds[1:] + 1) / 2.0  # group [s, e) holds ranks s+1..e
    return np.repeat(mid, np.diff(bounds))


def delong_auc(y: np.ndarray, p: np.ndarray, confidence: float = 0.95) -> Interval:
    """ROC AUC with DeLong's interval, by the fast algorithm of Sun & Xu (IEEE Signal Process.
    Lett. 21:1389, 2014): the structural components come from three midrankings (O(n log n))
    instead of comparing every positive with every negative. The interval is AUC +/- z*SE,
    clipped to [0, 1] (as pROC reports it); None without two positives and two negatives."""
    y = np.asarray(y, dtype=bool)
    p = np.asarray(p, dtype=np.float64)
    m = int(y.sum())
    n = len(y) - m
    if m < 2 or n < 2:
        return Interval.none()
    # One sort serves all three rankings: each class's scores are already in order within
    # the sorted whole, so their own midranks need no second sort.
    # Any sort will do: tied scores get one midrank, whatever their order among themselves.
    order = np.argsort(p)
    ps, ys = p[order], y[order]
    tz = _sorted_midranks(ps)
    pos, neg = ps[ys], ps[~ys]
    v10 = (tz[ys] - _sorted_midranks(pos)) / n  # per positive: share of negatives below
    v01 = 1.0 - (tz[~ys] - _sorted_midranks(neg)) / m  # per negative: share of positives above
    auc = float(v10.mean())
    se = math.sqrt(float(v10.var(ddof=1)) / m + float(v01.var(ddof=1)) / n)
    half = z_for(confidence) * se
    return Interval(auc, max(0.0, auc - half), min(1.0, auc + half))


def mean_interval(values: np.ndarray, confidence: float = 0.95) -> Interval:
    """A mean with its normal-approximation interval (mean +/- z * SD / sqrt(n))."""
    values = np.asarray(values, dtype=np.float64)
    if len(values) < 2:
        return Interval.none() if len(values) == 0 else Interval(float(values[0]), None, None)
    mean = float(values.mean())
    half = z_for(confidence) * float(values.std(ddof=1)) / math.sqrt(len(values))
    return Interval(mean, mean - half, mean + half)


def observed_expected(events: int, expected: float, n: int, confidence: float = 0.95) -> Interval:
    """Observed / expected events with the interval exp(ln(O/E) +/- z * sqrt(1/O - 1/N))
    (Debray et al., BMJ 2017;356:i6460); no interval without an observed event."""
    if n == 0 or expected <= 0.0:
        return Interval.none()
    ratio = events / expected
    if events == 0:
        return Interval(ratio, None, None)
    half = z_for(confidence) * math.sqrt(max(0.0, 1.0 / events - 1.0 / n))
    return Interval(ratio, ratio * math.exp(-half), ratio * math.exp(half))


def wilson_bounds(
    successes: np.ndarray, n: int, confidence: float = 0.95
) -> tuple[np.ndarray, np.ndarray]:
    """``wilson``'s bounds for many counts out of the same ``n`` at once (n > 0)."""
    z = z_for(confidence)
    k = np.asarray(successes, dtype=np.float64)
    p = k / n
    denominator = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * np.sqrt(p * (1.0 - p) / n + z * z / (4 * n * n)) / denominator
    low = np.where(k == 0, 0.0, np.maximum(0.0, centre - half))
    high = np.where(k == n, 1.0, np.minimum(1.0, centre + half))
    return low, high
