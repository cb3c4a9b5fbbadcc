"""The Monitoring page's weeks, tables and Altair charts, built from the API's monitoring replies
(kept apart from the page script so that the page reads top to bottom)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import Any

import altair as alt
import pandas as pd

from sepsis_api.ui.client import (
    DayAlerts,
    DriftReport,
    FeatureInfo,
    Figure,
    PerformanceWindow,
    PredictedRiskDrift,
    ReliabilityBin,
)
from sepsis_api.ui.common import feature_label, pct

SPANS = (4, 8, 12)  # weeks; one drift call per week, so the span is bounded
FIGURE_NAMES = {"roc_auc": "ROC AUC", "calibration_slope": "Calibration slope", "brier": "Brier"}
STATUS_WORDS = {
    "ok": "stable",
    "warn": "warn",
    "alert": "alert",
    "insufficient_data": "too few estimates",
    "no_reference": "no reference",
}
# Heatmap cell colours by status; the status is written in the legend and tooltips as well.
_STATUS_COLOURS = {
    "stable": "#abefc6",
    "warn": "#fedf89",
    "alert": "#f97066",
    "too few estimates": "#f2f4f7",
}
Layered = alt.LayerChart | alt.FacetChart  # what alt.layer(...).properties(...) is typed as
TRAINING, RECENT = "Training (out-of-fold)", "Recent estimates"


def week_starts(weeks: int, now: datetime | None = None) -> list[datetime]:
    """The Mondays (00:00 UTC) of the last ``weeks`` calendar weeks, the current one last."""
    today = (now or datetime.now(UTC)).astimezone(UTC).date()
    monday = datetime.combine(today - timedelta(days=today.weekday()), datetime.min.time(), UTC)
    return [monday - timedelta(weeks=weeks - 1 - i) for i in range(weeks)]


def week_end(start: datetime) -> datetime:
    return start + timedelta(weeks=1)


def value(f: Figure | None, digits: int = 3) -> str:
    if f is None or f["estimate"] is None:
        return "–"
    return f"{f['estimate']:.{digits}f}"


def ci(f: Figure, digits: int = 3) -> str:
    if f["ci_low"] is None or f["ci_high"] is None:
        return "not estimable"
    return f"{f['ci_low']:.{digits}f}–{f['ci_high']:.{digits}f}"


def value_ci(f: Figure, digits: int = 3, *, percent: bool = False) -> str:
    """'0.812 (0.750–0.870)', or '35.2% (30.1–40.6%)'."""
    if f["estimate"] is None:
        return "–"
    if percent:
        if f["ci_low"] is None or f["ci_high"] is None:
            return pct(f["estimate"])
        return f"{pct(f['estimate'])} ({100 * f['ci_low']:.1f}–{pct(f['ci_high'])})"
    return f"{value(f, digits)} ({ci(f, digits)})"


# -- drift ------------------------------------------------------------------------------------


def drift_frame(weekly: list[DriftReport], features: dict[str, FeatureInfo]) -> pd.DataFrame:
    """One row per (week, feature) plus the predicted risk: PSI, status, estimates."""
    rows = []
    for report in weekly:
        week = report["since"][:10]
        cells: list[tuple[str, float | None, str]] = [
            (
                feature_label(features[f["feature"]]) if f["feature"] in features else f["feature"],
                f["psi"],
                f["status"],
            )
            for f in report["features"]
        ]
        risk = report["predicted_risk"]
        cells.append(("Predicted risk", risk["psi"], risk["status"]))
        for name, psi, status in cells:
            rows.append(
                {
                    "week": week,
                    "feature": name,
                    "psi": psi,
                    "status": status,
                    "state": STATUS_WORDS.get(status, status),
                    "label": "–" if psi is None else f"{psi:.2f}",
                    "n": report["n"],
                }
            )
    return pd.DataFrame(rows, columns=["week", "feature", "psi", "status", "state", "label", "n"])


def drift_heatmap(frame: pd.DataFrame, thresholds: dict[str, float]) -> Layered:
    features = list(dict.fromkeys(frame["feature"]))
    warn, alert = thresholds["psi_warn"], thresholds["psi_alert"]
    words = {  # the legend says what each colour means, thresholds included
        "stable": f"stable (< {warn:g})",
        "warn": f"warn ({warn:g}–{alert:g})",
        "alert": f"alert (≥ {alert:g})",
        "too few estimates": "too few estimates",
    }
    frame = frame.assign(state=frame["state"].map(lambda w: words.get(w, w)))
    base = alt.Chart(frame).encode(
        x=alt.X("week:O", title="Week from (Monday, UTC)", axis=alt.Axis(labelAngle=0)),
        y=alt.Y("feature:N", sort=features, title=None, axis=alt.Axis(labelLimit=320)),
    )
    cells = base.mark_rect(stroke="white", strokeWidth=2).encode(
        color=alt.Color(
            "state:N",
            title="PSI",
            scale=alt.Scale(domain=list(words.values()), range=list(_STATUS_COLOURS.values())),
            legend=alt.Legend(orient="bottom", direction="horizontal", labelLimit=0),
        ),
        tooltip=[
            alt.Tooltip("feature:N", title="Feature"),
            alt.Tooltip("week:O", title="Week from"),
            alt.Tooltip("label:N", title="PSI"),
            alt.Tooltip("state:N", title="Status"),
            alt.Tooltip("n:Q", title="Estimates"),
        ],
    )
    text = base.mark_text(fontSize=13, color="#101828").encode(text="label:N")
    return alt.layer(cells, text).properties(height=alt.Step(30))


# -- alert rate and predicted risk ---------------------------------------------------------------


def alert_rate_chart(days: list[DayAlerts], reference: dict[str, float] | None) -> Layered:
    frame = pd.DataFrame(days)
    frame["day"] = pd.to_datetime(frame["date"])
    frame["rate"] = frame["alert_rate"].map(pct)
    x = alt.X("day:T", title="Day (UTC)", axis=alt.Axis(format="%b %d"))
    y = alt.Y("alert_rate:Q", title="Alert rate", axis=alt.Axis(format="%"))
    line = (
        alt.Chart(frame)
        .mark_line(point=alt.OverlayMarkDef(size=60), color="#1570ef")
        .encode(
            x=x,
            y=y,
            tooltip=[
                alt.Tooltip("date:N", title="Day"),
                alt.Tooltip("rate:N", title="Alert rate"),
                alt.Tooltip("alerts:Q", title="Alerts"),
                alt.Tooltip("n:Q", title="Estimates"),
            ],
        )
    )
    layers: list[Any] = [line]
    if reference is not None:
        band = pd.DataFrame([{**reference, "what": "Card's alert rate (95% interval)"}])
        layers.insert(
            0,
            alt.Chart(band)
            .mark_rect(opacity=0.25, color="#12b76a")
            .encode(y="low:Q", y2="high:Q", tooltip=alt.Tooltip("what:N", title="Band")),
        )
        layers.insert(
            1,
            alt.Chart(band).mark_rule(color="#067647", strokeDash=[4, 3]).encode(y="value:Q"),
        )
    return alt.layer(*layers).properties(height=300)


def risk_bins(risk: PredictedRiskDrift) -> list[str]:
    """Bin names from the edges: 'below 5%', '5–9%', ..., 'from 81%'."""
    edges = [pct(e, 0) for e in risk["edges"]]
    middle = [f"{a}–{b}" for a, b in pairwise(edges)]
    return [f"below {edges[0]}", *middle, f"from {edges[-1]}"]


def risk_distribution_chart(risk: PredictedRiskDrift) -> alt.Chart:
    """Grouped bars: the share of training's out-of-fold and of recent estimates per bin."""
    names = risk_bins(risk)
    rows = []
    for source, counts in ((TRAINING, risk["reference_counts"]), (RECENT, risk["counts"])):
        total = sum(counts) or 1
        rows += [
            {"bin": b, "source": source, "share": c / total, "count": c}
            for b, c in zip(names, counts, strict=True)
        ]
    frame = pd.DataFrame(rows)
    chart: alt.Chart = (
        alt.Chart(frame)
        .mark_bar()
        .encode(
            x=alt.X("bin:N", sort=names, title="Predicted risk", axis=alt.Axis(labelAngle=-40)),
            xOffset=alt.XOffset("source:N", sort=[TRAINING, RECENT]),
            y=alt.Y("share:Q", title="Share of estimates", axis=alt.Axis(format="%")),
            color=alt.Color(
                "source:N",
                title=None,
                sort=[TRAINING, RECENT],
                scale=alt.Scale(range=["#98a2b3", "#1570ef"]),
                legend=alt.Legend(orient="bottom", direction="horizontal", labelLimit=0),
            ),
            tooltip=[
                alt.Tooltip("bin:N", title="Predicted risk"),
                alt.Tooltip("source:N", title="Data"),
                alt.Tooltip("share:Q", title="Share", format=".1%"),
                alt.Tooltip("count:Q", title="Count"),
            ],
        )
        .properties(height=300)
    )
    return chart


