"""Every kind of bad input is a 4xx that names the field, the value and the rule; nothing is
recorded. Each test ends by checking that the audit history is still empty."""

from __future__ import annotations

import json
from typing import Any

import pytest

from factories import PATIENT, patient, patients
from sepsis_api.schema import FEATURES

JSON = {"content-type": "application/json"}
CSV = {"content-type": "text/csv"}
HEADER = "ID,PRG,PL,PR,SK,TS,M11,BD2,Age,Insurance\n"
ROW = "{id},6,148,72,35,0,33.6,0.627,50,0\n"
ERROR_KEYS = {"field", "value", "expected", "message"}


def rejected(client, r, status: int) -> dict[str, Any]:
    """The reply is the error shape with `status`; the audit log is still empty."""
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert isinstance(body["detail"], str) and body["detail"]
    assert isinstance(body["errors"], list)
    for error in body["errors"]:
        assert error.keys() >= ERROR_KEYS, error
    assert body["request_id"] and body["request_id"] == r.headers["x-request-id"]
    history = client.get("/v1/predictions")
    assert history.status_code == 200
    assert history.json()["items"] == []
    return body


def only_error(body: dict[str, Any]) -> dict[str, Any]:
    assert len(body["errors"]) == 1, body
    return body["errors"][0]


def raw(client, text: str):
    return client.post("/v1/predict", content=text.encode(), headers=JSON)


def csv_batch(client, text: str | bytes):
    data = text.encode() if isinstance(text, str) else text
    return client.post("/v1/predict/batch", content=data, headers=CSV)


# -- POST /v1/predict: values ------------------------------------------------------------------


@pytest.mark.parametrize("value", ["6", True], ids=["string", "boolean"])
def test_wrong_type_is_rejected_naming_field_value_and_rule(client, value):
    body = rejected(client, client.post("/v1/predict", json=patient(PRG=value)), 422)
    error = only_error(body)
    assert error["field"] == "PRG"
    assert error["value"] == value and type(error["value"]) is type(value)
    assert "number" in error["expected"] and "0 to 30" in error["expected"]
    assert "PRG" in error["message"] and "PRG" in body["detail"]


def test_object_for_a_number_is_rejected_naming_the_field_and_rule(client):
    body = rejected(client, client.post("/v1/predict", json=patient(PRG={"mg": 6})), 422)
    error = only_error(body)
    assert error["field"] == "PRG"
    assert "number" in error["expected"] and "0 to 30" in error["expected"]


def test_object_for_a_number_is_echoed_as_the_bad_value(client):
    body = rejected(client, client.post("/v1/predict", json=patient(PRG={"mg": 6})), 422)
    assert only_error(body)["value"] == {"mg": 6}


def test_missing_required_field_is_named_with_its_rule(client):
    body = rejected(client, client.post("/v1/predict", json=patient(Age=...)), 422)
    error = only_error(body)
    assert error["field"] == "Age"
    assert error["value"] is None
    assert "required" in error["expected"] and "0 to 120" in error["expected"]
    assert "Age" in error["message"]


@pytest.mark.parametrize(
    ("field", "value", "rule"),
    [
        ("Age", 500, "0 to 120"),
        ("M11", 900, "0 to 100"),
        ("PR", -1, "0 to 250"),
        ("Insurance", 2, "one of 0, 1"),
    ],
)
def test_out_of_range_value_is_rejected_naming_field_value_and_range(client, field, value, rule):
    body = rejected(client, client.post("/v1/predict", json=patient(**{field: value})), 422)
    error = only_error(body)
    assert error["field"] == field
    assert error["value"] == value
    assert rule in error["expected"]
    assert field in error["message"] and field in body["detail"]


def test_unknown_field_is_rejected_listing_the_known_fields(client):
    body = rejected(client, client.post("/v1/predict", json=patient(Glucose=148)), 422)
    error = only_error(body)
    assert error["field"] == "Glucose"
    assert error["value"] == 148
    for f in FEATURES:
        assert f.code in error["expected"] and f.name in error["expected"]
    assert "ID" in error["expected"]


