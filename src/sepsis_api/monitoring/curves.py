"""The curves behind the figures, as arrays for plots: ROC with a pointwise interval, the
reliability diagram (observed against predicted risk by quantile bin)."""

from __future__ import annotations

from typing import Any

import numpy as np

from sepsis_api.monitoring.stats import wilson, wilson_bounds


def roc(
    y: np.ndarray, p: np.ndarray, confidence: float = 0.95, max_points: int = 2000
) -> dict[str, list[float]]:
    """False and true positive rates flagging p >= each distinct score, from (0, 0) to (1, 1),
    with the Wilson interval of each true positive rate (pointwise: at that false positive
    rate's threshold)."""
    y = np.asarray(y, dtype=bool)
    order = np.argsort(-np.asarray(p, dtype=np.float64), kind="stable")
    ps, ys = np.asarray(p)[order], y[order]
    last = np.flatnonzero(np.concatenate((ps[1:] != ps[:-1], [True])))  # end of each tie
    tp = np.concatenate(([0], np.cumsum(ys)[last]))
    fp = np.concatenate(([0], np.cumsum(~ys)[last]))
    pos, neg = int(y.sum()), int((~y).sum())
    if pos == 0 or neg == 0:
        return {"fpr": [], "tpr": [], "tpr_low": [], "tpr_high": []}
    if len(tp) > max_points:  # enough for a plot; the first and last points are kept
        keep = np.unique(np.linspace(0, len(tp) - 1, max_points).round().astype(np.int64))
        tp, fp = tp[keep], fp[keep]
    low, high = wilson_bounds(tp, pos, confidence)
    return {
        "fpr": (fp / neg).tolist(),
        "tpr": (tp / pos).tolist(),
        "tpr_low": low.tolist(),
        "tpr_high": high.tolist(),
    }


def reliability(
    y: np.ndarray, p: np.ndarray, bins: int = 10, confidence: float = 0.95
) -> list[dict[str, Any]]:
    """Per quantile bin of predicted risk: n, mean predicted risk, observed event rate with its
    Wilson interval."""
    y = np.asarray(y, dtype=bool)
    p = np.asarray(p, dtype=np.float64)
    if len(p) == 0:
        return []
    edges = np.unique(np.quantile(p, np.linspace(0, 1, bins + 1)))
    which = np.clip(np.searchsorted(edges, p, side="right") - 1, 0, max(len(edges) - 2, 0))
    bins_used = max(len(edges) - 1, 1)
    # one pass each for the counts, events and sums of every bin (not a mask per bin)
    counts = np.bincount(which, minlength=bins_used)
    events = np.bincount(which, weights=y, minlength=bins_used)
    sums = np.bincount(which, weights=p, minlength=bins_used)
    out = []
    for b in range(bins_used):
        n = int(counts[b])
        if n == 0:
            continue
        rate = wilson(int(events[b]), n, confidence)
        out.append({"n": n, "predicted": float(sums[b] / n), **rate.as_dict()})
    return out
