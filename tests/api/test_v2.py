"""Open Inference Protocol V2 (api/protocols/v2.py) through the TestClient: metadata, both
input forms, the binary tensor extension, and every error in the protocol's own shape."""

from __future__ import annotations

import json
import struct

import pytest

from factories import PATIENT, patient
from sepsis_api.schema import FEATURE_CODES

ROW = [PATIENT[c] for c in FEATURE_CODES]


def tensor(rows, datatype="FP64", name="features", shape=None):
    return {
        "name": name,
        "datatype": datatype,
        "shape": shape or [len(rows), len(FEATURE_CODES)],
        "data": rows,
    }


def columns(patients, skip=()):
    return {
        "parameters": {"content_type": "pd"},
        "inputs": [
            {
                "name": c,
                "datatype": "FP64",
                "shape": [len(patients)],
                "data": [p.get(c) for p in patients],
            }
            for c in FEATURE_CODES
            if c not in skip
        ],
    }


def infer(client, body, path="/v2/models/default/infer", **kwargs):
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return client.post(path, content=content, **kwargs)


def output(reply, name):
    return next(o for o in reply.json()["outputs"] if o["name"] == name)


def error(r, status=400):
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error"}, body
    return body["error"]


@pytest.fixture(scope="module")
def v2(tmp_path_factory):
    from fastapi.testclient import TestClient

    from sepsis_api.api.app import create_app
    from sepsis_api.config import Settings

    settings = Settings(_env_file=None, data_dir=tmp_path_factory.mktemp("v2"), max_batch_rows=5)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield client


def test_server_health_and_model_metadata(v2):
    assert v2.get("/v2").json()["name"] == "sepsis-api"
    assert v2.get("/v2/health/live").json() == {"live": True}
    assert v2.get("/v2/health/ready").json() == {"ready": True}
    version = v2.get("/").json()["model_version"]
    meta = v2.get("/v2/models/default").json()
    assert meta["versions"] == [version]
    assert meta["inputs"] == [{"name": "features", "datatype": "FP64", "shape": [-1, 9]}]
    assert meta["parameters"]["feature_order"] == list(FEATURE_CODES)
    assert [o["name"] for o in meta["outputs"]] == [
        "predict_proba",
        "predict",
        "probability",
        "risk_band",
        "prediction_id",
    ]
    assert v2.get(f"/v2/models/random_forest/versions/{version}").json()["parameters"]["model"] == (
        "random_forest"
    )
    assert v2.get(f"/v2/models/default/versions/{version}/ready").json()["ready"] is True


def test_tensor_and_per_feature_forms_give_v1s_estimates(v2):
    many = [patient(PL=90 + 10 * i, SK=None if i == 1 else 35) for i in range(3)]
    v1 = [v2.post("/v1/predict", json=p).json()["predictions"][0]["probability"] for p in many]
    rows = [[p.get(c) for c in FEATURE_CODES] for p in many]
    flat = infer(v2, {"inputs": [tensor([x for r in rows for x in r], shape=[3, 9])]})
    nested = infer(v2, {"inputs": [tensor(rows)]}, headers={"content-type": "application/json"})
    pd_form = infer(v2, columns(many))
    for r in (flat, nested, pd_form):
        assert r.status_code == 200, r.text
        assert output(r, "probability")["data"] == v1
        assert output(r, "predict_proba")["shape"] == [3, 2]
        assert output(r, "predict_proba")["data"][1::2] == v1
        assert output(r, "risk_band")["datatype"] == "BYTES"
        assert len(set(output(r, "prediction_id")["data"])) == 3
    assert r.json()["model_name"] == v2.get("/").json()["default_model"]


def test_outputs_are_honoured_and_the_request_id_echoed(v2):
    r = infer(v2, {"id": "req-7", "inputs": [tensor([ROW])], "outputs": [{"name": "predict"}]})
    assert r.status_code == 200, r.text
    assert r.json()["id"] == "req-7"
    assert [o["name"] for o in r.json()["outputs"]] == ["predict"]
    assert r.json()["outputs"][0]["data"] == [1]  # PATIENT is positive


def test_binary_tensor_extension_is_decoded(v2):
    header = json.dumps(
        {
            "inputs": [
                {
                    "name": "features",
                    "datatype": "FP64",
                    "shape": [1, 9],
                    "parameters": {"binary_data_size": 72},
                }
            ]
        }
    ).encode()
    body = header + struct.pack("<9d", *ROW)
    r = infer(v2, body, headers={"Inference-Header-Content-Length": str(len(header))})
    assert r.status_code == 200, r.text
    expected = v2.post("/v1/predict", json=PATIENT).json()["predictions"][0]["probability"]
    assert output(r, "probability")["data"] == [expected]
    short = infer(v2, body[:-8], headers={"Inference-Header-Content-Length": str(len(header))})
    assert "binary" in error(short)
    no_header = infer(v2, body)
    assert "not valid JSON" in error(no_header)
    text = {
        "inputs": [{**tensor([ROW]), "datatype": "BYTES", "parameters": {"binary_data_size": 9}}]
    }
    assert "BYTES" in error(infer(v2, text))


