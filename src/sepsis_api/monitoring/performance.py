"""How well one model's estimates matched the outcomes: discrimination, calibration and the
operating point, each with a 95% interval, beside the model card's cross-validation figures.

The same function answers ``GET /v1/monitoring/performance`` (estimates from the audit log with
their current outcome) and ``sepsis-api evaluate`` (a labelled file scored locally).

Intervals:

- ``roc_auc``: DeLong, by Sun & Xu's fast algorithm (stats.delong_auc);
- ``sensitivity``, ``specificity``, ``ppv``, ``npv``, ``alert_rate`` and each band's event rate:
  Wilson score intervals;
- ``brier``: mean squared error +/- z * SD / sqrt(n);
- ``observed_expected_ratio``: exp(ln(O/E) +/- z * sqrt(1/O - 1/N)) (Debray et al. 2017);
- ``calibration_intercept`` (calibration-in-the-large) and ``calibration_slope``: profile
  likelihood of the logistic recalibration fits (calibration.py).

``status`` is ``"ok"`` from MIN_EVENTS events and MIN_NON_EVENTS non-events on, else
``"insufficient_data"``: external validation needs about 100 of each for calibration and
discrimination estimates that are not dominated by noise (Vergouwe et al., J Clin Epidemiol
2005;58:475; Collins, Ogundimu & Altman, Stat Med 2016;35:214). Below that the figures are
still given where they can be computed, with their (wide) intervals, but they are not a verdict.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import pairwise
from typing import Any

import numpy as np

from sepsis_api.monitoring.calibration import calibration_figures
from sepsis_api.monitoring.stats import (
    Interval,
    delong_auc,
    mean_interval,
    observed_expected,
    wilson,
)

MIN_EVENTS = 100
MIN_NON_EVENTS = 100
BANDS = ("low", "moderate", "high")  # the risk bands, codes 0, 1, 2 in ``Labelled.band``
FIGURES = (
    "roc_auc",
    "brier",
    "calibration_intercept",
    "calibration_slope",
    "observed_expected_ratio",
    "sensitivity",
    "specificity",
    "ppv",
    "npv",
    "alert_rate",
)
METHODS = {
    "roc_auc": "DeLong (fast algorithm of Sun & Xu 2014), AUC +/- z*SE clipped to [0, 1]",
    "brier": "mean squared error +/- z*SD/sqrt(n)",
    "calibration_intercept": "calibration-in-the-large logit P(y) = a + logit(p), "
    "profile-likelihood interval",
    "calibration_slope": "logistic recalibration logit P(y) = a + b*logit(p), "
    "profile-likelihood interval",
    "observed_expected_ratio": "observed/expected events, exp(ln(O/E) +/- z*sqrt(1/O - 1/N))",
    "proportions": "Wilson score interval (sensitivity, specificity, ppv, npv, alert_rate, "
    "band event rates)",
    "confidence": "0.95",
}


@dataclass(frozen=True)
class Labelled:
    """Estimates of one model with their outcomes, one entry per prediction."""

    probability: np.ndarray  # float64
    outcome: np.ndarray  # bool, True = Positive (the event)
    alert: np.ndarray  # bool, True = labelled Positive at the model's threshold
    band: np.ndarray  # int8 codes into BANDS
    created: np.ndarray | None = None  # int64 seconds since 1970 (UTC), for windows

    def __len__(self) -> int:
        return len(self.probability)

    def take(self, index: np.ndarray | slice) -> Labelled:
        return Labelled(
            self.probability[index],
            self.outcome[index],
            self.alert[index],
            self.band[index],
            None if self.created is None else self.created[index],
        )


def band_codes(names: np.ndarray) -> np.ndarray:
    """Risk band names (as ``Scores.band`` gives them) as codes into BANDS."""
    return np.searchsorted(_SORTED_BANDS, names).choose(_SORTED_CODES).astype(np.int8)


_SORTED_BANDS = np.array(sorted(BANDS), dtype=object)
_SORTED_CODES = np.array([BANDS.index(b) for b in sorted(BANDS)])


def status(n: int, events: int) -> dict[str, Any]:
    """``status`` with the minimum counts and, when short of them, the reason."""
    short = []
    if events < MIN_EVENTS:
        short.append(f"{events} events (need {MIN_EVENTS})")
    if n - events < MIN_NON_EVENTS:
        short.append(f"{n - events} non-events (need {MIN_NON_EVENTS})")
    return {
        "status": "insufficient_data" if short else "ok",
        "reason": None
        if not short
        else "too few outcomes to judge the model: " + " and ".join(short),
        "minimum": {"events": MIN_EVENTS, "non_events": MIN_NON_EVENTS},
    }


def figures(data: Labelled) -> dict[str, Any]:
    """n, events, status and every figure of FIGURES (as {estimate, ci_low, ci_high}) with
    by_band, for the rows of ``data``."""
    y, p, alert = data.outcome, data.probability, data.alert
    n, events = len(y), int(y.sum())
    tp = int((alert & y).sum())
    fp = int(alert.sum()) - tp
    fn = events - tp
    tn = n - events - fp
    intercept, slope = calibration_figures(p, y)
    values: dict[str, Interval] = {
        "roc_auc": delong_auc(y, p),
        "brier": mean_interval((p - y) ** 2),
        "calibration_intercept": intercept,
        "calibration_slope": slope,
        "observed_expected_ratio": observed_expected(events, float(p.sum()), n),
        "sensitivity": wilson(tp, tp + fn),
        "specificity": wilson(tn, tn + fp),
        "ppv": wilson(tp, tp + fp),
        "npv": wilson(tn, tn + fn),
        "alert_rate": wilson(tp + fp, n),
    }
    counts = np.bincount(data.band, minlength=len(BANDS))
    band_events = np.bincount(data.band, weights=y, minlength=len(BANDS))
    return {
        "n": n,
        "events": events,
        **status(n, events),
        **{k: v.as_dict() for k, v in values.items()},
        "by_band": [
            {
                "band": band,
                "n": int(counts[i]),
                "events": int(band_events[i]),
                "event_rate": wilson(int(band_events[i]), int(counts[i])).as_dict(),
            }
            for i, band in enumerate(BANDS)
        ],
    }


def _figure(d: dict[str, Any] | None) -> dict[str, float | None]:
    """A card's {mean|value, low, high} as {estimate, ci_low, ci_high}."""
    if not d:
        return Interval.none().as_dict()
    return Interval(d.get("mean", d.get("value")), d.get("low"), d.get("high")).as_dict()


