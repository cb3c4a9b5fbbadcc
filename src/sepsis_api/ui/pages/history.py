"""History: the server's audit log (``GET /v1/predictions``), filtered and paged, and one record.

Everything here is read from the API on every visit, so it survives reloads and restarts.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pandas as pd
import streamlit as st

from sepsis_api.ui import common
from sepsis_api.ui.client import APIError, APIUnreachable, CurrentOutcome, HistoryRecord

PAGE_SIZES = (10, 25, 50, 100)

st.title("History")
served = common.call(common.models)
info = common.call(common.features)
feats = common.by_code(info)
names = {m["name"]: m["display_name"] for m in served["models"]}
ss = st.session_state


def when(iso: str) -> str:
    """ISO 8601 time -> '2026-11-26 12:34:56 UTC'."""
    try:
        t = datetime.fromisoformat(iso)
    except ValueError:
        return iso
    if t.tzinfo is not None:
        t = t.astimezone(UTC)
    return t.strftime("%Y-%m-%d %H:%M:%S UTC")


def _older() -> None:
    if ss.get("hist_next"):
        ss["hist_cursors"] = [*ss["hist_cursors"], ss["hist_next"]]


def _newer() -> None:
    if len(ss.get("hist_cursors", [])) > 1:
        ss["hist_cursors"] = ss["hist_cursors"][:-1]


def _first() -> None:
    ss["hist_cursors"] = [None]


def _save_outcome(pid: str) -> None:
    """Button callback: record the chosen outcome (runs before the page is drawn again, so
    the record shown next already has it)."""
    choice = ss.get(f"out_choice_{pid}")
    if choice not in ("Positive", "Negative"):
        ss["out_result"] = (pid, "warning", "Choose Positive or Negative first.")
        return
    note = str(ss.get(f"out_note_{pid}") or "").strip() or None
    try:
        saved = common.client().record_outcome(pid, choice, note=note)
    except (APIError, APIUnreachable) as e:
        ss["out_result"] = (pid, "problem", e)
        return
    words = (
        f"Outcome saved: **{saved['outcome']}** "
        f"(the current one, revision {saved['revision']} of {saved['revisions']})."
    )
    ss["out_result"] = (pid, "success", words)
    ss[f"out_note_{pid}"] = ""


def outcome_text(o: CurrentOutcome) -> str:
    observed = f" · observed {when(o['observed_at'])}" if o["observed_at"] else ""
    source = f" · from {o['source']}" if o["source"] else ""
    revisions = f" · revision {o['revision']} of {o['revisions']}" if o["revisions"] > 1 else ""
    return (
        f"**Outcome: {o['outcome']}**{observed}{source} · recorded {when(o['recorded_at'])} "
        f"by `{o['recorded_by']}`{revisions}"
    )


def show_outcome(r: HistoryRecord) -> None:
    """The estimate's current outcome and a way to record it (a new revision supersedes it;
    earlier ones stay in the audit log)."""
    pid = r["prediction_id"]
    st.markdown("**True outcome**")
    current = r.get("outcome")
    if current:
        st.markdown(outcome_text(current))
        if current["note"]:
            st.caption(f"Note: {current['note']}")
    else:
        st.caption("No outcome recorded yet for this estimate.")
    c = st.columns([1.3, 3, 1.2], vertical_alignment="bottom")
    c[0].radio(
        "Did the patient develop sepsis?",
        ["Positive", "Negative"],
        index=None,
        horizontal=True,
        key=f"out_choice_{pid}",
    )
    c[1].text_input(
        "Note (optional)", key=f"out_note_{pid}", max_chars=2000, placeholder="e.g. culture result"
    )
    c[2].button(
        "Record outcome" if not current else "Record a new outcome",
        key=f"out_save_{pid}",
        on_click=_save_outcome,
        args=(pid,),
        icon=":material/fact_check:",
        width="stretch",
    )
    result = ss.get("out_result")
    if result and result[0] == pid:
        _, kind, payload = result
        if kind == "problem":
            common.show_problem(payload)
        elif kind == "warning":
            st.warning(payload, icon=":material/warning:")
        else:
            st.success(payload, icon=":material/check_circle:")


def show_record(r: HistoryRecord) -> None:
    """One audit record: outputs, who and when, inputs and (when recorded) reasons."""
    with st.container(border=True):
        st.markdown(f"#### Estimate `{r['prediction_id']}`")
        c = st.columns([1, 1.4, 1, 1], vertical_alignment="center")
        c[0].metric("Sepsis risk", common.pct(r["probability"]))
        c[1].markdown(common.band_markdown(r["risk_band"], big=True))
        c[2].metric("Label", r["label"])
        c[3].metric("Threshold", common.pct(r["threshold"]))
        st.caption(
            f"{when(r['created_at'])} · patient {r['patient_id'] or '(no ID)'} · "
            f"{names.get(r['model'], r['model'])}, version `{r['model_version']}` · "
            f"{r['source']} call by `{r['caller']}` · request `{r['request_id']}`"
        )
        inputs_col, reasons_col = st.columns([4, 5], gap="large")
        with inputs_col:
            st.markdown("**Inputs**")
            rows = [
                {
                    "Feature": common.feature_label(f) if f else code,
                    "Code": code,
                    "Value": common.value_text(f, v) if f else str(v),
                }
                for code, v in r["inputs"].items()
                for f in [feats.get(code)]
            ]
            st.dataframe(
                pd.DataFrame(rows),
                hide_index=True,
                width="stretch",
                column_order=["Feature", "Value"],
            )
        with reasons_col:
            st.markdown("**Reasons**")
            contributions = r.get("contributions")
            if contributions:
                st.altair_chart(
                    common.contribution_chart(contributions, feats, compact=True),
                    width="stretch",
                )
                st.caption(
                    "Compared with each value treated as not measured (the training "
                    "median); bars to the right raised the risk."
                )
            else:
                st.caption(
                    "No per-feature reasons were recorded for this estimate (they are "
                    "computed when an estimate is requested with explanations, as the "
                    "Predict page does; batch estimates do not have them)."
                )
        show_outcome(r)


st.caption(
    "Every estimate the API has returned, newest first, from the server's audit log. Times are UTC."
)

with st.container(border=True):
    f1, f2, f3, f4, f5 = st.columns([1.2, 0.8, 1.1, 1.1, 1.3])
    patient = f1.text_input("Patient ID", key="hist_patient", placeholder="exact ID")
    label = f2.selectbox(
        "Label",
        [None, "Positive", "Negative"],
        key="hist_label",
        format_func=lambda v: "Any" if v is None else v,
    )
    model_name = f3.selectbox(
        "Model",
        [None, *names],
        key="hist_model",
        format_func=lambda v: "Any" if v is None else names[v],
    )
    version = f4.text_input("Model version", key="hist_version", placeholder=served["version"])
    days = f5.date_input(
        "Date range",
        value=(),  # type: ignore[arg-type]  # stubs omit the empty range Streamlit documents
        key="hist_days",
        format="YYYY-MM-DD",
        max_value=date.today() + timedelta(days=1),
    )

since, until = common.day_bounds(tuple(days) if isinstance(days, tuple | list) else (days,))
size = st.session_state.get("hist_size", PAGE_SIZES[1])
params: dict[str, Any] = {
    "patient_id": patient.strip() or None,
    "label": label,
    "model": model_name,
    "model_version": version.strip() or None,
    "since": since,
    "until": until,
    "limit": size,
}

signature = repr(sorted(params.items()))
if ss.get("hist_sig") != signature or "hist_cursors" not in ss:
    ss["hist_sig"], ss["hist_cursors"] = signature, [None]
    ss.pop("hist_table", None)

page = common.call(common.client().history, {**params, "cursor": ss["hist_cursors"][-1]})
ss["hist_next"] = page["next_cursor"]
items = page["items"]
number = len(ss["hist_cursors"])

if not items:
    st.info(
        "No estimates match these filters." if number == 1 else "No more estimates.",
        icon=":material/search_off:",
    )
else:
    start = (number - 1) * size + 1
    st.markdown(
        f"**Page {number}** · estimates {start}–{start + len(items) - 1}"
        + ("" if page["next_cursor"] else " (the oldest)")
    )
    table = pd.DataFrame(
        [
            {
                "Time (UTC)": when(r["created_at"])[:-4],
                "Patient ID": r["patient_id"] or "–",
                "Model": names.get(r["model"], r["model"]),
                "Risk": 100 * r["probability"],
                "Band": common.BANDS.get(r["risk_band"], {"words": r["risk_band"]})["words"],
                "Label": r["label"],
                "Outcome": outcome["outcome"] if (outcome := r.get("outcome")) else "–",
                "Source": r["source"],
                "Caller": r["caller"],
                "Prediction ID": r["prediction_id"],
            }
            for r in items
        ]
    )
    styled = table.style.format({"Risk": "{:.1f}%"}).map(common.band_cell_style, subset=["Band"])
    event = st.dataframe(
        styled,
        hide_index=True,
        width="stretch",
        key="hist_table",
        on_select="rerun",
        selection_mode="single-row",
    )
    st.caption("Select a row to see the estimate's inputs, outputs and reasons.")

nav = st.columns([1, 1, 1, 2.2, 1.2], vertical_alignment="bottom")
nav[4].selectbox("Rows per page", PAGE_SIZES, index=1, key="hist_size")
nav[0].button(
    "Newest",
    on_click=_first,
    disabled=number == 1,
    key="hist_first",
    icon=":material/first_page:",
    width="stretch",
)
nav[1].button(
    "Newer",
    on_click=_newer,
    disabled=number == 1,
    key="hist_newer",
    icon=":material/chevron_left:",
    width="stretch",
)
nav[2].button(
    "Older",
    on_click=_older,
    disabled=not page["next_cursor"],
    key="hist_older",
    icon=":material/chevron_right:",
    width="stretch",
)

selected: str | None = None
if items:
    rows = event.selection.rows if event is not None else []
    if rows and rows[0] < len(items):
        selected = items[rows[0]]["prediction_id"]

# A link to one estimate (a CDS Hooks card's: /history?prediction_id=...) opens its record.
linked = st.query_params.get("prediction_id")
if linked and ss.get("hist_linked") != linked:
    ss["hist_lookup"], ss["hist_linked"] = linked, linked
with st.expander("Find an estimate by its prediction ID", expanded=bool(linked)):
    wanted = st.text_input(
        "Prediction ID",
        key="hist_lookup",
        placeholder="as shown on the Predict page or in a batch result",
    )
if wanted.strip():
    selected = wanted.strip()

if selected:
    try:
        show_record(common.client().record(selected))
    except (APIError, APIUnreachable) as e:
        common.show_problem(e)
