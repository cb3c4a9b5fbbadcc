"""The local validation report (``sepsis-api evaluate``): evaluation.html from the figures of
monitoring/performance.py and the curves of monitoring/curves.py, drawn with the training
report's plotting set-up (ml/report.py) and embedded in the page as PNG data, so the HTML file
stands alone. Training-extra code (matplotlib, jinja2): the server never imports it."""

from __future__ import annotations

import base64
import io
from typing import Any

import matplotlib as mpl
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from sepsis_api.ml.report import CLASS_COLORS, DPI, PNG_META, RC, _env
from sepsis_api.schema import NOT_A_DEVICE, PROVENANCE

ROWS = (
    ("roc_auc", "ROC AUC", "num"),
    ("brier", "Brier score", "num"),
    ("calibration_intercept", "Calibration intercept (ideal 0)", "num"),
    ("calibration_slope", "Calibration slope (ideal 1)", "num"),
    ("observed_expected_ratio", "Observed / expected events (ideal 1)", "num"),
    ("sensitivity", "Sensitivity", "pct"),
    ("specificity", "Specificity", "pct"),
    ("ppv", "PPV", "pct"),
    ("npv", "NPV", "pct"),
    ("alert_rate", "Alert rate", "pct"),
)
BAND_COLORS = ("#55A868", "#CCB974", "#C44E52")


def _png(fig: Figure) -> str:
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, metadata=PNG_META)
    fig.clear()
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _roc(result: dict[str, Any], roc: dict[str, list[float]]) -> str:
    fig = Figure(figsize=(4.6, 4.2), layout="constrained")
    ax = fig.subplots()
    auc = result["roc_auc"]
    if roc["fpr"]:
        ax.fill_between(roc["fpr"], roc["tpr_low"], roc["tpr_high"], step="post",
                        color=CLASS_COLORS[0], alpha=0.2,
                        label="95% interval of sensitivity (Wilson, pointwise)")  # fmt: skip
        ax.step(roc["fpr"], roc["tpr"], where="post", color=CLASS_COLORS[0],
                label=f"ROC, AUC {_iv(auc)} (DeLong)")  # fmt: skip
    sens, spec = result["sensitivity"], result["specificity"]
    if sens["estimate"] is not None and spec["estimate"] is not None:
        x, y = 1 - spec["estimate"], sens["estimate"]
        ax.errorbar(
            [x], [y],
            xerr=[[x - (1 - spec["ci_high"])], [(1 - spec["ci_low"]) - x]],
            yerr=[[y - sens["ci_low"]], [sens["ci_high"] - y]],
            fmt="o", color=CLASS_COLORS[1], capsize=3,
            label=f"operating point at threshold {result['threshold']:.3f}",
        )  # fmt: skip
    ax.plot([0, 1], [0, 1], ls="--", color="grey", lw=0.8)
    ax.set(title="ROC on the local data", xlabel="1 - specificity", ylabel="sensitivity",
           xlim=(0, 1), ylim=(0, 1.02))  # fmt: skip
    ax.legend(loc="lower right")
    return _png(fig)


def _calibration(result: dict[str, Any], bins: list[dict[str, Any]]) -> str:
    fig = Figure(figsize=(4.6, 4.2), layout="constrained")
    ax = fig.subplots()
    ax.plot([0, 1], [0, 1], ls="--", color="grey", lw=0.8, label="ideal (observed = predicted)")
    if bins:
        x = [b["predicted"] for b in bins]
        y = [b["estimate"] for b in bins]
        err = [
            [b["estimate"] - b["ci_low"] for b in bins],
            [b["ci_high"] - b["estimate"] for b in bins],
        ]
        ax.errorbar(x, y, yerr=err, fmt="o-", ms=4, capsize=2, color=CLASS_COLORS[0],
                    label="observed rate, 95% Wilson interval")  # fmt: skip
    a, b = result["calibration_intercept"], result["calibration_slope"]
    ax.set(title=f"Calibration (10 quantile bins)\nintercept {_iv(a)}, slope {_iv(b)}",
           xlabel="mean predicted risk", ylabel="observed sepsis rate",
           xlim=(0, 1), ylim=(0, 1.02))  # fmt: skip
    ax.legend(loc="upper left")
    return _png(fig)


def _bands(result: dict[str, Any]) -> str:
    fig = Figure(figsize=(4.2, 3.4), layout="constrained")
    ax = fig.subplots()
    bands = result["by_band"]
    names = [b["band"] for b in bands]
    rates = [b["event_rate"]["estimate"] or 0.0 for b in bands]
    low = [r - (b["event_rate"]["ci_low"] or 0.0) for r, b in zip(rates, bands, strict=True)]
    high = [(b["event_rate"]["ci_high"] or 0.0) - r for r, b in zip(rates, bands, strict=True)]
    bars = ax.bar(names, rates, yerr=[low, high], capsize=4, color=BAND_COLORS)
    ax.bar_label(bars, [f"{b['events']}/{b['n']}" for b in bands], padding=8)
    ax.set(title="Event rate by risk band (95% Wilson interval)", ylabel="sepsis rate",
           ylim=(0, 1.1))  # fmt: skip
    return _png(fig)


def _iv(f: dict[str, Any]) -> str:
    if f["estimate"] is None:
        return "—"
    if f["ci_low"] is None:
        return f"{f['estimate']:.3f}"
    return f"{f['estimate']:.3f} [{f['ci_low']:.3f}, {f['ci_high']:.3f}]"


def render(result: dict[str, Any], roc: dict[str, list[float]], bins: list[dict[str, Any]]) -> str:
    """The HTML page: ``result`` as evaluation.json holds it, with the ROC points and the
    reliability bins of the same rows."""
    with mpl.rc_context(RC):
        figs = {
            "roc": _roc(result, roc),
            "calibration": _calibration(result, bins),
            "bands": _bands(result),
        }
    return (
        _env()
        .get_template("evaluation.html.j2")
        .render(
            r=result,
            figs=figs,
            rows=ROWS,
            not_a_device=NOT_A_DEVICE,
            provenance=PROVENANCE,
        )
    )