def card_figures(model_card: dict[str, Any], validation: dict[str, Any]) -> dict[str, Any]:
    """The model card's cross-validation figures under the same keys (None where the card has
    no such figure), with how they were estimated."""
    metrics, op = model_card.get("metrics", {}), model_card.get("operating_point", {})
    out: dict[str, Any] = {k: Interval.none().as_dict() for k in FIGURES}
    out["roc_auc"] = _figure(metrics.get("roc_auc"))
    out["brier"] = _figure(metrics.get("brier"))
    for k in ("sensitivity", "specificity", "ppv", "npv", "alert_rate"):
        out[k] = _figure(op.get(k))
    return {
        "source": validation.get("method", "model card"),
        "interval": validation.get("interval"),
        "operating_point_interval": validation.get("operating_point_interval"),
        "threshold": model_card.get("threshold"),
        "risk_bands": model_card.get("risk_bands"),
        **out,
    }


DAY = 86_400
WEEK = 7 * DAY
_THURSDAY = 3 * DAY  # 1970-01-01 was a Thursday: weeks are counted from Monday 1969-12-29


def windows(created: np.ndarray, every: str) -> Iterator[tuple[int, int, np.ndarray]]:
    """(start, end, row indices) per calendar week (Monday 00:00 UTC) or month (UTC) that holds
    any row, oldest first; ``created`` in seconds since 1970."""
    if every == "week":
        key = (created + _THURSDAY) // WEEK  # weeks since Monday 1969-12-29
        starts = key * WEEK - _THURSDAY
    elif every == "month":
        key = created.astype("datetime64[s]").astype("datetime64[M]").astype(np.int64)
        starts = key.astype("datetime64[M]").astype("datetime64[s]").astype(np.int64)
    else:
        raise ValueError(f"every must be 'week' or 'month', got {every!r}")
    if len(created) == 0:  # no rows, no window (the cuts below assume one row at least)
        return
    order = np.argsort(key, kind="stable")
    keys = key[order]
    cuts = np.flatnonzero(np.concatenate(([True], keys[1:] != keys[:-1], [True])))
    for lo, hi in pairwise(cuts.tolist()):
        k = int(keys[lo])
        start = int(starts[order[lo]])
        if every == "week":
            end = start + WEEK
        else:
            end = int(np.datetime64(k + 1, "M").astype("datetime64[s]").astype(np.int64))
        yield start, end, order[lo:hi]


def _iso(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat()


def report(
    data: Labelled,
    *,
    model_card: dict[str, Any] | None,
    validation: dict[str, Any] | None = None,
    every: str | None = None,
) -> dict[str, Any]:
    """figures(data) with the card's figures beside them (``card``; None without a card), the
    methods, and with ``every`` ("week" or "month") the same figures per window."""
    out = figures(data)
    out["card"] = None if model_card is None else card_figures(model_card, validation or {})
    out["methods"] = METHODS
    if every is not None:
        if data.created is None:
            raise ValueError("windows need the estimates' times")
        out["every"] = every
        out["windows"] = [
            {"start": _iso(start), "end": _iso(end), **figures(data.take(idx))}
            for start, end, idx in windows(data.created, every)
        ]
    return out
