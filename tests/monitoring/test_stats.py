"""Interval estimates against published reference values."""

from __future__ import annotations

import pytest

from sepsis_api.monitoring.stats import Interval, wilson, z_for


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
