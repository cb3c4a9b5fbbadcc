"""Predict: one patient's measurements in, risk, band, label and reasons out.

The form is generated from ``GET /v1/features`` (labels, units, valid ranges, which features may
be "not measured"); the estimate comes from ``POST /v1/predict?explain=true``.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from sepsis_api.ui import common
from sepsis_api.ui.client import APIError, APIUnreachable, FeatureInfo, ModelSummary, Prediction

DEFAULT, ALL = "__default__", "all"
# Row 1 of the public training file (a positive case); TS was not measured there.
EXAMPLE: dict[str, float | None] = {
    "PRG": 6,
    "PL": 148,
    "PR": 72,
    "SK": 35,
    "TS": None,
    "M11": 33.6,
    "BD2": 0.627,
    "Age": 50,
    "Insurance": 0,
}

st.title("Predict one patient")
info = common.call(common.features)
served = common.call(common.models)
feats = info["features"]
feats_by_code = common.by_code(info)
summaries: dict[str, ModelSummary] = {m["name"]: m for m in served["models"]}
ss = st.session_state


def _in(code: str) -> str:
    return f"in_{code}"


def _nm(code: str) -> str:
    return f"nm_{code}"


def _current() -> tuple[dict[str, Any], dict[str, str]]:
    """The request body the form holds now, and the fields that still need a value."""
    body: dict[str, Any] = {}
    missing: dict[str, str] = {}
    for f in feats:
        code = f["code"]
        if f["zero_means_missing"] and ss.get(_nm(code)):
            body[code] = None
            continue
        value = ss.get(_in(code))
        if value is None:
            missing[code] = (
                "Enter a value, or tick “Not measured”."
                if f["zero_means_missing"]
                else "Enter a value: this measurement is required."
            )
            continue
        body[code] = value
    pid = (ss.get("patient_id") or "").strip()
    if pid:
        body["ID"] = pid
    return body, missing


def _fill_example() -> None:
    for code, value in EXAMPLE.items():
        if code not in feats_by_code:
            continue
        ss[_nm(code)] = value is None and feats_by_code[code]["zero_means_missing"]
        ss[_in(code)] = value
    ss["patient_id"] = "ICU200010"
    _clear_outcome()


def _clear_form() -> None:
    for f in feats:
        ss[_in(f["code"])] = None
        ss[_nm(f["code"])] = False
    ss["patient_id"] = ""
    _clear_outcome()


def _clear_outcome() -> None:
    for key in ("predict_outcome", "predict_problem", "predict_field_errors"):
        ss.pop(key, None)


def _submit() -> None:
    """Button callback: validate, call the API, keep the outcome for the next render."""
    _clear_outcome()
    body, missing = _current()
    if missing:
        ss["predict_field_errors"] = missing
        return
    choice = ss.get("model_choice", DEFAULT)
    try:
        result = common.client().predict(body, None if choice == DEFAULT else choice, explain=True)
    except APIError as e:
        aliases = {f["name"]: f["code"] for f in feats} | {f["code"]: f["code"] for f in feats}
        by_field = {
            aliases[field]: err.get("message", "invalid value")
            + (f" (expected {err['expected']})" if err.get("expected") else "")
            for err in e.errors
            if (field := err.get("field")) in aliases
        }
        ss["predict_field_errors"] = by_field
        ss["predict_problem"] = e
        return
    except APIUnreachable as e:
        ss["predict_problem"] = e
        return
    ss["predict_outcome"] = {"result": result, "body": body}


def _input(f: FeatureInfo) -> None:
    """One feature's widget(s): a number input with unit and range, and 'Not measured'."""
    code, unit = f["code"], f["unit"]
    desc = f["description"]
    label = (desc if desc.lower() == code.lower() else f"{desc} · {code}") + (
        f" ({unit})" if unit else ""
    )
    help_text = f"Valid: {f['rule']}. API name `{f['name']}`."
    if f["choices"] is not None:
        names = {0: "No (0)", 1: "Yes (1)"} if code == "Insurance" else {}
        st.radio(
            label,
            f["choices"],
            index=None,
            key=_in(code),
            horizontal=True,
            format_func=lambda c: names.get(c, str(c)),
            help=help_text,
        )
    else:
        digits = common.decimals(f)
        integer = digits == 0
        lo, hi = (int(f["minimum"]), int(f["maximum"])) if integer else (f["minimum"], f["maximum"])
        st.number_input(
            label,
            min_value=lo,
            max_value=hi,
            value=None,
            key=_in(code),
            step=1 if integer else 10.0**-digits,
            format="%d" if integer else f"%.{digits}f",
            placeholder=f"{common.valid_range(f)}" + (f" {unit}" if unit else ""),
            disabled=bool(ss.get(_nm(code))),
            help=help_text,
        )
    if f["zero_means_missing"]:
        st.checkbox(
            "Not measured",
            key=_nm(code),
            help="The model fills in a typical value from the training data.",
        )
    else:
        st.caption("Required")
    problem = ss.get("predict_field_errors", {}).get(code)
    if problem:
        st.error(problem, icon=":material/error:")


def _model_name(pred: Prediction) -> str:
    m = summaries.get(pred["model"])
    return m["display_name"] if m else pred["model"]


