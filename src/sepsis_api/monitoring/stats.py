"""Interval estimates shared by the monitoring figures (numpy and the standard library only)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist


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
