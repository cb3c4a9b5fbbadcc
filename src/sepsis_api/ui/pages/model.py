"""Model: the served version's model card — metrics with intervals, plots, bands, limitations.

The card comes from ``GET /v1/models/{name}``; plots from ``GET /v1/model-files/plots/{name}``.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from sepsis_api.ui import common
from sepsis_api.ui.client import APIError, APIUnreachable

st.title("Model card")
served = common.call(common.models)
detail = common.call(common.model, served["default_model"])
card: dict[str, Any] = detail["card"]
summaries = {m["name"]: m for m in served["models"]}
order = [served["default_model"], *(n for n in summaries if n != served["default_model"])]
plots = {k.removeprefix("plots/") for k in card.get("files", {}) if k.startswith("plots/")}


def model_label(name: str) -> str:
    m = summaries[name]
    return m["display_name"] + (" (default)" if m["default"] else "")


def show_plot(name: str, caption: str) -> None:
    """A report plot fetched over HTTP; a short note if the API does not have it."""
    if name not in plots:
        st.caption(f"{caption}: not in this model version.")
        return
    try:
        st.image(common.plot(name), caption=caption, width="stretch")
    except (APIError, APIUnreachable) as e:
        reason = e.detail if isinstance(e, APIError) else "the API is not reachable"
        st.caption(f"{caption}: could not be loaded ({reason}).")


created = str(card.get("created_at", ""))[:10]
st.markdown(
    f"Model version `{card['version']}`, trained {created} (seed {card.get('seed', '–')}). "
    f"Default model: **{summaries[served['default_model']]['display_name']}**; "
    f"{len(summaries)} models are served and can be compared on the Predict page."
)
st.warning(
    f"**{card['limitations'][0] if card.get('limitations') else ''}**", icon=":material/gpp_maybe:"
)
if card.get("intended_use"):
    st.markdown(f"**Intended use.** {card['intended_use']}")

training = card.get("training_data", {})
validation = card.get("validation", {})
if training:
    rows, positives = training.get("rows"), training.get("positives")
    share = f" ({common.pct(positives / rows)})" if rows and positives is not None else ""
    st.markdown(
        f"**Training data.** `{training.get('file', '?')}`: {rows} patients, {positives} of "
        f"whom developed sepsis{share}. **Validation:** {validation.get('method', '?')}, "
        f"{validation.get('splits', '?')} folds × {validation.get('repeats', '?')} repeats."
    )

st.subheader("Performance of the candidate models")
st.caption(
    f"Cross-validated; mean with the {validation.get('interval', 'interval')} in "
    "brackets. ROC AUC and average precision: higher is better; Brier score: lower is "
    "better."
)
perf = pd.DataFrame(
    [
        {
            "Model": model_label(n),
            "Calibration": summaries[n]["calibration"],
            **{
                label: common.interval(summaries[n]["metrics"][key])
                for key, label in common.METRIC_NAMES.items()
                if key in summaries[n]["metrics"]
            },
        }
        for n in order
    ]
)
st.dataframe(perf, hide_index=True, width="stretch")

st.markdown(
    "**At each model's alert threshold** (a patient is labelled Positive from this risk on)"
)
st.caption(
    common.sentence(f"threshold: {validation.get('threshold_rule', 'see the card')}")
    + f" Value with the {validation.get('operating_point_interval', 'interval')} in "
    "brackets."
)
op = pd.DataFrame(
    [
        {
            "Model": model_label(n),
            "Threshold": common.pct(summaries[n]["threshold"]),
            **{
                label: common.interval(summaries[n]["operating_point"][key], percent=True)
                for key, label in common.OPERATING_NAMES.items()
                if key in summaries[n]["operating_point"]
            },
        }
        for n in order
    ]
)
st.dataframe(op, hide_index=True, width="stretch")

st.subheader("Risk bands")
st.caption(
    common.sentence(f"bands: {validation['band_rule']}") if validation.get("band_rule") else ""
)
bands = pd.DataFrame(
    [
        {
            "Model": model_label(n),
            "Low": f"below {common.pct(summaries[n]['risk_bands']['moderate_from'])}",
            "Moderate": f"{common.pct(summaries[n]['risk_bands']['moderate_from'])} to "
            f"{common.pct(summaries[n]['risk_bands']['high_from'])}",
            "High": f"from {common.pct(summaries[n]['risk_bands']['high_from'])}",
        }
        for n in order
    ]
)
st.dataframe(
    bands.style.map(lambda _: common.band_cell_style("low"), subset=["Low"])
    .map(lambda _: common.band_cell_style("moderate"), subset=["Moderate"])
    .map(lambda _: common.band_cell_style("high"), subset=["High"]),
    hide_index=True,
    width="stretch",
)

st.subheader("Discrimination and calibration")
c1, c2, c3 = st.columns(3)
with c1:
    show_plot("roc.png", "ROC curves (out-of-fold)")
with c2:
    show_plot("pr.png", "Precision–recall curves (out-of-fold)")
with c3:
    show_plot("calibration.png", "Calibration: predicted vs observed risk")

st.subheader("Confusion matrices at the threshold")
for col, name in zip(st.columns(len(order)), order, strict=True):
    with col:
        show_plot(f"confusion_{name}.png", model_label(name))

with st.expander("The data and the features (plots from the training report)"):
    extra = [
        ("importance.png", "Permutation importance"),
        ("distributions.png", "Feature distributions by outcome"),
        ("missing.png", "Missing values"),
        ("correlations.png", "Correlations"),
        ("class_balance.png", "Class balance"),
    ]
    for start in range(0, len(extra), 2):
        for col, (name, caption) in zip(st.columns(2), extra[start : start + 2], strict=False):
            with col:
                show_plot(name, caption)

st.subheader("Limitations")
st.markdown("\n".join(f"- {item}" for item in card.get("limitations", [])))
libs = card.get("libraries", {})
if libs:
    st.caption("Trained with " + ", ".join(f"{k} {v}" for k, v in libs.items()) + ".")
