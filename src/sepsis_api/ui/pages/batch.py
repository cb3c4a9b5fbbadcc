"""Batch: upload a ward list (CSV in the data set's format, or Parquet), score it in one call.

The file goes to ``POST /v1/predict/batch`` as CSV (Parquet is converted here); the API reads
BOM and CR/CRLF/LF line endings itself. All or nothing: an invalid row means nothing is scored,
and the reply lists every invalid row with its reason.
"""

from __future__ import annotations

import io
from typing import Any

import pandas as pd
import streamlit as st

from sepsis_api.ui import common
from sepsis_api.ui.client import APIError, APIUnreachable

MAX_PREVIEW_ROWS = 10

st.title("Score a ward list")
served = common.call(common.models)
info = common.call(common.features)
names = {m["name"]: m["display_name"] for m in served["models"]}
ss = st.session_state


def read_upload(name: str, data: bytes) -> tuple[bytes, pd.DataFrame | None, str | None]:
    """(CSV bytes to send, a frame for the preview or None, a preview problem or None)."""
    if name.lower().endswith(".parquet"):
        try:
            frame = pd.read_parquet(io.BytesIO(data))
        except Exception as e:  # any unreadable file is the user's to fix, not a crash
            raise ValueError(f"{name} is not a readable Parquet file ({type(e).__name__})") from e
        csv = frame.to_csv(index=False, lineterminator="\n").encode()
        return csv, frame, None
    try:
        text = data.decode("utf-8-sig").replace("\r\n", "\n").replace("\r", "\n")
        frame = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
    except (UnicodeDecodeError, ValueError, pd.errors.ParserError) as e:
        return data, None, f"no preview ({type(e).__name__}); the API will check the file"
    return data, frame, None


def _score(csv: bytes, model: str | None, file_key: str) -> None:
    ss.pop("batch_outcome", None)
    try:
        text = common.client().batch_csv(csv, model)
    except (APIError, APIUnreachable) as e:
        ss["batch_outcome"] = {"key": file_key, "problem": e}
        return
    scores = pd.read_csv(io.StringIO(text), dtype={"ID": str})
    ss["batch_outcome"] = {"key": file_key, "scores": scores}


def _results_table(scores: pd.DataFrame) -> pd.DataFrame:
    table = pd.DataFrame(
        {
            "Row": scores["index"] + 1,
            "Patient ID": scores["ID"].fillna("–") if "ID" in scores else "–",
            "Risk": scores["probability"] * 100,
            "Band": scores["risk_band"].map(lambda b: common.BANDS[b]["words"]),
            "Label": scores["label"],
            "Prediction ID": scores["prediction_id"],
        }
    )
    return table.sort_values("Risk", ascending=False, kind="stable").reset_index(drop=True)


def _download(scores: pd.DataFrame, preview: pd.DataFrame | None) -> bytes:
    out = scores.rename(columns={"index": "row"}).assign(row=scores["index"] + 1)
    out["risk_percent"] = (out["probability"] * 100).round(1)
    if preview is not None and len(preview) == len(out):
        inputs = preview.drop(columns=[c for c in ("ID",) if c in preview]).reset_index(drop=True)
        out = pd.concat([out.reset_index(drop=True), inputs.add_prefix("input_")], axis=1)
    out = out.sort_values("probability", ascending=False, kind="stable")
    return out.to_csv(index=False, lineterminator="\n").encode()


def _show_invalid(e: APIError) -> None:
    st.error(f"**Nothing was scored.** {e.detail}", icon=":material/rule:")
    rows = [
        {
            "Row": err.get("row"),
            "Column": err.get("field") or "–",
            "Value": "" if err.get("value") is None else str(err.get("value")),
            "Problem": err.get("message", ""),
            "Expected": err.get("expected", ""),
        }
        for err in e.errors
    ]
    if rows:
        st.markdown(
            f"**{len(rows)} problem(s)** — fix them in the file and upload it again "
            "(rows are numbered from 1, the first patient under the header):"
        )
        st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
        if len(rows) >= 100:
            st.caption("The API lists the first 100 problems.")


st.caption(
    "Upload a CSV in the data set's format (columns `ID` (optional), "
    + ", ".join(f"`{f['code']}`" for f in info["features"])
    + "; UTF-8 with or without BOM; any line endings) or a Parquet file with the same "
    "columns. Empty cells (and 0 where allowed) mean “not measured”."
)

upload = st.file_uploader("Ward list", type=["csv", "parquet"], key="batch_file")
if upload is None:
    ss.pop("batch_outcome", None)
    st.info(
        "Choose a file to see a preview and score it. Nothing is sent until you press **Score**.",
        icon=":material/upload_file:",
    )
    st.stop()

raw = upload.getvalue()
try:
    csv_bytes, preview, preview_note = read_upload(upload.name, raw)
except ValueError as e:
    st.error(str(e), icon=":material/error:")
    st.stop()

st.subheader("Preview")
if preview is not None:
    st.caption(
        f"{upload.name}: {len(preview)} patient row(s), {preview.shape[1]} column(s); "
        f"the first {min(MAX_PREVIEW_ROWS, len(preview))} are shown."
    )
    st.dataframe(preview.head(MAX_PREVIEW_ROWS), hide_index=True, width="stretch")
else:
    st.caption(f"{upload.name}: {preview_note}")

model_col, button_col = st.columns([2, 1], vertical_alignment="bottom")
choice = model_col.selectbox(
    "Model",
    [None, *names],
    key="batch_model",
    format_func=lambda n: f"Default ({names[served['default_model']]})" if n is None else names[n],
)
file_key = f"{upload.file_id}:{choice}"
count = f"{len(preview)} patients" if preview is not None else "the file"
button_col.button(
    f"Score {count}",
    type="primary",
    icon=":material/play_arrow:",
    key="batch_score",
    width="stretch",
    on_click=_score,
    args=(csv_bytes, choice, file_key),
)

outcome: dict[str, Any] | None = ss.get("batch_outcome")
if not outcome or outcome["key"] != file_key:
    st.stop()

problem = outcome.get("problem")
if isinstance(problem, APIError) and problem.status in (413, 415, 422):
    _show_invalid(problem)
    st.stop()
if problem is not None:
    common.show_problem(problem)
    st.stop()

scores: pd.DataFrame = outcome["scores"]
st.subheader("Results, highest risk first")
bands = scores["risk_band"].value_counts()
cols = st.columns(5)
cols[0].metric("Patients scored", f"{len(scores)}", border=True)
for col, band in zip(cols[1:4], ("high", "moderate", "low"), strict=True):
    col.metric(common.BANDS[band]["words"], f"{int(bands.get(band, 0))}", border=True)
cols[4].metric("Label Positive", f"{int((scores['label'] == 'Positive').sum())}", border=True)
first = scores.iloc[0]
st.caption(
    f"Model {names.get(first['model'], first['model'])}, version "
    f"`{first['model_version']}`; every estimate is in the audit log (History). Click a "
    "column header to sort."
)

table = _results_table(scores)
styled = table.style.format({"Risk": "{:.1f}%"}).map(common.band_cell_style, subset=["Band"])
st.dataframe(
    styled,
    hide_index=True,
    width="stretch",
    height=min(36 * (len(table) + 1), 560),
    column_config={
        "Risk": st.column_config.NumberColumn("Risk", help="Calibrated probability of sepsis")
    },
)
st.download_button(
    "Download results (CSV)",
    _download(scores, preview),
    file_name=f"{upload.name.rsplit('.', 1)[0]}-scores.csv",
    mime="text/csv",
    icon=":material/download:",
    key="batch_download",
)