@pytest.mark.parametrize(
    ("field", "token"),
    [
        ("PL", "NaN"),
        ("PL", "Infinity"),
        ("Age", "-Infinity"),
    ],
)
def test_nan_and_infinity_in_the_json_text_are_rejected(client, field, token):
    text = json.dumps(patient(**{field: 12345})).replace("12345", token)
    assert token in text
    body = rejected(client, raw(client, text), 422)
    error = only_error(body)
    assert error["field"] == field
    assert error["value"] == token
    assert "finite" in error["expected"]


def test_id_longer_than_128_characters_is_rejected(client):
    long_id = "x" * 129
    body = rejected(client, client.post("/v1/predict", json=patient(ID=long_id)), 422)
    error = only_error(body)
    assert error["field"] == "ID"
    assert error["value"] == long_id
    assert "128" in error["expected"]


# -- POST /v1/predict: the body as a whole ---------------------------------------------------


def test_empty_body_is_rejected_as_missing(client):
    body = rejected(client, client.post("/v1/predict", content=b"", headers=JSON), 422)
    error = only_error(body)
    assert "required" in error["expected"]
    assert "body" in error["message"]


def test_invalid_json_is_rejected_as_invalid_json(client):
    body = rejected(client, raw(client, '{"PRG": 6,'), 422)
    error = only_error(body)
    assert error["expected"] == "a valid JSON document"
    assert "JSON" in body["detail"]


def test_invalid_json_error_names_no_field(client):
    error = only_error(rejected(client, raw(client, '{"PRG": 6,'), 422))
    assert error["field"] is None
    assert error["message"].startswith("body")


def test_json_that_is_not_utf8_is_rejected_saying_so(client):
    body = rejected(
        client, client.post("/v1/predict", content=b'\xff{"PRG": 6}', headers=JSON), 400
    )
    assert "UTF-8" in body["detail"]


def test_json_array_where_an_object_is_expected_is_rejected(client):
    body = rejected(client, client.post("/v1/predict", json=[PATIENT]), 422)
    error = only_error(body)
    assert error["field"] is None
    assert error["expected"] == "a JSON object"


def test_non_json_content_type_is_415(client):
    r = client.post(
        "/v1/predict", content=json.dumps(PATIENT).encode(), headers={"content-type": "text/plain"}
    )
    body = rejected(client, r, 415)
    assert "text/plain" in body["detail"] and "application/json" in body["detail"]


def test_oversized_body_is_413_naming_the_limit(make_client):
    client = make_client(max_body_bytes=1000)
    r = client.post("/v1/predict", json=patient(ID="x" * 2000))
    body = rejected(client, r, 413)
    assert "1000 bytes" in body["detail"]


def test_oversized_streamed_body_is_413_naming_the_limit(make_client):
    client = make_client(max_body_bytes=1000)
    data = json.dumps(patient(ID="x" * 2000)).encode()
    r = client.post("/v1/predict", content=iter([data]), headers=JSON)  # chunked, no length
    body = rejected(client, r, 413)
    assert "1000 bytes" in body["detail"]


# -- POST /v1/predict: query parameters ------------------------------------------------------


def test_unknown_model_is_rejected_listing_the_valid_choices(client):
    served = client.get("/v1/models").json()
    body = rejected(client, client.post("/v1/predict", json=PATIENT, params={"model": "nope"}), 422)
    error = only_error(body)
    assert error["field"] == "model"
    assert error["value"] == "nope"
    choices = error["expected"].removeprefix("one of ").split(", ")
    assert set(choices) == {m["name"] for m in served["models"]} | {served["version"], "all"}


def test_explain_that_is_not_a_boolean_is_rejected(client):
    r = client.post("/v1/predict", json=PATIENT, params={"explain": "maybe"})
    error = only_error(rejected(client, r, 422))
    assert error["field"].endswith("explain")
    assert error["value"] == "maybe"
    assert "boolean" in error["expected"]


@pytest.mark.parametrize(
    ("method", "path", "param", "value"),
    [
        ("POST", "/v1/predict", "explain", "maybe"),
        ("GET", "/v1/predictions", "limit", "0"),
        ("GET", "/v1/predictions", "label", "Maybe"),
    ],
)
def test_query_parameter_errors_name_the_parameter_itself(client, method, path, param, value):
    r = client.request(
        method, path, json=PATIENT if method == "POST" else None, params={param: value}
    )
    assert only_error(rejected(client, r, 422))["field"] == param


