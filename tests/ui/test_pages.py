"""Every page of the web UI, run by Streamlit's AppTest against a real API process on loopback.

The UI is pointed at the API only through its settings (SEPSIS_API_UI_API_URL / _KEY). The
assertions read what the page rendered: metrics, alerts, markdown, tables.
"""

from __future__ import annotations

import io
import re
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from factories import PATIENT, patient
from server import ServerProcess, free_port

KEY = "ui-test-key-0123456789abcdef"
PERCENT = re.compile(r"^\d{1,3}\.\d%$")
FORM = {"PRG": 6, "PL": 148, "PR": 72, "SK": 35, "TS": 120.0, "M11": 33.6, "BD2": 0.627, "Age": 50}

OpenPage = Callable[..., AppTest]


def texts(at: AppTest, kind: str) -> list[str]:
    return [e.value for e in getattr(at, kind)]


def metric(at: AppTest, label: str) -> list[str]:
    return [m.value for m in at.metric if m.label == label]


def charts(at: AppTest) -> list[object]:
    return list(at.get("vega_lite_chart")) + list(at.get("arrow_vega_lite_chart"))


def fill_form(
    at: AppTest,
    values: dict[str, float],
    *,
    insurance: int | None = 0,
    not_measured: tuple[str, ...] = (),
    patient_id: str = "",
) -> AppTest:
    for code, value in values.items():
        at.number_input(key=f"in_{code}").set_value(value)
    for code in not_measured:
        at.checkbox(key=f"nm_{code}").check()
    if insurance is not None:
        at.radio(key="in_Insurance").set_value(insurance)
    at.text_input(key="patient_id").input(patient_id)
    return at.run()


def submit(at: AppTest) -> AppTest:
    at.button(key="submit").click().run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def prediction_id(at: AppTest) -> str:
    for caption in texts(at, "caption"):
        found = re.search(r"audit log as `([^`]+)`", caption)
        if found:
            return found.group(1)
    raise AssertionError("no prediction id on the page")


@pytest.fixture(scope="module")
def keyed_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with ServerProcess(
        tmp_path_factory.mktemp("keyed"), env={"SEPSIS_API_KEYS": f"ui:{KEY}"}
    ) as srv:
        yield srv


# -- Home ---------------------------------------------------------------------------------------


def test_home_shows_connection_disclaimer_features_and_model(live_server, open_page) -> None:
    at = open_page(live_server.url)
    assert any(live_server.url in s and "ready" in s for s in texts(at, "success"))
    assert any("not a validated clinical device" in w for w in texts(at, "warning"))
    assert any("Pima Indians Diabetes" in i for i in texts(at, "info"))  # provenance
    features = at.dataframe[0].value
    assert list(features.columns) == [
        "Code",
        "Name",
        "Description",
        "Unit",
        "Valid range",
        "May be not measured",
    ]
    assert features["Code"].tolist() == [
        "PRG",
        "PL",
        "PR",
        "SK",
        "TS",
        "M11",
        "BD2",
        "Age",
        "Insurance",
    ]
    assert features.set_index("Code").loc["PL", "Valid range"] == "0 – 600"
    assert features.set_index("Code").loc["PL", "Unit"] == "mu U/ml"
    assert any("Logistic regression" in m for m in texts(at, "markdown"))
    assert re.fullmatch(r"0\.\d{3}", metric(at, "ROC AUC")[0])
    assert PERCENT.match(metric(at, "Sensitivity at threshold")[0])


def test_unreachable_api_is_a_banner_naming_the_address(open_page) -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    at = open_page(url)
    banner = " ".join(texts(at, "error"))
    assert "not reachable" in banner and url in banner
    assert any("not a validated clinical device" in w for w in texts(at, "warning"))
    at.switch_page("pages/predict.py").run()
    assert any("cannot be reached" in e and url in e for e in texts(at, "error"))
    assert not at.number_input  # no form without the feature list


# -- API keys -----------------------------------------------------------------------------------


def test_refused_key_is_a_clear_message(keyed_server, open_page) -> None:
    at = open_page(keyed_server.url, key="not-the-right-key-at-all")
    assert any(
        "refused this UI's API key" in e and "SEPSIS_API_UI_API_KEY" in e
        for e in texts(at, "error")
    )
    at.switch_page("pages/history.py").run()
    assert any("refused this UI's API key" in e for e in texts(at, "error"))


def test_the_key_from_settings_is_sent(keyed_server, open_page) -> None:
    at = open_page(keyed_server.url, "predict", key=KEY)
    fill_form(at, FORM)
    submit(at)
    assert PERCENT.match(metric(at, "Sepsis risk")[0])