@pytest.mark.parametrize(
    ("path", "status", "words"),
    [
        ("/v2/models/nope/infer", 404, "unknown model 'nope'"),
        ("/v2/models/default/versions/0000/infer", 404, "no version '0000'"),
        ("/v2/models/nope", 404, "unknown model"),
        ("/v2/models/default/versions/0000/ready", 404, "no version"),
    ],
)
def test_unknown_model_or_version_is_404(v2, path, status, words):
    r = infer(v2, {"inputs": [tensor([ROW])]}, path) if path.endswith("infer") else v2.get(path)
    assert words in error(r, status)


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"inputs": [tensor([ROW[:8]], shape=[1, 8])]}, "shape [1, 8] is not [N, 9]"),
        ({"inputs": [tensor([ROW], shape=[2, 9])]}, "holds 18 values but 'data' has 9"),
        ({"inputs": [tensor([ROW], datatype="INT64")]}, "datatype INT64 is not supported"),
        ({"inputs": [tensor([ROW], datatype="BYTES")]}, "datatype BYTES"),
        (
            {"inputs": [tensor([[*ROW[:1], 700, *ROW[2:]]])]},
            "input 'features': patient 0, PL (column 1): value 700: out of range",
        ),
        (
            {"inputs": [tensor([[None, *ROW[1:]]])]},
            "input 'features': patient 0, PRG (column 0): missing value; PRG is required",
        ),
        ({"inputs": [tensor([["6", *ROW[1:]]])]}, "value '6' at position 0 is not a number"),
        (columns([PATIENT], skip=("Age",)), "missing input(s) Age"),
        (
            columns([patient(Age=500)]),
            "input 'Age': patient 0: value 500: out of range; Age is a number from 0 to 120",
        ),
        (columns([patient(BD2=None)]), "input 'BD2': patient 0: missing value"),
        (
            {"inputs": [tensor([ROW])], "outputs": [{"name": "nope"}]},
            "unknown output 'nope'",
        ),
        ({"inputs": []}, "'inputs' must be a non-empty list"),
        ({"inputs": [tensor([], shape=[0, 9])]}, "no patients"),
        ({"inputs": [tensor([ROW] * 6)]}, "exceed the batch limit of 5"),
        ([1, 2], "must be a JSON object"),
    ],
)
def test_bad_requests_name_the_input_and_the_problem(v2, body, words):
    r = infer(v2, body)
    assert words in error(r, 413 if "limit" in words else 400)


def test_not_measured_is_accepted_where_the_schema_allows_it(v2):
    r = infer(v2, {"inputs": [tensor([[*ROW[:3], None, *ROW[4:]]])]})
    assert r.status_code == 200, r.text


def test_malformed_json_and_no_content_type_are_handled(v2):
    assert "not valid JSON" in error(infer(v2, b'{"inputs": ['))
    r = v2.post(
        "/v2/models/default/infer",
        content=json.dumps({"inputs": [tensor([ROW])]}).encode(),
        headers={"content-type": ""},
    )
    assert r.status_code == 200, r.text


def test_pd_form_takes_patient_ids_and_curl_s_form_content_type(v2):
    body = columns([PATIENT])
    body["inputs"].append({"name": "ID", "datatype": "BYTES", "shape": [1], "data": ["W7"]})
    form = {"content-type": "application/x-www-form-urlencoded"}  # what curl -d sends
    r = infer(v2, body, headers=form)
    assert r.status_code == 200, r.text
    record = v2.get(f"/v1/predictions/{output(r, 'prediction_id')['data'][0]}").json()
    assert record["patient_id"] == "W7" and record["source"] == "v2"


def test_a_large_body_is_read_off_the_loop_with_the_same_result(v2):
    body = json.dumps({"inputs": [tensor([ROW])]}).encode()
    small, large = infer(v2, body), infer(v2, body + b" " * 40_000)  # parsed in a thread
    assert output(small, "probability")["data"] == output(large, "probability")["data"]
    bad = json.dumps({"inputs": [tensor([[None, *ROW[1:]]])]}).encode() + b" " * 40_000
    assert "PRG is required" in error(infer(v2, bad))
