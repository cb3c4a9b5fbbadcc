"""POST /predict answers the case study's own request with the case study's own reply, with the
same estimates as /v1/predict and the same audit trail."""

from __future__ import annotations

import pytest

from factories import CASE_STUDY_BODY, PATIENT
from sepsis_api.schema import FEATURES

CASE_STUDY_MODELS = ("logistic_regression", "random_forest")
REPLY_KEYS = {
    "logistic_regression_prediction",
    "random_forest_prediction",
    "logistic_regression_probability",
    "random_forest_probability",
}


def compat(client, body=CASE_STUDY_BODY):
    r = client.post("/predict", json=body)
    assert r.status_code == 200, r.text
    return r.json()


def test_reply_has_exactly_the_case_study_keys(client):
    assert set(compat(client)) == REPLY_KEYS


@pytest.mark.parametrize("model", CASE_STUDY_MODELS)
def test_prediction_is_positive_or_negative(client, model):
    assert compat(client)[f"{model}_prediction"] in ("Positive", "Negative")


@pytest.mark.parametrize("model", CASE_STUDY_MODELS)
def test_probability_is_one_pair_of_negative_and_positive_that_sums_to_one(client, model):
    probability = compat(client)[f"{model}_probability"]
    assert isinstance(probability, list) and len(probability) == 1
    [pair] = probability
    assert isinstance(pair, list) and len(pair) == 2
    assert all(isinstance(p, float) and 0.0 <= p <= 1.0 for p in pair)
    assert sum(pair) == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("model", CASE_STUDY_MODELS)
def test_probability_equals_v1_predict_for_the_same_patient(client, model):
    [[p_negative, p_positive]] = compat(client)[f"{model}_probability"]
    r = client.post("/v1/predict", json=PATIENT, params={"model": model})
    assert r.status_code == 200, r.text
    [v1] = r.json()["predictions"]
    assert v1["model"] == model
    assert p_positive == pytest.approx(v1["probability"], abs=1e-12)
    assert p_negative == pytest.approx(1.0 - v1["probability"], abs=1e-12)
    assert compat(client)[f"{model}_prediction"] == v1["label"]


@pytest.mark.parametrize("model", CASE_STUDY_MODELS)
def test_label_follows_the_models_threshold(client, model):
    thresholds = {m["name"]: m["threshold"] for m in client.get("/v1/models").json()["models"]}
    reply = compat(client)
    [[_, p_positive]] = reply[f"{model}_probability"]
    expected = "Positive" if p_positive >= thresholds[model] else "Negative"
    assert reply[f"{model}_prediction"] == expected


def test_both_estimates_are_in_the_audit_log_as_compat(client):
    reply = compat(client)
    items = client.get("/v1/predictions").json()["items"]
    assert sorted(i["model"] for i in items) == sorted(CASE_STUDY_MODELS)
    inputs = {f.code: float(PATIENT[f.code]) for f in FEATURES}
    for item in items:
        assert item["source"] == "compat"
        assert item["caller"] == "anonymous"
        assert item["patient_id"] is None
        assert item["inputs"] == inputs
        assert item["label"] == reply[f"{item['model']}_prediction"]
        [[_, p_positive]] = reply[f"{item['model']}_probability"]
        assert item["probability"] == pytest.approx(p_positive, abs=1e-12)
    assert len({i["request_id"] for i in items}) == 1


def _rejected(client, body):
    r = client.post("/predict", json=body)
    assert r.status_code == 422, r.text
    payload = r.json()
    assert client.get("/v1/predictions").json()["items"] == []
    return payload


def test_dataset_codes_are_a_422_naming_the_fields(client):
    by_code = {k: v for k, v in PATIENT.items() if k != "ID"}
    errors = _rejected(client, by_code)["errors"]
    fields = {e["field"] for e in errors}
    assert {f.name for f in FEATURES} <= fields  # each descriptive name is reported missing
    missing = next(e for e in errors if e["field"] == "plasma_glucose")
    assert "required" in missing["expected"]


def test_missing_field_is_a_422_naming_it(client):
    body = {k: v for k, v in CASE_STUDY_BODY.items() if k != "age"}
    payload = _rejected(client, body)
    [error] = payload["errors"]
    assert error["field"] == "age"
    assert "required" in error["expected"] and "0 to 120" in error["expected"]
    assert "age" in payload["detail"]


def test_out_of_range_value_is_a_422_naming_field_value_and_range(client):
    [error] = _rejected(client, {**CASE_STUDY_BODY, "age": 500})["errors"]
    assert error["field"] == "age" and error["value"] == 500
    assert "0 to 120" in error["expected"]