def test_the_key_from_a_secret_file_is_sent(keyed_server, open_page, monkeypatch, tmp_path) -> None:
    secret = tmp_path / "ui_api_key"
    secret.write_text(f"ui:{KEY}\n", encoding="utf-8")
    monkeypatch.setenv("SEPSIS_API_UI_API_KEY_FILE", str(secret))
    at = open_page(keyed_server.url, "predict")  # no key in SEPSIS_API_UI_API_KEY
    fill_form(at, FORM)
    submit(at)
    assert PERCENT.match(metric(at, "Sepsis risk")[0])


# -- Predict ------------------------------------------------------------------------------------


def test_predict_with_every_value_shows_risk_band_threshold_and_reasons(
    live_server, open_page
) -> None:
    pid = f"UI-ALL-{uuid.uuid4().hex[:8]}"
    at = fill_form(open_page(live_server.url, "predict"), FORM, patient_id=pid)
    submit(at)
    expected = httpx.post(live_server.url + "/v1/predict", json={**FORM, "Insurance": 0}).json()
    p = expected["predictions"][0]
    assert metric(at, "Sepsis risk") == [f"{100 * p['probability']:.1f}%"]
    words = {"low": "Low risk", "moderate": "Moderate risk", "high": "High risk"}
    assert any(words[p["risk_band"]] in m for m in texts(at, "markdown"))  # words, not colour
    assert any(
        f"Label **{p['label']}**" in m and f"{100 * p['threshold']:.1f}%" in m
        for m in texts(at, "markdown")
    )
    assert any(s.value == f"Result for {pid}" for s in at.subheader)
    assert len(charts(at)) == 1  # the contribution chart
    record = httpx.get(f"{live_server.url}/v1/predictions/{prediction_id(at)}").json()
    assert record["patient_id"] == pid and record["inputs"]["TS"] == 120.0
    assert record["contributions"] is not None


def test_predict_with_not_measured_values(live_server, open_page) -> None:
    at = open_page(live_server.url, "predict")
    values = {k: v for k, v in FORM.items() if k not in ("SK", "TS")}
    fill_form(at, values, not_measured=("SK", "TS"))
    assert at.number_input(key="in_SK").disabled  # ticking "not measured" greys the input
    submit(at)
    assert PERCENT.match(metric(at, "Sepsis risk")[0])
    assert any("Not measured" in c and "(SK)" in c and "(TS)" in c for c in texts(at, "caption"))
    record = httpx.get(f"{live_server.url}/v1/predictions/{prediction_id(at)}").json()
    assert record["inputs"]["SK"] is None and record["inputs"]["TS"] is None


def test_missing_required_value_is_flagged_under_its_field(live_server, open_page) -> None:
    at = open_page(live_server.url, "predict")
    fill_form(at, {k: v for k, v in FORM.items() if k != "Age"})
    submit(at)
    assert "Enter a value: this measurement is required." in texts(at, "error")
    assert not metric(at, "Sepsis risk")  # nothing was sent


def test_api_field_errors_are_shown_under_the_field(live_server, open_page, monkeypatch) -> None:
    # The widgets enforce /v1/features' ranges, so a server with narrower rules (version skew)
    # is the only way to get a 422 from this form; stand one in for the reply.
    from sepsis_api.ui.client import APIClient, APIError

    def refuse(self, body, model=None, explain=True):
        raise APIError(
            422,
            "invalid request: PL: must be between 0 and 100",
            [
                {
                    "field": "PL",
                    "row": None,
                    "value": 148,
                    "expected": "a number from 0 to 100",
                    "message": "PL: must be between 0 and 100",
                }
            ],
        )

    monkeypatch.setattr(APIClient, "predict", refuse)
    at = fill_form(open_page(live_server.url, "predict"), FORM)
    submit(at)
    errors = texts(at, "error")
    assert "PL: must be between 0 and 100 (expected a number from 0 to 100)" in errors
    assert any("could not do this (422)" in e and "Blood work result 1 (PL)" in e for e in errors)


def test_all_models_side_by_side(live_server, open_page) -> None:
    at = open_page(live_server.url, "predict")
    at.button(key="example").click().run()  # the example patient fills every field
    at.selectbox(key="model_choice").set_value("all").run()
    submit(at)
    risks = metric(at, "Sepsis risk")
    assert len(risks) == 3 and all(PERCENT.match(r) for r in risks)
    comparison = at.dataframe[0].value
    assert comparison["Model"].tolist() == [
        "Logistic regression",
        "Random forest",
        "Gradient boosting",
    ]
    assert len(charts(at)) == 3


# -- Batch --------------------------------------------------------------------------------------


