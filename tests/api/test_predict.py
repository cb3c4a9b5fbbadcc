"""The predict, history, models, features and service routes, as an integrator uses them."""

from __future__ import annotations

import gc
import io
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from factories import PATIENT, patient, patients
from sepsis_api.schema import FEATURES

FEATURE_CODES = [f.code for f in FEATURES]


def _one(client, body, **params):
    r = client.post("/v1/predict", json=body, params=params)
    assert r.status_code == 200, r.text
    return r.json()


def test_predict_returns_a_calibrated_estimate_with_threshold_and_band(client, shipped):
    reply = _one(client, PATIENT)
    assert reply["patient_id"] == "ICU200010"
    [p] = reply["predictions"]
    card = shipped.model_card(shipped.default_model)
    assert p["model"] == shipped.default_model and p["model_version"] == shipped.version
    assert p["threshold"] == card["threshold"]
    expected = shipped.load_sklearn(p["model"]).predict_proba(
        np.array([[PATIENT[f.code] for f in FEATURES]], dtype=float)
    )[0, 1]
    assert p["probability"] == pytest.approx(expected, abs=1e-9)
    assert p["label"] == ("Positive" if p["probability"] >= p["threshold"] else "Negative")
    bands = card["risk_bands"]
    band = (
        "high"
        if p["probability"] >= bands["high_from"]
        else "moderate"
        if p["probability"] >= bands["moderate_from"]
        else "low"
    )
    assert p["risk_band"] == band
    assert p["contributions"] is None


def test_codes_and_descriptive_names_give_the_same_estimate(client):
    by_name = {f.name: PATIENT[f.code] for f in FEATURES}
    a = _one(client, PATIENT)["predictions"][0]["probability"]
    b = _one(client, by_name)["predictions"][0]["probability"]
    assert a == b


@pytest.mark.parametrize("missing", [None, 0, ...])
def test_not_measured_as_null_zero_or_absent_is_the_same(client, missing):
    reference = _one(client, patient(SK=None, TS=None))["predictions"][0]["probability"]
    got = _one(client, patient(SK=missing, TS=missing))["predictions"][0]["probability"]
    assert got == reference


def test_model_all_returns_every_model_side_by_side(client, shipped):
    reply = _one(client, PATIENT, model="all")
    assert [p["model"] for p in reply["predictions"]] == shipped.model_names
    assert len({p["prediction_id"] for p in reply["predictions"]}) == 3


def test_model_by_name_and_by_version(client, shipped):
    assert _one(client, PATIENT, model="random_forest")["predictions"][0]["model"] == (
        "random_forest"
    )
    by_version = _one(client, PATIENT, model=shipped.version)["predictions"][0]
    assert by_version["model"] == shipped.default_model


def test_explain_gives_sorted_contributions_with_the_patients_values(client, shipped):
    [p] = _one(client, patient(SK=None), explain="true")["predictions"]
    contributions = p["contributions"]
    assert [c["feature"] for c in contributions] != []
    assert {c["feature"] for c in contributions} == {f.code for f in FEATURES}
    sizes = [abs(c["contribution"]) for c in contributions]
    assert sizes == sorted(sizes, reverse=True)
    by_code = {c["feature"]: c for c in contributions}
    assert by_code["PL"]["value"] == 148 and by_code["PL"]["name"] == "blood_work_result_1"
    assert by_code["SK"]["value"] is None and by_code["SK"]["contribution"] == 0
    assert by_code["PL"]["contribution"] > 0  # glucose 148 is above the median: raises risk
    # For the logistic regression the contribution is exactly coefficient x scaled distance
    # from the median.
    model = shipped.load_sklearn(shipped.default_model)
    pipe = (
        model.calibrated_classifiers_[0].estimator
        if hasattr(model, "calibrated_classifiers_")
        else model
    )
    j = [f.code for f in FEATURES].index("PL")
    coef = pipe.named_steps["model"].coef_[0][j] / pipe.named_steps["scale"].scale_[j]
    median = pipe.named_steps["impute"].statistics_[j]
    assert by_code["PL"]["contribution"] == pytest.approx(coef * (148 - median), rel=1e-6)