# -- POST /v1/predict/batch ------------------------------------------------------------------


def test_batch_with_one_invalid_patient_scores_nothing_and_names_row_and_field(client):
    batch = patients(4)
    batch[2]["Age"] = 500
    body = rejected(client, client.post("/v1/predict/batch", json={"patients": batch}), 422)
    error = only_error(body)
    assert error["row"] == 2 and error["field"] == "Age" and error["value"] == 500
    assert "0 to 120" in error["expected"]
    assert "patients[2].Age" in error["message"]


def test_batch_lists_every_invalid_patient(client):
    batch = patients(5)
    batch[1]["PR"] = -1
    batch[3]["Insurance"] = 2
    body = rejected(client, client.post("/v1/predict/batch", json={"patients": batch}), 422)
    assert [(e["row"], e["field"]) for e in body["errors"]] == [(1, "PR"), (3, "Insurance")]


def test_batch_invalid_in_a_late_chunk_rolls_back_the_chunks_already_inserted(client):
    # Large batches are validated, scored and inserted a chunk at a time; an invalid patient
    # far into the batch must still leave nothing behind and be listed with the early ones.
    from sepsis_api.api.service import BATCH_CHUNK_ROWS

    batch = patients(3 * BATCH_CHUNK_ROWS)
    late = 2 * BATCH_CHUNK_ROWS + 5  # two chunks are in the database before this one fails
    batch[late]["PL"] = 10_000
    batch[-2]["ID"] = 17
    body = rejected(client, client.post("/v1/predict/batch", json={"patients": batch}), 422)
    assert [(e["row"], e["field"]) for e in body["errors"]] == [
        (late, "PL"),
        (len(batch) - 2, "ID"),
    ]
    assert body["detail"].startswith("invalid batch: 2 problem(s)")


def test_batch_envelope_variants_are_worded_by_the_schema(client):
    for body, fields in (
        ({"patients": patients(2), "extra": 1}, {"extra"}),
        ({"patient": patients(2)}, {"patients", "patient"}),
        ([patient()], {None}),
    ):
        errors = rejected(client, client.post("/v1/predict/batch", json=body), 422)["errors"]
        assert {e["field"] for e in errors} == fields, errors


def test_batch_with_an_empty_patient_list_is_rejected(client):
    body = rejected(client, client.post("/v1/predict/batch", json={"patients": []}), 422)
    error = only_error(body)
    assert error["field"] == "patients"
    assert "at least one" in error["expected"]


def test_batch_over_the_row_limit_is_413_naming_the_limit(make_client):
    client = make_client(max_batch_rows=3)
    r = client.post("/v1/predict/batch", json={"patients": patients(4)})
    body = rejected(client, r, 413)
    assert "limit of 3" in body["detail"]


def test_csv_batch_over_the_row_limit_is_413_naming_the_limit(make_client):
    client = make_client(max_batch_rows=3)
    text = HEADER + "".join(ROW.format(id=f"P{i}") for i in range(4))
    body = rejected(client, csv_batch(client, text), 413)
    assert "limit of 3" in body["detail"]


def test_csv_text_in_a_numeric_column_names_row_column_and_value(client):
    text = HEADER + ROW.format(id="P1") + "P2,6,high,72,35,0,33.6,0.627,50,0\n"
    body = rejected(client, csv_batch(client, text), 422)
    error = only_error(body)
    assert error["row"] == 2 and error["field"] == "PL" and error["value"] == "high"
    assert "0 to 600" in error["expected"]
    for part in ("row 2", "PL", "'high'"):
        assert part in error["message"] and part in body["detail"]


def test_csv_missing_a_column_is_rejected_naming_it(client):
    text = "ID,PRG,PL,PR,SK,TS,M11,BD2,Insurance\nP1,6,148,72,35,0,33.6,0.627,0\n"
    body = rejected(client, csv_batch(client, text), 422)
    assert "missing column(s) Age" in body["detail"]
    assert "Age" in only_error(body)["expected"]


def test_csv_missing_a_column_names_it_as_the_field(client):
    text = "ID,PRG,PL,PR,SK,TS,M11,BD2,Insurance\nP1,6,148,72,35,0,33.6,0.627,0\n"
    assert only_error(rejected(client, csv_batch(client, text), 422))["field"] == "Age"