# -- performance ------------------------------------------------------------------------------


def window_frame(windows: list[PerformanceWindow]) -> pd.DataFrame:
    """One row per (week, figure): estimate and interval, with the week's counts."""
    rows = [
        {
            "week": w["start"][:10],
            "figure": FIGURE_NAMES[key],
            "estimate": w[key]["estimate"],  # type: ignore[literal-required]
            "low": w[key]["ci_low"],  # type: ignore[literal-required]
            "high": w[key]["ci_high"],  # type: ignore[literal-required]
            "n": w["n"],
            "events": w["events"],
            "status": w["status"],
        }
        for w in windows
        for key in FIGURE_NAMES
    ]
    columns = ["week", "figure", "estimate", "low", "high", "n", "events", "status"]
    return pd.DataFrame(rows, columns=columns)


def window_chart(frame: pd.DataFrame, figure: str) -> Layered:
    """One figure by week: the estimate with its 95% interval; events in the tooltip."""
    one = frame[frame["figure"] == figure]
    x = alt.X("week:O", title="Week from", axis=alt.Axis(labelAngle=0))
    tooltip = [
        alt.Tooltip("week:O", title="Week from"),
        alt.Tooltip("estimate:Q", title=figure, format=".3f"),
        alt.Tooltip("low:Q", title="95% low", format=".3f"),
        alt.Tooltip("high:Q", title="95% high", format=".3f"),
        alt.Tooltip("events:Q", title="Events"),
        alt.Tooltip("n:Q", title="With outcome"),
    ]
    rule = (
        alt.Chart(one).mark_rule(color="#1570ef", strokeWidth=2).encode(x=x, y="low:Q", y2="high:Q")
    )
    point = (
        alt.Chart(one)
        .mark_point(filled=True, size=80, color="#1570ef")
        .encode(
            x=x, y=alt.Y("estimate:Q", title=figure, scale=alt.Scale(zero=False)), tooltip=tooltip
        )
    )
    events = (
        alt.Chart(one)
        .mark_text(dy=-14, fontSize=11, color="#475467")
        .encode(x=x, y="high:Q", text=alt.Text("events:Q", format="d"))
    )
    return alt.layer(rule, point, events).properties(height=220)