def test_every_estimate_is_in_the_history_with_inputs_and_outputs(client):
    reply = _one(client, patient(SK=None), explain="true")
    [p] = reply["predictions"]
    r = client.get(f"/v1/predictions/{p['prediction_id']}")
    assert r.status_code == 200
    rec = r.json()
    assert rec["patient_id"] == "ICU200010" and rec["source"] == "predict"
    assert rec["probability"] == p["probability"] and rec["label"] == p["label"]
    assert rec["risk_band"] == p["risk_band"] and rec["model_version"] == p["model_version"]
    assert rec["inputs"]["PL"] == 148 and rec["inputs"]["SK"] is None
    assert rec["contributions"] == p["contributions"]
    assert rec["caller"] == "anonymous"
    assert datetime.fromisoformat(rec["created_at"]).tzinfo is not None


def test_batch_json_scores_in_order_and_records_one_row_each(client):
    body = {"patients": patients(25)}
    r = client.post("/v1/predict/batch", json=body)
    assert r.status_code == 200, r.text
    reply = r.json()
    assert reply["count"] == 25
    assert [x["index"] for x in reply["results"]] == list(range(25))
    assert [x["patient_id"] for x in reply["results"]] == [p["ID"] for p in body["patients"]]
    singles = [_one(client, p)["predictions"][0]["probability"] for p in body["patients"][:3]]
    # the same numbers as one-by-one scoring (up to the last bit of a vectorised dot product)
    assert [x["probability"] for x in reply["results"][:3]] == pytest.approx(singles, abs=1e-12)
    history = client.get("/v1/predictions", params={"limit": 500}).json()["items"]
    assert sum(1 for h in history if h["source"] == "batch") == 25


def test_batch_records_hold_each_patients_inputs_and_outputs(client):
    sent = [patient(ID="N1", SK=None), patient(ID="N2", PL=120, M11=41.5)]
    reply = client.post("/v1/predict/batch", json={"patients": sent}).json()
    for body, result in zip(sent, reply["results"], strict=True):
        rec = client.get(f"/v1/predictions/{result['prediction_id']}").json()
        assert rec["patient_id"] == body["ID"] and rec["source"] == "batch"
        assert rec["caller"] == "anonymous" and rec["contributions"] is None
        assert rec["model"] == reply["model"]
        assert rec["model_version"] == reply["model_version"]
        assert rec["threshold"] == reply["threshold"]
        for key in ("probability", "label", "risk_band"):
            assert rec[key] == result[key]
        assert rec["inputs"] == {k: body.get(k) for k in FEATURE_CODES}
        assert datetime.fromisoformat(rec["created_at"]).tzinfo is not None


def test_a_batch_spanning_several_insert_statements_is_recorded_whole(client):
    audit = client.app.state.service.audit
    n = audit.insert.rows_per_statement + 3
    r = client.post("/v1/predict/batch", json={"patients": patients(n)})
    assert r.status_code == 200 and r.json()["count"] == n
    with audit.engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM predictions").scalar() == n


def test_batch_csv_body_upload_and_csv_reply(client, test_csv):
    data = test_csv.read_bytes()  # BOM and CR line endings, as shipped
    as_body = client.post(
        "/v1/predict/batch", content=data, headers={"content-type": "text/csv"}
    ).json()
    assert as_body["count"] == 169
    upload = client.post(
        "/v1/predict/batch",
        files={"file": ("ward.csv", data, "text/csv")},
        headers={"accept": "text/csv"},
    )
    assert upload.status_code == 200 and upload.headers["content-type"].startswith("text/csv")
    frame = pd.read_csv(io.StringIO(upload.text))
    assert list(frame.columns) == [
        "index",
        "ID",
        "prediction_id",
        "probability",
        "label",
        "risk_band",
        "model",
        "model_version",
    ]
    assert len(frame) == 169
    assert list(frame["ID"]) == [x["patient_id"] for x in as_body["results"]]
    np.testing.assert_allclose(
        frame["probability"], [x["probability"] for x in as_body["results"]], atol=1e-6
    )