def _prediction_card(pred: Prediction) -> None:
    """Risk, band (colour and words), label at the threshold, bands; no chart."""
    m = summaries.get(pred["model"])
    with st.container(border=True):
        st.caption(f"{_model_name(pred)} · model version {pred['model_version']}")
        risk_col, band_col = st.columns([1, 1.3], vertical_alignment="center")
        risk_col.metric("Sepsis risk", common.pct(pred["probability"]))
        band_col.markdown(common.band_markdown(pred["risk_band"], big=True))
        above = pred["probability"] >= pred["threshold"]
        st.markdown(
            f"Label **{pred['label']}**: the risk is {'at or above' if above else 'below'} "
            f"this model's alert threshold of **{common.pct(pred['threshold'])}**."
        )
        if m:
            st.caption(f"Risk bands: {common.bands_text(m)}.")
        st.caption(f"Recorded in the audit log as `{pred['prediction_id']}`.")


def _reasons(pred: Prediction) -> None:
    contributions = pred.get("contributions")
    if not contributions:
        st.caption("No per-feature reasons came back for this estimate.")
        return
    st.altair_chart(common.contribution_chart(contributions, feats_by_code), width="stretch")


def _comparison(preds: list[Prediction]) -> None:
    rows = [
        {
            "Model": _model_name(p),
            "Risk": common.pct(p["probability"]),
            "Band": common.BANDS[p["risk_band"]]["words"],
            "Label": p["label"],
            "Threshold": common.pct(p["threshold"]),
        }
        for p in preds
    ]
    table = pd.DataFrame(rows).style.map(common.band_cell_style, subset=["Band"])
    st.dataframe(table, hide_index=True, width="stretch")


st.caption(
    "Enter the measurements you have. Ranges are enforced as you type; tick "
    "“Not measured” where a value is missing. Every estimate is recorded in the audit "
    "log."
)

form_col, result_col = st.columns([3, 2], gap="large")

with form_col:
    b1, b2, _ = st.columns([1.4, 0.9, 2])
    b1.button(
        "Example patient",
        on_click=_fill_example,
        icon=":material/person:",
        key="example",
        width="stretch",
        help="Fill the form with row 1 of the public training data.",
    )
    b2.button(
        "Clear", on_click=_clear_form, icon=":material/backspace:", key="clear", width="stretch"
    )
    for start in range(0, len(feats), 3):
        # Bottom-aligned rows keep the inputs level when a label wraps to two lines.
        row = st.columns(3, vertical_alignment="bottom")
        for col, f in zip(row, feats[start : start + 3], strict=False):
            with col:
                _input(f)
    id_col, model_col = st.columns(2)
    id_col.text_input(
        "Patient ID (optional)",
        key="patient_id",
        max_chars=128,
        placeholder="e.g. ward or record number",
        help="Kept with the estimate in the audit log, so you can find it again.",
    )
    choices = [DEFAULT, *summaries, ALL]
    default_name = summaries[served["default_model"]]["display_name"]
    model_col.selectbox(
        "Model",
        choices,
        key="model_choice",
        format_func=lambda c: (
            f"Default ({default_name})"
            if c == DEFAULT
            else "All models, side by side"
            if c == ALL
            else summaries[c]["display_name"]
        ),
    )
    st.button(
        "Estimate risk",
        type="primary",
        on_click=_submit,
        key="submit",
        icon=":material/monitor_heart:",
        width="stretch",
    )

problem = ss.get("predict_problem")
field_errors = ss.get("predict_field_errors")
outcome = ss.get("predict_outcome")
preds: list[Prediction] = outcome["result"]["predictions"] if outcome else []

with result_col:
    if problem is not None:
        common.show_problem(problem, fields=feats)
    elif field_errors:
        st.error(
            f"**{len(field_errors)} field(s) need attention** — see the messages under them.",
            icon=":material/edit_note:",
        )
    if outcome:
        if _current()[0] != outcome["body"]:
            st.info(
                "The form has changed since this estimate; press **Estimate risk** again "
                "to update it.",
                icon=":material/update:",
            )
        who = outcome["result"].get("patient_id")
        st.subheader(f"Result for {who}" if who else "Result")
        missing = [c for c, v in outcome["body"].items() if v is None]
        if missing:
            st.caption(
                "Not measured (filled in by the model): "
                + ", ".join(common.feature_label(feats_by_code[c]) for c in missing)
                + "."
            )
        if len(preds) == 1:
            _prediction_card(preds[0])
        else:
            _comparison(preds)
            for pred in preds:
                _prediction_card(pred)
    elif problem is None and not field_errors:
        with st.container(border=True):
            st.markdown("**The result appears here.**")
            st.caption(
                "Risk as a percentage, its band (low / moderate / high), the label at "
                "the model's threshold, and which values pushed the risk up or down."
            )

if preds:
    st.subheader("Why: what each value did to the risk")
    st.caption(
        "Each bar compares the patient's value with the value treated as not measured "
        "(the training median), in log-odds of the risk: bars to the right raised it, "
        "bars to the left lowered it. Not-measured values have no effect."
    )
    if len(preds) == 1:
        _reasons(preds[0])
    else:
        for tab, pred in zip(st.tabs([_model_name(p) for p in preds]), preds, strict=True):
            with tab:
                _reasons(pred)
