"""Monitoring: is the served model still working? Drift of the inputs and of the predicted risk
against the training data, the alert rate per day against the card's band, and — once outcomes
have been recorded — discrimination and calibration over time.

Data: ``GET /v1/monitoring/drift`` once per calendar week of the chosen span (the heatmap) and
once over the whole span (alerts per day, predicted-risk distribution), and
``GET /v1/monitoring/performance?every=week`` over the span. A bounded number of calls, each
with the client's timeout.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from sepsis_api.ui import common
from sepsis_api.ui import monitoring_charts as charts
from sepsis_api.ui.client import Figure, PerformanceReport

st.title("Monitoring")
st.caption(
    "Whether the estimates the API has made still look like the data the model was trained "
    "on, and — where outcomes have been recorded — how well they matched. Weeks start on "
    "Monday, times are UTC."
)

served = common.call(common.models)
names = {m["name"]: m["display_name"] for m in served["models"]}
with st.container(border=True):
    c1, c2, c3 = st.columns([1.2, 1.1, 1.0])
    model_name = c1.selectbox(
        "Model",
        list(names),
        index=list(names).index(served["default_model"]),
        key="mon_model",
        format_func=lambda v: names[v] + (" (default)" if v == served["default_model"] else ""),
    )
    version = c2.text_input("Model version", key="mon_version", placeholder=served["version"])
    weeks = c3.selectbox(
        "Span", charts.SPANS, index=1, key="mon_weeks", format_func=lambda w: f"last {w} weeks"
    )

selection = {"model": model_name, "model_version": version.strip() or None}
starts = charts.week_starts(weeks)
span = {"since": starts[0].isoformat(), "until": charts.week_end(starts[-1]).isoformat()}
overall = common.call(common.drift, {**selection, **span})
thresholds = overall["thresholds"]
st.markdown(
    f"Model version `{overall['model_version']}`, model **{names.get(overall['model'], '?')}**: "
    f"**{overall['n']}** estimates from {starts[0]:%Y-%m-%d} to today."
)

# -- drift -------------------------------------------------------------------------------------

st.subheader("Feature drift by week")
st.caption(
    "Population stability index (PSI) of each week's inputs against the training data's "
    f"decile bins: below {thresholds['psi_warn']:g} stable, {thresholds['psi_warn']:g}–"
    f"{thresholds['psi_alert']:g} worth a look (warn), {thresholds['psi_alert']:g} and above "
    f"a shift (alert). A week with fewer than {thresholds['min_rows_psi']:g} estimates gets "
    "no PSI: on so few it is mostly noise."
)
weekly = [
    common.call(
        common.drift,
        {**selection, "since": s.isoformat(), "until": charts.week_end(s).isoformat()},
    )
    for s in starts
]
if overall["status"] == "no_reference":
    st.info(overall["detail"] or "This model version has no drift reference.")
else:
    heat = charts.drift_frame(weekly, common.by_code(common.call(common.features)))
    if heat["psi"].notna().any():
        st.altair_chart(charts.drift_heatmap(heat, thresholds), width="stretch")
        flagged = heat[heat["status"] == "alert"]
        if len(flagged):
            st.error(
                "**Drift alert:** "
                + "; ".join(
                    f"{r.feature} in the week of {r.week} (PSI {r.psi:.2f})"
                    for r in flagged.itertuples()
                ),
                icon=":material/warning:",
            )
    else:
        st.info(
            f"Not enough estimates yet: no week of the span has the {thresholds['min_rows_psi']:g}"
            " estimates a PSI needs.",
            icon=":material/hourglass_empty:",
        )

# -- alert rate and predicted risk -----------------------------------------------------------------

left, right = st.columns(2)
with left:
    st.subheader("Alert rate per day")
    rate = overall["alert_rate"]
    ref = rate["reference"]
    if ref is not None:
        st.caption(
            f"Share of estimates labelled Positive each day; the band is the card's "
            f"cross-validated alert rate {common.pct(ref['value'])} "
            f"({common.pct(ref['low'])}–{common.pct(ref['high'])})."
        )
    if overall["alerts_per_day"]:
        st.altair_chart(charts.alert_rate_chart(overall["alerts_per_day"], ref), width="stretch")
        if rate["status"] == "insufficient_data":
            st.caption(
                f"{rate['n']} estimates over the span: the alert rate is compared with the "
                f"card's from {thresholds['min_rows_alert_rate']:g} on."
            )
        else:
            words = {"ok": "within", "above": "above", "below": "below"}[rate["status"]]
            st.markdown(
                f"Over the span: **{common.pct(rate['estimate'])}** "
                f"({common.pct(rate['ci_low'])}–{common.pct(rate['ci_high'])}), "
                f"{rate['alerts']} alerts in {rate['n']} estimates — **{words}** the card's band."
            )
    else:
        st.info("No estimates in the span yet.", icon=":material/hourglass_empty:")
with right:
    st.subheader("Predicted risk against training")
    risk = overall["predicted_risk"]
    st.caption(
        "Share of estimates in each decile bin of the out-of-fold (cross-validated) "
        "probabilities of the training data; an unchanged population puts about a tenth in "
        "each bin."
    )
    if risk["n"] and risk["edges"]:
        st.altair_chart(charts.risk_distribution_chart(risk), width="stretch")
        if risk["psi"] is None:
            st.caption(
                f"{risk['n']} estimates: PSI from {thresholds['min_rows_psi']:g} estimates on."
            )
        else:
            st.markdown(f"PSI **{risk['psi']:.3f}** ({charts.STATUS_WORDS[risk['status']]}).")
    else:
        st.info("No estimates in the span yet.", icon=":material/hourglass_empty:")

# -- performance from outcomes -----------------------------------------------------------------

st.subheader("Performance against recorded outcomes")
perf: PerformanceReport = common.call(common.performance, {**selection, **span, "every": "week"})
if perf["status"] != "ok":
    st.info(
        f"**Not enough outcomes yet** — {perf['reason'] or 'too few outcomes'}. "
        f"{perf['n']} estimates have an outcome recorded ({perf['events']} Positive). "
        "Record outcomes on the History page or with `POST /v1/outcomes`; the figures are "
        f"shown from {perf['minimum']['events']} events and {perf['minimum']['non_events']} "
        "non-events on.",
        icon=":material/hourglass_empty:",
    )
else:
    card = perf["card"]

    def shown(key: str, f: Figure, digits: int = 3) -> None:
        versus = card[key] if card else None  # type: ignore[literal-required]
        if versus is not None and versus["estimate"] is None:
            versus = None  # the card has no such figure (older cards)
        st.metric(
            charts.FIGURE_NAMES[key],
            charts.value(f, digits),
            help=f"95% interval {charts.ci(f, digits)}"
            + (f"; cross-validated on the card: {charts.value(versus, digits)}" if versus else ""),
        )
        st.caption(
            f"95% interval {charts.ci(f, digits)}"
            + (f" · card {charts.value(versus, digits)}" if versus else "")
        )

    st.caption(
        f"{perf['n']} estimates with an outcome, {perf['events']} of them Positive (latest "
        "revision of each outcome)."
    )
    series = charts.window_frame(perf["windows"] or [])
    ok = series[series["status"] == "ok"]
    for col, (key, digits) in zip(
        st.columns(3), (("roc_auc", 3), ("calibration_slope", 2), ("brier", 3)), strict=True
    ):
        with col:
            shown(key, perf[key], digits)  # type: ignore[literal-required]
            if len(ok):
                st.altair_chart(charts.window_chart(ok, charts.FIGURE_NAMES[key]), width="stretch")
    st.caption(
        "By week: the estimate with its 95% interval and, above it, the week's events; weeks "
        "without enough outcomes are left out of the charts and say so in the table."
    )
    table: list[dict[str, Any]] = [
        {
            "Week from": w["start"][:10],
            "With outcome": w["n"],
            "Events": w["events"],
            **{
                charts.FIGURE_NAMES[k]: charts.value_ci(w[k], digits)  # type: ignore[literal-required]
                if w["status"] == "ok"
                else "Not enough outcomes"
                for k, digits in (("roc_auc", 3), ("calibration_slope", 2), ("brier", 3))
            },
        }
        for w in perf["windows"] or []
    ]
    st.dataframe(pd.DataFrame(table), hide_index=True, width="stretch")

    c_rel, c_band = st.columns(2)
    with c_rel:
        st.markdown("**Reliability diagram**")
        st.caption(
            "Observed share Positive against the mean predicted risk, per decile of "
            "predicted risk; on the diagonal when calibrated."
        )
        st.altair_chart(charts.reliability_chart(perf["reliability"]), width="stretch")
    with c_band:
        st.markdown("**Event rate by risk band**")
        bands = pd.DataFrame(
            [
                {
                    "Band": common.BANDS[b["band"]]["words"],
                    "Estimates": b["n"],
                    "Events": b["events"],
                    "Event rate": charts.value_ci(b["event_rate"], percent=True),
                }
                for b in perf["by_band"]
            ]
        )
        st.dataframe(
            bands.style.map(common.band_cell_style, subset=["Band"]),
            hide_index=True,
            width="stretch",
        )