def test_batch_scores_the_shipped_test_csv(live_server, open_page, test_csv: Path) -> None:
    raw = test_csv.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf") and b"\r" in raw  # BOM and CR endings, as shipped
    at = open_page(live_server.url, "batch")
    at.file_uploader(key="batch_file").set_value((test_csv.name, raw, "text/csv")).run()
    assert any("169 patient row(s)" in c for c in texts(at, "caption"))
    assert at.dataframe[0].value.shape[0] == 10  # the preview
    at.button(key="batch_score").click().run()
    assert not at.exception and not at.error
    assert metric(at, "Patients scored") == ["169"]
    counts = sum(int(metric(at, w)[0]) for w in ("High risk", "Moderate risk", "Low risk"))
    assert counts == 169
    results = at.dataframe[1].value
    assert len(results) == 169
    assert results["Risk"].is_monotonic_decreasing  # highest risk first
    assert set(results["Band"]) <= {"High risk", "Moderate risk", "Low risk"}
    assert results["Patient ID"].str.startswith("ICU").all()
    assert at.get("download_button")


def test_batch_accepts_parquet(live_server, open_page, test_csv: Path) -> None:
    text = test_csv.read_bytes().decode("utf-8-sig").replace("\r\n", "\n").replace("\r", "\n")
    buf = io.BytesIO()
    pd.read_csv(io.StringIO(text)).head(20).to_parquet(buf, index=False)
    at = open_page(live_server.url, "batch")
    at.file_uploader(key="batch_file").set_value(
        ("ward.parquet", buf.getvalue(), "application/octet-stream")
    ).run()
    at.button(key="batch_score").click().run()
    assert metric(at, "Patients scored") == ["20"]


def test_batch_lists_invalid_rows_with_their_reasons(live_server, open_page) -> None:
    header = "ID,PRG,PL,PR,SK,TS,M11,BD2,Age,Insurance\n"
    rows = [
        "B1,6,148,72,35,0,33.6,0.627,50,0",
        "B2,1,85,66,29,0,26.6,0.351,500,0",
        "B3,8,abc,64,0,0,23.3,0.672,32,1",
    ]
    at = open_page(live_server.url, "batch")
    at.file_uploader(key="batch_file").set_value(
        ("ward.csv", (header + "\n".join(rows) + "\n").encode(), "text/csv")
    ).run()
    at.button(key="batch_score").click().run()
    assert any("Nothing was scored" in e for e in texts(at, "error"))
    problems = at.dataframe[-1].value.set_index("Row")
    assert problems.loc[2, "Column"] == "Age" and problems.loc[2, "Value"] == "500"
    assert problems.loc[3, "Column"] == "PL"
    assert not metric(at, "Patients scored")


# -- History ------------------------------------------------------------------------------------


def test_history_pages_filters_and_opens_a_record(live_server, open_page) -> None:
    pid = f"UI-HIST-{uuid.uuid4().hex[:8]}"
    at = fill_form(open_page(live_server.url, "predict"), FORM, patient_id=pid)
    for _ in range(2):  # two estimates through the UI ...
        submit(at)
    with httpx.Client(base_url=live_server.url, timeout=30) as http:  # ... and ten more
        for i in range(10):
            assert http.post("/v1/predict", json=patient(ID=pid, PL=90 + i)).status_code == 200

    at.switch_page("pages/history.py").run()
    at.text_input(key="hist_patient").input(pid).run()
    at.selectbox(key="hist_size").set_value(10).run()
    assert any(m.startswith("**Page 1** · estimates 1–10") for m in texts(at, "markdown"))
    page1 = at.dataframe[0].value
    assert len(page1) == 10 and set(page1["Patient ID"]) == {pid}
    at.button(key="hist_older").click().run()
    assert any("estimates 11–12 (the oldest)" in m for m in texts(at, "markdown"))
    page2 = at.dataframe[0].value
    assert len(page2) == 2 and not set(page2["Prediction ID"]) & set(page1["Prediction ID"])
    assert at.button(key="hist_older").disabled
    at.button(key="hist_newer").click().run()
    assert at.dataframe[0].value["Prediction ID"].tolist() == page1["Prediction ID"].tolist()

    at.selectbox(key="hist_label").set_value(
        "Negative" if page1["Label"][0] == "Positive" else "Positive"
    ).run()
    filtered = at.dataframe[0].value if at.dataframe else pd.DataFrame({"Label": []})
    assert page1["Label"][0] not in set(filtered["Label"])
    at.selectbox(key="hist_label").set_value(None).run()

    # Select the newest row: its inputs, outputs and reasons appear.
    at.session_state["hist_table"] = {"selection": {"rows": [0], "columns": [], "cells": []}}
    at.run()
    assert PERCENT.match(metric(at, "Sepsis risk")[0])
    assert metric(at, "Label") == [page1["Label"][0]]
    inputs = at.dataframe[1].value.set_index("Code")
    assert inputs.loc["PL", "Value"] == "99 mu U/ml"
    assert inputs.loc["TS", "Value"] == "not measured (0)"  # sent as 0, which means that


