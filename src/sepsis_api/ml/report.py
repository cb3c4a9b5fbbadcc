"""CRISP-DM report (HTML + PNG plots) and Markdown model card of a training run.

The report reads the run (data, out-of-fold predictions, fitted models) and its card; the model
card reads only the card, so it can be rebuilt from ``card.json`` alone. Plots are drawn on
matplotlib's Agg canvas through the object-oriented API (no pyplot, no global figure state) and
saved without metadata, so the same run always gives the same PNG bytes.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import matplotlib as mpl
import numpy as np
import pandas as pd
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from sklearn.calibration import CalibratedClassifierCV, calibration_curve
from sklearn.metrics import average_precision_score as ap_score
from sklearn.metrics import precision_recall_curve, roc_auc_score, roc_curve

from sepsis_api.ml.evaluate import confusion_at, operating_metrics
from sepsis_api.ml.features import ZeroAsMissing
from sepsis_api.schema import FEATURES, NOT_A_DEVICE, PROVENANCE

if TYPE_CHECKING:
    from matplotlib.typing import RcKeyType

    from sepsis_api.ml.train import TrainingRun

DPI = 90
PNG_META = {"Software": None}  # no version string in the file: bytes depend on the data only
RC: dict[RcKeyType, Any] = {
    "svg.hashsalt": "sepsis-api",
    "font.size": 8,
    "axes.titlesize": 9,
    "legend.fontsize": 7,
    "axes.spines.top": False,
    "axes.spines.right": False,
}
CLASS_COLORS = ("#4C72B0", "#DD8452")  # negative, positive
CLASS_NAMES = ("Negative", "Positive")
MODEL_COLORS = ("#4C72B0", "#55A868", "#C44E52", "#8172B2", "#CCB974")
RATES = ("sensitivity", "specificity", "ppv", "npv", "alert_rate")
RATE_NAMES = ("Sensitivity", "Specificity", "PPV", "NPV", "Alert rate")


# -- formatting (shared by the HTML template and the Markdown card) --------------------------
def num(x: float | None, digits: int = 3) -> str:
    """A metric with fixed decimals; missing or NaN as an em dash."""
    return "—" if x is None or not math.isfinite(x) else f"{x:.{digits}f}"


def pct(x: float | None) -> str:
    return "—" if x is None or not math.isfinite(x) else f"{100 * x:.1f}%"


def _point(d: dict[str, float]) -> float:
    return d["mean"] if "mean" in d else d["value"]


def iv(d: dict[str, float]) -> str:
    """``0.834 [0.790, 0.880]`` from a {mean|value, low, high} dict."""
    return f"{num(_point(d))} [{num(d['low'])}, {num(d['high'])}]"


def pct_iv(d: dict[str, float]) -> str:
    return f"{pct(_point(d))} [{pct(d['low'])}, {pct(d['high'])}]"


def _env() -> Environment:
    env = Environment(
        loader=PackageLoader("sepsis_api.ml", "templates"),
        autoescape=select_autoescape(["html", "j2"]),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(num=num, pct=pct, iv=iv, pct_iv=pct_iv)
    return env


# -- plots -----------------------------------------------------------------------------------
def _save(fig: Figure, path: Path) -> str:
    """Render with Agg, write without metadata, release the figure; the relative path."""
    FigureCanvasAgg(fig)
    fig.savefig(path, dpi=DPI, metadata=PNG_META)
    fig.clear()
    return f"plots/{path.name}"


def _class_balance(y: np.ndarray, path: Path) -> str:
    fig = Figure(figsize=(3.6, 2.8), layout="constrained")
    ax = fig.subplots()
    counts = [int((y == 0).sum()), int((y == 1).sum())]
    bars = ax.bar(CLASS_NAMES, counts, color=CLASS_COLORS)
    ax.bar_label(bars, [f"{c} ({c / len(y):.0%})" for c in counts])
    ax.set(title="Sepsis label", ylabel="patients", ylim=(0, max(counts) * 1.15))
    return _save(fig, path)


def _missing(missing: np.ndarray, n: int, path: Path) -> str:
    fig = Figure(figsize=(4.8, 3.0), layout="constrained")
    ax = fig.subplots()
    bars = ax.barh([f.code for f in FEATURES][::-1], missing[::-1], color="#8C8C8C")
    ax.bar_label(bars, [f"{m} ({m / n:.0%})" if m else "" for m in missing[::-1]], padding=2)
    ax.set(title="Not measured (0 or empty where 0 is impossible)", xlabel="rows")
    ax.set_xlim(0, max(1, missing.max()) * 1.25)
    return _save(fig, path)


def _distributions(Xm: np.ndarray, y: np.ndarray, path: Path) -> str:
    ncols = 3
    nrows = math.ceil(len(FEATURES) / ncols)
    fig = Figure(figsize=(9, 2.3 * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols).ravel()
    for j, (f, ax) in enumerate(zip(FEATURES, axes, strict=False)):
        col = Xm[:, j]
        seen = ~np.isnan(col)
        if f.integer and np.nanmax(col) - np.nanmin(col) <= 30:  # one bar per value
            bins = np.arange(np.nanmin(col) - 0.5, np.nanmax(col) + 1.0)
        else:
            bins = np.histogram_bin_edges(col[seen], bins=20)
        for label in (0, 1):
            ax.hist(
                col[seen & (y == label)],
                bins=bins,
                density=True,
                alpha=0.55,
                color=CLASS_COLORS[label],
                label=CLASS_NAMES[label],
            )
        title = f.code + (f" ({f.unit})" if f.unit else "")
        if (~seen).any():
            title += f" · {int((~seen).sum())} missing"
        ax.set_title(title)
        ax.set_yticks([])
        if f.choices is not None:
            ax.set_xticks(f.choices)
    for ax in axes[len(FEATURES) :]:
        ax.set_visible(False)
    axes[0].legend(title="Sepsis")
    return _save(fig, path)


def _correlations(Xm: np.ndarray, y: np.ndarray, path: Path) -> str:
    names = [*(f.code for f in FEATURES), "Sepsis"]
    corr = pd.DataFrame(np.column_stack([Xm, y]), columns=names).corr().to_numpy()
    fig = Figure(figsize=(5.8, 4.8), layout="constrained")
    ax = fig.subplots()
    im = ax.imshow(corr, cmap="RdBu_r", vmin=-1, vmax=1)
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right")
    ax.set_yticks(range(len(names)), names)
    for i in range(len(names)):
        for j in range(len(names)):
            ax.text(
                j,
                i,
                f"{corr[i, j]:.2f}",
                ha="center",
                va="center",
                fontsize=6,
                color="white" if abs(corr[i, j]) > 0.6 else "black",
            )
    ax.set_title("Pearson correlation (missing values left out pairwise)")
    ax.spines[:].set_visible(False)
    fig.colorbar(im, ax=ax, shrink=0.8)
    return _save(fig, path)


def _curves(run: TrainingRun, kind: str, path: Path) -> str:
    y = run.data.y
    assert y is not None  # a training run's data is always labelled
    fig = Figure(figsize=(4.6, 4.0), layout="constrained")
    ax = fig.subplots()
    for color, r in zip(MODEL_COLORS, run.candidates.values(), strict=False):
        if kind == "roc":
            fpr, tpr, _ = roc_curve(y, r.oof)
            ax.plot(
                fpr, tpr, color=color, label=f"{r.display_name} (AUC {roc_auc_score(y, r.oof):.3f})"
            )
            op = operating_metrics(y, r.oof, r.threshold)  # the model's operating point
            ax.plot(1 - op["specificity"], op["sensitivity"], "o", ms=5, color=color)
        elif kind == "pr":
            prec, rec, _ = precision_recall_curve(y, r.oof)
            ax.step(
                rec,
                prec,
                where="post",
                color=color,
                label=f"{r.display_name} (AP {ap_score(y, r.oof):.3f})",
            )
        else:
            obs, pred = calibration_curve(y, r.oof, n_bins=10, strategy="quantile")
            ax.plot(pred, obs, marker="o", ms=3, color=color, label=r.display_name)
    if kind == "roc":
        ax.plot([0, 1], [0, 1], ls="--", color="grey", lw=0.8)
        ax.set(
            title="ROC (out-of-fold; dots: operating points)",
            xlabel="1 - specificity",
            ylabel="sensitivity",
        )
    elif kind == "pr":
        ax.axhline(y.mean(), ls="--", color="grey", lw=0.8, label=f"prevalence {y.mean():.3f}")
        ax.set(
            title="Precision-recall (out-of-fold)",
            xlabel="recall (sensitivity)",
            ylabel="precision (PPV)",
        )
    else:
        ax.plot([0, 1], [0, 1], ls="--", color="grey", lw=0.8, label="perfect")
        ax.set(
            title="Calibration (out-of-fold, 10 quantile bins)",
            xlabel="mean predicted risk",
            ylabel="observed sepsis rate",
        )
    ax.set(xlim=(0, 1), ylim=(0, 1.02))
    ax.legend(loc="lower right" if kind != "pr" else "lower left")
    return _save(fig, path)


def _confusion(c: dict[str, int], title: str, path: Path) -> str:
    m = np.array([[c["tn"], c["fp"]], [c["fn"], c["tp"]]])
    fig = Figure(figsize=(3.4, 3.0), layout="constrained")
    ax = fig.subplots()
    ax.imshow(m, cmap="Blues", vmin=0, vmax=m.sum())
    for (i, j), v in np.ndenumerate(m):
        ax.text(
            j,
            i,
            str(v),
            ha="center",
            va="center",
            fontsize=11,
            color="white" if v > m.sum() / 2 else "black",
        )
    ax.set_xticks([0, 1], ["no alert", "alert"])
    ax.set_yticks([0, 1], list(CLASS_NAMES))
    ax.set(xlabel="predicted (at threshold)", ylabel="actual", title=title)
    ax.spines[:].set_visible(False)
    return _save(fig, path)


def _importance(run: TrainingRun, path: Path) -> str:
    order = sorted(run.candidates[run.default].importance.items(), key=lambda kv: kv[1])
    codes = [code for code, _ in order]
    n = len(run.candidates)
    fig = Figure(figsize=(2.9 * n + 0.6, 3.2), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, n, sharex=True, sharey=True))
    for ax, color, r in zip(axes, MODEL_COLORS, run.candidates.values(), strict=False):
        ax.barh(codes, [r.importance[c] for c in codes], color=color)
        ax.axvline(0, color="grey", lw=0.6)
        ax.set(title=r.display_name, xlabel="mean drop in ROC AUC")
    axes[0].xaxis.set_major_locator(MaxNLocator(4))
    fig.suptitle("Permutation importance (refit model, training rows)", fontsize=9)
    return _save(fig, path)


# -- report ----------------------------------------------------------------------------------
def _final_pipeline(fitted: Any) -> Any:
    """The fitted pipeline inside a calibration wrapper (or the pipeline itself)."""
    if isinstance(fitted, CalibratedClassifierCV):
        return fitted.calibrated_classifiers_[0].estimator
    return fitted


def _feature_rows(run: TrainingRun, missing: np.ndarray) -> list[dict[str, Any]]:
    y = run.data.y
    assert y is not None  # a training run's data is always labelled
    n = len(y)
    rows = []
    for j, f in enumerate(FEATURES):
        valid = (
            "one of " + ", ".join(map(str, f.choices))
            if f.choices is not None
            else f"{f.minimum:g} to {f.maximum:g}"
        )
        rows.append(
            {
                "f": f,
                "valid": valid,
                "missing": int(missing[j]),
                "missing_pct": missing[j] / n,
                "median": run.feature_stats.get(f.code, {}).get("p50"),
            }
        )
    return rows


def write_report(run: TrainingRun, card: dict[str, Any], out_dir: Path) -> Path:
    """Write ``out_dir/report.html`` and ``out_dir/plots/*.png``; return the HTML path."""
    out_dir = Path(out_dir)
    plots = out_dir / "plots"
    plots.mkdir(parents=True, exist_ok=True)
    X, y = run.data.X, np.asarray(run.data.y)
    Xm = ZeroAsMissing().fit(X).transform(X)  # the schema's rule: 0 (or NaN) = not measured
    missing = np.isnan(Xm).sum(axis=0)

    models = []
    with mpl.rc_context(RC):
        figs = {
            "class_balance": _class_balance(y, plots / "class_balance.png"),
            "missing": _missing(missing, len(y), plots / "missing.png"),
            "distributions": _distributions(Xm, y, plots / "distributions.png"),
            "correlations": _correlations(Xm, y, plots / "correlations.png"),
            "roc": _curves(run, "roc", plots / "roc.png"),
            "pr": _curves(run, "pr", plots / "pr.png"),
            "calibration": _curves(run, "calibration", plots / "calibration.png"),
            "importance": _importance(run, plots / "importance.png"),
        }
        for name, r in run.candidates.items():
            conf = confusion_at(y, r.oof, r.threshold)
            bands = r.bands.band(r.oof)
            pipe = _final_pipeline(r.fitted)
            models.append(
                {
                    "name": name,
                    "r": r,
                    "card": card["models"][name],
                    "confusion": conf,
                    "confusion_png": _confusion(
                        conf,
                        f"{r.display_name}\nthreshold {r.threshold:.3f}",
                        plots / f"confusion_{name}.png",
                    ),
                    "steps": " → ".join(step for step, _ in pipe.steps),
                    "estimator": repr(pipe.steps[-1][1]),
                    "bands": [
                        {
                            "band": b,
                            "rows": int((bands == b).sum()),
                            "rate": float(y[bands == b].mean())
                            if (bands == b).any()
                            else float("nan"),
                        }
                        for b in ("low", "moderate", "high")
                    ],
                }
            )

    html = (
        _env()
        .get_template("report.html.j2")
        .render(
            run=run,
            card=card,
            models=models,
            figs=figs,
            features=_feature_rows(run, missing),
            n=len(y),
            positives=int(y.sum()),
            provenance=PROVENANCE,
            not_a_device=NOT_A_DEVICE,
            rates=list(zip(RATES, RATE_NAMES, strict=True)),
        )
    )
    path = out_dir / "report.html"
    path.write_text(html, encoding="utf-8")
    return path


# -- model card ------------------------------------------------------------------------------
def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return [*lines, ""]


def _drift_reference(card: dict[str, Any]) -> list[str]:
    """The model card's summary of the reference the drift monitor compares live data with."""
    ref = card.get("drift_reference")
    if ref is None:
        return []
    return [
        "## Drift reference",
        "",
        f"`GET /v1/monitoring/drift` compares recent estimates with the {ref['rows']} training "
        f"rows: {ref['bins']}. Predicted risk is compared with each model's out-of-fold "
        "probabilities and the alert rate with the operating point's above.",
        "",
        *_table(
            ["Feature", "Bins", "Missing", "Mean", "Training range"],
            [
                [
                    f"`{code}`",
                    len(f["counts"]),
                    pct(f["missing_fraction"]),
                    num(f["mean"]),
                    f"{num(f['valid_range'][0])}–{num(f['valid_range'][1])}",
                ]
                for code, f in ref["features"].items()
            ],
        ),
    ]


def write_model_card(card: dict[str, Any], out_dir: Path) -> Path:
    """Write ``out_dir/MODEL_CARD.md`` from the card alone; return its path."""
    models: dict[str, dict[str, Any]] = card["models"]
    default = card["default_model"]
    data, val = card["training_data"], card["validation"]
    mark = {
        n: f"**{m['display_name']}** (default)" if n == default else m["display_name"]
        for n, m in models.items()
    }
    lines = [
        f"# Model card: sepsis risk estimate, version {card['version']}",
        "",
        f"Trained {card['created_at'][:10]} ({card['created_at']}), seed {card['seed']}. "
        f"Default model: **{models[default]['display_name']}** (`{default}`).",
        "",
        f"> **{NOT_A_DEVICE}**",
        "",
        "## Intended use",
        "",
        card["intended_use"],
        "",
        "Output per patient: a calibrated probability of developing sepsis, a label at the "
        "model's threshold, and a risk band (low / moderate / high).",
        "",
        "## Data provenance",
        "",
        card["provenance"],
        "",
        "## Training data",
        "",
        *_table(
            ["File", "SHA-256", "Rows", "Positives"],
            [
                [
                    f"`{data['file']}`",
                    f"`{data['sha256']}`",
                    data["rows"],
                    f"{data['positives']} ({pct(data['positives'] / data['rows'])})",
                ]
            ],
        ),
        "## Validation method",
        "",
        f"- {val['method']}: {val['splits']} folds, {val['repeats']} repeats",
        f"- Metric intervals: {val['interval']}",
        f"- Operating-point intervals: {val['operating_point_interval']}",
        f"- Threshold: {val['threshold_rule']}",
        f"- Risk bands: {val['band_rule']}",
        "",
        "## Metrics",
        "",
        "Mean and [2.5%, 97.5%] over cross-validation folds. Brier is shown for the chosen "
        "calibration and for the uncalibrated model.",
        "",
        *_table(
            ["Model", "Calibration", "ROC AUC", "Average precision", "Brier", "Brier (uncal.)"],
            [
                [
                    mark[n],
                    m["calibration"],
                    iv(m["metrics"]["roc_auc"]),
                    iv(m["metrics"]["average_precision"]),
                    iv(m["metrics"]["brier"]),
                    iv(m["uncalibrated_metrics"]["brier"]),
                ]
                for n, m in models.items()
            ],
        ),
        "## Threshold and operating point",
        "",
        "At each model's threshold, on out-of-fold predictions; value [95% bootstrap interval].",
        "",
        *_table(
            ["Model", "Threshold", *RATE_NAMES],
            [
                [mark[n], num(m["threshold"]), *(pct_iv(m["operating_point"][k]) for k in RATES)]
                for n, m in models.items()
            ],
        ),
        "## Risk bands",
        "",
        *_table(
            ["Model", "Low", "Moderate", "High"],
            [
                [
                    mark[n],
                    f"p < {num(b['moderate_from'])}",
                    f"{num(b['moderate_from'])} ≤ p < {num(b['high_from'])}",
                    f"p ≥ {num(b['high_from'])}",
                ]
                for n, m in models.items()
                for b in [m["risk_bands"]]
            ],
        ),
        "## Feature importance",
        "",
        "Permutation importance: mean drop in ROC AUC when the feature is shuffled "
        "(refit model, training rows).",
        "",
        *_table(
            ["Feature", *(mark[n] for n in models)],
            [
                [f"`{code}`", *(num(m["importance"].get(code)) for m in models.values())]
                for code in sorted(
                    card["features"], key=lambda c: -models[default]["importance"][c]
                )
            ],
        ),
        *_drift_reference(card),
        "## Limitations",
        "",
        *(f"- {item}" for item in card["limitations"]),
        "",
        "## Library versions",
        "",
        *_table(["Library", "Version"], [[k, v] for k, v in card["libraries"].items()]),
    ]
    path = Path(out_dir) / "MODEL_CARD.md"
    path.write_text("\n".join(lines).rstrip() + "\n", encoding="utf-8")
    return path