def test_csv_with_only_a_header_is_rejected(client):
    body = rejected(client, csv_batch(client, HEADER), 422)
    assert "no data rows" in body["detail"]


def test_csv_that_is_not_utf8_is_rejected(client):
    data = (HEADER + ROW.format(id="Zoë")).encode("latin-1")
    body = rejected(client, csv_batch(client, data), 422)
    assert "UTF-8" in body["detail"]


def test_multipart_without_a_file_field_is_rejected_naming_file(client):
    r = client.post(
        "/v1/predict/batch", files={"upload": ("ward.csv", (HEADER + ROW.format(id="P1")).encode())}
    )
    body = rejected(client, r, 422)
    error = only_error(body)
    assert error["field"] == "file"
    assert "'file'" in body["detail"]


def test_batch_with_an_unsupported_content_type_is_415(client):
    r = client.post(
        "/v1/predict/batch", content=b"<patients/>", headers={"content-type": "application/xml"}
    )
    body = rejected(client, r, 415)
    for accepted in ("application/xml", "application/json", "text/csv", "multipart/form-data"):
        assert accepted in body["detail"]


def test_batch_refuses_model_all(client):
    r = client.post("/v1/predict/batch", params={"model": "all"}, json={"patients": patients(2)})
    error = only_error(rejected(client, r, 422))
    assert error["field"] == "model" and error["value"] == "all"
    assert "logistic_regression" in error["expected"]
    assert "all" not in error["expected"].split(", ")


# -- GET /v1/predictions and /v1/models ------------------------------------------------------


@pytest.mark.parametrize(("limit", "bound"), [("0", "1"), ("100000", "500")])
def test_history_limit_out_of_range_is_rejected(client, limit, bound):
    error = only_error(
        rejected(client, client.get("/v1/predictions", params={"limit": limit}), 422)
    )
    assert error["field"].endswith("limit")
    assert error["value"] == limit
    assert bound in error["expected"]


def test_history_since_without_a_time_zone_is_rejected(client):
    r = client.get("/v1/predictions", params={"since": "2026-01-01T00:00:00"})
    error = only_error(rejected(client, r, 422))
    assert error["field"] == "since"
    assert error["value"] == "2026-01-01T00:00:00"
    assert "zone" in error["expected"]


def test_history_unknown_label_is_rejected_listing_the_labels(client):
    error = only_error(
        rejected(client, client.get("/v1/predictions", params={"label": "Maybe"}), 422)
    )
    assert error["field"].endswith("label")
    assert error["value"] == "Maybe"
    assert "Positive" in error["expected"] and "Negative" in error["expected"]


def test_unknown_prediction_id_is_404_naming_it(client):
    body = rejected(client, client.get("/v1/predictions/does-not-exist"), 404)
    assert "does-not-exist" in body["detail"]


def test_unknown_model_detail_is_404_listing_the_served_models(client):
    body = rejected(client, client.get("/v1/models/nope"), 404)
    assert "'nope'" in body["detail"] and "logistic_regression" in body["detail"]


# -- request ids -------------------------------------------------------------------------------


def test_client_request_id_is_echoed_in_header_and_error_body(client):
    r = client.post("/v1/predict", json=patient(Age=500), headers={"X-Request-ID": "ward-7:42"})
    assert r.headers["x-request-id"] == "ward-7:42"
    assert rejected(client, r, 422)["request_id"] == "ward-7:42"


def test_request_id_is_generated_when_the_client_sends_none(client):
    r = client.post("/v1/predict", json=patient(Age=500))
    generated = r.headers["x-request-id"]
    assert generated
    assert rejected(client, r, 422)["request_id"] == generated
    again = client.post("/v1/predict", json=patient(Age=500)).headers["x-request-id"]
    assert again != generated


def test_unsafe_client_request_id_is_replaced_not_echoed(client):
    r = client.post(
        "/v1/predict", json=patient(Age=500), headers={"X-Request-ID": "<script>alert(1)</script>"}
    )
    assert "<" not in r.headers["x-request-id"]
    assert rejected(client, r, 422)["request_id"] == r.headers["x-request-id"]