def test_history_pages_newest_first_without_gaps_or_repeats(client):
    ids = [_one(client, patient(ID=f"H{i}"))["predictions"][0]["prediction_id"] for i in range(7)]
    seen, cursor = [], None
    while True:
        params = {"limit": 3} | ({"cursor": cursor} if cursor else {})
        page = client.get("/v1/predictions", params=params).json()
        seen += [item["prediction_id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ids[::-1]


def test_history_filters(client, shipped):
    _one(client, patient(ID="F1", PL=190, M11=45))  # high risk
    _one(client, patient(ID="F2", PL=80, M11=22, Age=22, PRG=0))  # low risk
    _one(client, patient(ID="F1", PL=80, M11=22, Age=22, PRG=0), model="random_forest")

    def items(**params):
        return client.get("/v1/predictions", params=params).json()["items"]

    assert {i["patient_id"] for i in items(patient_id="F1")} == {"F1"}
    assert len(items(patient_id="F1")) == 2
    assert {i["label"] for i in items(label="Positive")} == {"Positive"}
    assert {i["label"] for i in items(label="Negative")} == {"Negative"}
    assert [i["model"] for i in items(model="random_forest")] == ["random_forest"]
    assert len(items(model_version=shipped.version)) == 3
    assert items(model_version="other") == []
    now = datetime.now(UTC)
    assert len(items(since=(now - timedelta(minutes=5)).isoformat())) == 3
    assert items(since=(now + timedelta(minutes=5)).isoformat()) == []
    assert len(items(until=(now + timedelta(minutes=5)).isoformat())) == 3
    assert items(until=(now - timedelta(minutes=5)).isoformat()) == []


def test_models_list_and_detail(client, shipped):
    listing = client.get("/v1/models").json()
    assert listing["version"] == shipped.version
    assert listing["default_model"] == shipped.default_model
    assert [m["name"] for m in listing["models"]] == shipped.model_names
    rf = next(m for m in listing["models"] if m["name"] == "random_forest")
    assert rf["metrics"]["roc_auc"]["low"] <= rf["metrics"]["roc_auc"]["mean"]
    assert rf["risk_bands"]["moderate_from"] <= rf["threshold"] <= rf["risk_bands"]["high_from"]
    detail = client.get("/v1/models/random_forest").json()
    assert detail["name"] == "random_forest" and detail["card"]["version"] == shipped.version
    by_version = client.get(f"/v1/models/{shipped.version}").json()
    assert by_version["name"] == shipped.default_model and by_version["default"] is True


def test_features_are_the_schema(client):
    reply = client.get("/v1/features").json()
    assert [f["code"] for f in reply["features"]] == [f.code for f in FEATURES]
    age = next(f for f in reply["features"] if f["code"] == "Age")
    assert (age["minimum"], age["maximum"], age["unit"]) == (0, 120, "years")
    assert {f["code"] for f in reply["features"] if f["integer"]} == {"PRG", "Age", "Insurance"}
    assert "Pima" in reply["provenance"]
    assert "not a validated clinical device" in reply["disclaimer"].lower()


def test_root_health_and_readiness(client, shipped):
    root = client.get("/").json()
    assert root["model_version"] == shipped.version and root["links"]["docs"] == "/docs"
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["model_version"] == shipped.version


def test_metrics_count_requests_predictions_bands_and_batches(client):
    _one(client, PATIENT)
    client.post("/v1/predict/batch", json={"patients": patients(4)})
    client.post("/v1/predict", json={"Age": 1000})
    text = client.get("/metrics").text
    assert 'sepsis_api_requests_total{method="POST",route="/v1/predict",status="200"} 1.0' in text
    assert 'route="/v1/predict",status="422"} 1.0' in text
    assert "sepsis_api_predictions_total{" in text and "sepsis_api_risk_band_total{" in text
    assert "sepsis_api_batch_size_count 1.0" in text
    assert "sepsis_api_request_duration_seconds_bucket" in text
    assert "sepsis_api_model_load_seconds" in text


def test_openapi_documents_every_route_with_examples(client):
    spec = client.get("/openapi.json").json()
    for path in (
        "/v1/predict",
        "/v1/predict/batch",
        "/v1/predictions",
        "/v1/predictions/{prediction_id}",
        "/v1/models",
        "/v1/features",
        "/predict",
        "/healthz",
        "/readyz",
    ):
        assert path in spec["paths"], path
    batch_body = spec["paths"]["/v1/predict/batch"]["post"]["requestBody"]["content"]
    assert {"application/json", "text/csv", "multipart/form-data"} <= set(batch_body)
    assert spec["components"]["schemas"]["Patient"]["examples"]


def test_startup_objects_are_kept_out_of_full_garbage_collections(make_client):
    # Otherwise a full collection walks every loaded library object and stalls all requests.
    gc.unfreeze()
    make_client()
    assert gc.get_freeze_count() > 10_000