def test_history_finds_a_record_by_id(live_server, open_page) -> None:
    reply = httpx.post(
        live_server.url + "/v1/predict?explain=true", json={**PATIENT, "ID": "UI-LOOKUP"}
    ).json()
    pid = reply["predictions"][0]["prediction_id"]
    at = open_page(live_server.url, "history")
    at.text_input(key="hist_lookup").input(pid).run()
    assert any(pid in m for m in texts(at, "markdown"))
    assert len(charts(at)) == 1  # reasons were recorded with explain=true
    at.text_input(key="hist_lookup").input("no-such-id").run()
    assert any("no prediction with id" in e for e in texts(at, "error"))


def test_history_opens_the_record_a_link_names(live_server, open_page) -> None:
    """A CDS Hooks card links to /history?prediction_id=..."""
    reply = httpx.post(live_server.url + "/v1/predict", json={**PATIENT, "ID": "UI-LINK"})
    pid = reply.json()["predictions"][0]["prediction_id"]
    at = open_page(live_server.url, "history")
    at.query_params["prediction_id"] = pid
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert any(pid in m for m in texts(at, "markdown"))


def test_history_records_an_outcome_and_shows_it(live_server, open_page) -> None:
    reply = httpx.post(live_server.url + "/v1/predict", json={**PATIENT, "ID": "UI-OUTCOME"})
    pid = reply.json()["predictions"][0]["prediction_id"]
    at = open_page(live_server.url, "history")
    at.text_input(key="hist_lookup").input(pid).run()
    assert "No outcome recorded yet for this estimate." in texts(at, "caption")
    at.button(key=f"out_save_{pid}").click().run()  # nothing chosen yet
    assert any("Choose Positive or Negative" in w for w in texts(at, "warning"))

    at.radio(key=f"out_choice_{pid}").set_value("Positive")
    at.text_input(key=f"out_note_{pid}").input("blood culture positive")
    at.button(key=f"out_save_{pid}").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("Outcome saved: **Positive**" in s for s in texts(at, "success"))
    assert any(m.startswith("**Outcome: Positive**") for m in texts(at, "markdown"))
    assert "Note: blood culture positive" in texts(at, "caption")
    stored = httpx.get(f"{live_server.url}/v1/predictions/{pid}").json()["outcome"]
    assert stored["outcome"] == "Positive" and stored["note"] == "blood culture positive"
    assert stored["recorded_by"] == "anonymous"

    # A new outcome supersedes it; the API keeps both revisions.
    at.radio(key=f"out_choice_{pid}").set_value("Negative")
    at.button(key=f"out_save_{pid}").click().run()
    assert any(
        m.startswith("**Outcome: Negative**") and "revision 2 of 2" in m
        for m in texts(at, "markdown")
    )
    kept = httpx.get(f"{live_server.url}/v1/predictions/{pid}/outcomes").json()["revisions"]
    assert [r["outcome"] for r in kept] == ["Positive", "Negative"]


# -- Model --------------------------------------------------------------------------------------


def test_model_page_shows_card_metrics_plots_and_limitations(live_server, open_page) -> None:
    at = open_page(live_server.url, "model")
    perf, op, bands = (d.value for d in at.dataframe[:3])
    assert perf["Model"].tolist()[0] == "Logistic regression (default)" and len(perf) == 3
    assert re.fullmatch(r"0\.\d{3} \(0\.\d{3}–0\.\d{3}\)", perf["ROC AUC"][0])
    assert re.fullmatch(r"\d+\.\d% \(\d+\.\d–\d+\.\d%\)", op["Sensitivity"][0])
    assert bands["High"][0].startswith("from ") and bands["High"][0].endswith("%")
    assert len(at.image) >= 6  # ROC, PR, calibration and one confusion matrix per model
    assert not any("could not be loaded" in c for c in texts(at, "caption"))
    assert any("not a validated clinical device" in m for m in texts(at, "markdown"))


def test_a_picked_date_range_is_whole_utc_days_up_to_the_last_day_allowed():
    from datetime import date

    from sepsis_api.ui.common import day_bounds

    assert day_bounds(()) == (None, None)
    assert day_bounds((date(2026, 12, 1), date(2026, 12, 2))) == (
        "2026-12-01T00:00:00+00:00",
        "2026-12-03T00:00:00+00:00",
    )
    assert day_bounds((date(9999, 12, 30), date.max)) == ("9999-12-30T00:00:00+00:00", None)