def reliability_chart(bins: list[ReliabilityBin]) -> Layered:
    frame = pd.DataFrame(bins, columns=["n", "predicted", "estimate", "ci_low", "ci_high"])
    axis = alt.Scale(domain=[0, 1])
    x = alt.X("predicted:Q", title="Mean predicted risk", scale=axis, axis=alt.Axis(format="%"))
    ideal = (
        alt.Chart(pd.DataFrame({"predicted": [0.0, 1.0], "estimate": [0.0, 1.0]}))
        .mark_line(color="#98a2b3", strokeDash=[5, 4])
        .encode(x=x, y="estimate:Q")
    )
    bars = alt.Chart(frame).mark_rule(color="#1570ef").encode(x=x, y="ci_low:Q", y2="ci_high:Q")
    points = (
        alt.Chart(frame)
        .mark_point(filled=True, size=70, color="#1570ef")
        .encode(
            x=x,
            y=alt.Y(
                "estimate:Q", title="Observed share Positive", scale=axis, axis=alt.Axis(format="%")
            ),
            tooltip=[
                alt.Tooltip("predicted:Q", title="Predicted", format=".1%"),
                alt.Tooltip("estimate:Q", title="Observed", format=".1%"),
                alt.Tooltip("ci_low:Q", title="95% low", format=".1%"),
                alt.Tooltip("ci_high:Q", title="95% high", format=".1%"),
                alt.Tooltip("n:Q", title="Estimates"),
            ],
        )
    )
    return alt.layer(ideal, bars, points).properties(height=320)
