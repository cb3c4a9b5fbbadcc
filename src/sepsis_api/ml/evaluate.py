"""Metrics, intervals, operating threshold and risk bands.

Intervals over cross-validation are the 2.5th-97.5th percentiles of the per-fold scores;
intervals at the operating point are percentile bootstraps over the out-of-fold predictions.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

from sepsis_api.ml.scoring import RiskBands

METRICS = ("roc_auc", "average_precision", "brier")

TARGET_SENSITIVITY = 0.80  # the operating threshold: highest one that still finds 80% of cases
LOW_BAND_SENSITIVITY = 0.95  # below this cut-point fewer than 5% of cases are missed
HIGH_BAND_SPECIFICITY = 0.90  # above this cut-point at most 10% of non-cases are flagged


@dataclass(frozen=True)
class Interval:
    mean: float
    low: float
    high: float

    def as_dict(self) -> dict[str, float]:
        return {k: round(v, 6) for k, v in asdict(self).items()}


def interval(values: np.ndarray) -> Interval:
    values = np.asarray(values, dtype=float)
    return Interval(
        float(values.mean()), float(np.percentile(values, 2.5)), float(np.percentile(values, 97.5))
    )


def score_all(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    return {
        "roc_auc": float(roc_auc_score(y, p)),
        "average_precision": float(average_precision_score(y, p)),
        "brier": float(brier_score_loss(y, p)),
    }


def _confusion(y: np.ndarray, flagged: np.ndarray) -> dict[str, float]:
    tp = float(np.sum(flagged & (y == 1)))
    fp = float(np.sum(flagged & (y == 0)))
    fn = float(np.sum(~flagged & (y == 1)))
    tn = float(np.sum(~flagged & (y == 0)))
    return {"tp": tp, "fp": fp, "fn": fn, "tn": tn}


def operating_metrics(y: np.ndarray, p: np.ndarray, threshold: float) -> dict[str, float]:
    c = _confusion(y, p >= threshold)
    div: Callable[[float, float], float] = lambda a, b: a / b if b else float("nan")  # noqa: E731
    return {
        "sensitivity": div(c["tp"], c["tp"] + c["fn"]),
        "specificity": div(c["tn"], c["tn"] + c["fp"]),
        "ppv": div(c["tp"], c["tp"] + c["fp"]),
        "npv": div(c["tn"], c["tn"] + c["fn"]),
        "alert_rate": (c["tp"] + c["fp"]) / len(y),
    }


def confusion_at(y: np.ndarray, p: np.ndarray, threshold: float) -> dict[str, int]:
    return {k: int(v) for k, v in _confusion(y, p >= threshold).items()}


def threshold_for_sensitivity(y: np.ndarray, p: np.ndarray, target: float) -> float:
    """The highest threshold t such that flagging p >= t finds at least ``target`` of positives."""
    pos = np.sort(p[y == 1])[::-1]
    k = int(np.ceil(target * len(pos)))  # need the k highest-scored positives flagged
    return float(pos[max(k, 1) - 1])


def threshold_for_specificity(y: np.ndarray, p: np.ndarray, target: float) -> float:
    """The lowest threshold t such that flagging p >= t leaves at least ``target`` of negatives."""
    neg = np.sort(p[y == 0])
    k = int(np.ceil(target * len(neg)))  # the k lowest-scored negatives stay below t
    return float(np.nextafter(neg[min(k, len(neg)) - 1], np.inf))


def bootstrap_operating(
    y: np.ndarray, p: np.ndarray, threshold: float, *, seed: int, n_boot: int = 1000
) -> dict[str, dict[str, float]]:
    """Point value and 95% percentile-bootstrap interval of each metric at ``threshold``."""
    rng = np.random.default_rng(seed)
    point = operating_metrics(y, p, threshold)
    draws: dict[str, list[float]] = {k: [] for k in point}
    for _ in range(n_boot):
        idx = rng.integers(0, len(y), len(y))
        for k, v in operating_metrics(y[idx], p[idx], threshold).items():
            draws[k].append(v)
    out = {}
    for k, v in point.items():
        arr = np.asarray(draws[k])
        arr = arr[np.isfinite(arr)]
        out[k] = {
            "value": round(v, 6),
            "low": round(float(np.percentile(arr, 2.5)), 6),
            "high": round(float(np.percentile(arr, 97.5)), 6),
        }
    return out


def choose_bands(y: np.ndarray, p: np.ndarray, threshold: float) -> RiskBands:
    """Cut-points around the operating threshold: rule-out below, rule-in above."""
    low_cut = min(threshold_for_sensitivity(y, p, LOW_BAND_SENSITIVITY), threshold)
    high_cut = max(threshold_for_specificity(y, p, HIGH_BAND_SPECIFICITY), threshold)
    return RiskBands(moderate_from=low_cut, high_from=high_cut)
