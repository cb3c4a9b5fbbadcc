"""Home: what the tool is and is not, whether the API answers, the features and the model."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from sepsis_api.schema import NOT_A_DEVICE
from sepsis_api.ui import common
from sepsis_api.ui.client import APIError, APIUnreachable

st.title("Sepsis Risk")
st.markdown(
    "A calibrated estimate of a patient's risk of developing sepsis, with the reasons "
    "behind it and an audit trail of every estimate."
)

url, _ = common.api_target()

# The reachability banner: the address tried, and what answered.
try:
    ready = common.readiness()
    info = common.features()
    served = common.models()
    card = common.model(served["default_model"])["card"]
except APIUnreachable as e:
    st.error(
        f"**The API is not reachable at {url}** ({e.reason or 'no answer'}). Nothing can "
        "be estimated until it is: start it with `sepsis-api serve` (or `make run`), or set "
        "`SEPSIS_API_UI_API_URL` to its address.",
        icon=":material/cloud_off:",
    )
    st.warning(NOT_A_DEVICE, icon=":material/gpp_maybe:")
    st.stop()
except APIError as e:
    common.show_problem(e)
    st.warning(NOT_A_DEVICE, icon=":material/gpp_maybe:")
    st.stop()

if ready.get("status") == "ready":
    st.success(
        f"Connected to the API at {url} — model version {served['version']} is ready.",
        icon=":material/check_circle:",
    )
else:
    st.warning(
        f"The API at {url} answers but is not ready: {ready.get('reason', 'unknown')}.",
        icon=":material/hourglass_empty:",
    )

st.warning(f"**{info['disclaimer']}**", icon=":material/gpp_maybe:")

is_col, not_col = st.columns(2, gap="large")
with is_col:
    st.subheader("What it is")
    st.markdown(
        "- **Predict**: enter one patient's measurements and get a calibrated risk, its band "
        "(low / moderate / high) and which values pushed it up or down.\n"
        "- **Batch**: upload a ward list (CSV or Parquet) and score every patient at once.\n"
        "- **History**: every estimate is recorded by the server; look any of them up again.\n"
        "- **Model**: how well the models did in cross-validation, with intervals.\n"
        "- **Monitoring**: whether recent estimates drift from the training data and, once "
        "outcomes are recorded, how well they matched."
    )
rows = card.get("training_data", {}).get("rows")
trained_on = f"{rows} rows" if rows else "a small data set"
with not_col:
    st.subheader("What it is not")
    st.markdown(
        "- Not a validated clinical device, and not a diagnosis: a research and teaching "
        "demonstration.\n"
        "- Not validated on any external or prospective cohort: trained on "
        f"{trained_on} from one public source.\n"
        "- Not a substitute for clinical judgement, sepsis screening protocols or early-warning "
        "scores."
    )

st.info(f"**Where the data come from.** {info['provenance']}", icon=":material/database:")

st.subheader("The features")
st.caption(
    "What the model reads, in the data set publisher's words. Where “not measured” is "
    "allowed, a missing value (or 0) is filled in by the model from the training data."
)
table = pd.DataFrame(
    [
        {
            "Code": f["code"],
            "Name": f["name"],
            "Description": f["description"],
            "Unit": f["unit"] or "–",
            "Valid range": common.valid_range(f),
            "May be not measured": "yes" if f["zero_means_missing"] else "no",
        }
        for f in info["features"]
    ]
)
st.dataframe(table, hide_index=True, width="stretch")

st.subheader("The active model")
default = next(m for m in served["models"] if m["default"])
st.markdown(
    f"**{default['display_name']}** (`{default['name']}`), model version "
    f"`{served['version']}` — the default of {len(served['models'])} served models. "
    f"Label threshold {common.pct(default['threshold'])}; risk bands: "
    f"{common.bands_text(default)}."
)
metrics, op = default["metrics"], default["operating_point"]
cols = st.columns(4)
headline = [
    (
        "ROC AUC",
        f"{metrics['roc_auc']['mean']:.3f}",
        f"fold range {metrics['roc_auc']['low']:.3f}–{metrics['roc_auc']['high']:.3f}",
    ),
    (
        "Average precision",
        f"{metrics['average_precision']['mean']:.3f}",
        f"fold range {metrics['average_precision']['low']:.3f}–"
        f"{metrics['average_precision']['high']:.3f}",
    ),
    (
        "Sensitivity at threshold",
        common.pct(op["sensitivity"]["value"]),
        f"95% CI {common.pct(op['sensitivity']['low'])}–{common.pct(op['sensitivity']['high'])}",
    ),
    (
        "Specificity at threshold",
        common.pct(op["specificity"]["value"]),
        f"95% CI {common.pct(op['specificity']['low'])}–{common.pct(op['specificity']['high'])}",
    ),
]
for col, (label, value, note) in zip(cols, headline, strict=True):
    col.metric(label, value, border=True)
    col.caption(note)
st.caption(
    "Cross-validated on the training data (out-of-fold). The Model page has every "
    "model's metrics, plots and limitations."
)
st.page_link("pages/model.py", label="Open the model card", icon=":material/query_stats:")
