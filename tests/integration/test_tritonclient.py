"""Open Inference Protocol V2 with NVIDIA's own client (tritonclient[http], from PyPI) against
a real `sepsis-api serve` process on loopback: health, metadata, and inference of one and many
patients in both input forms (JSON and binary tensors), equal to /v1/predict's estimates."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import httpx
import numpy as np
import pytest
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

from factories import PATIENT, patients
from sepsis_api.schema import FEATURE_CODES


@pytest.fixture(scope="module")
def client(live_server):
    c = triton.InferenceServerClient(urlsplit(live_server.url).netloc)
    yield c
    c.close()


def v1_probabilities(url, ps):
    with httpx.Client(base_url=url, timeout=30) as http:
        return [
            http.post("/v1/predict", json=p).json()["predictions"][0]["probability"] for p in ps
        ]


def matrix(ps, dtype=np.float64):
    return np.array([[p[c] for c in FEATURE_CODES] for p in ps], dtype=dtype)


def test_health_and_metadata(client):
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready("default")
    meta = client.get_model_metadata("default")
    assert meta["inputs"][0]["shape"] == [-1, 9]
    assert meta["parameters"]["feature_order"] == list(FEATURE_CODES)
    assert client.get_server_metadata()["name"] == "sepsis-api"
    assert client.is_model_ready("random_forest", model_version=meta["versions"][0])


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_one_and_many_patients_as_one_tensor(client, live_server, binary):
    for ps in ([PATIENT], patients(40, prefix="T")):
        features = triton.InferInput("features", [len(ps), 9], "FP64")
        features.set_data_from_numpy(matrix(ps), binary_data=binary)
        result = client.infer("default", [features])  # every output, binary requested
        expected = v1_probabilities(live_server.url, ps)
        assert result.as_numpy("probability").tolist() == expected
        proba = result.as_numpy("predict_proba")
        assert proba.shape == (len(ps), 2) and proba[:, 1].tolist() == expected
        assert set(result.as_numpy("risk_band").tolist()) <= {"low", "moderate", "high"}
        assert len(set(result.as_numpy("prediction_id").tolist())) == len(ps)


def test_fp32_tensor_and_requested_outputs(client, live_server):
    ps = patients(5, prefix="F")
    x = matrix(ps, np.float32)
    features = triton.InferInput("features", list(x.shape), "FP32")
    features.set_data_from_numpy(x)
    wanted = [triton.InferRequestedOutput("probability", binary_data=False)]
    result = client.infer("default", [features], outputs=wanted)
    # the server scores the float32 values it was sent, as /v1 does for the same numbers
    rounded = [{c: float(v) for c, v in zip(FEATURE_CODES, row, strict=True)} for row in x]
    assert result.as_numpy("probability").tolist() == v1_probabilities(live_server.url, rounded)
    assert result.as_numpy("predict") is None  # not requested


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_one_input_per_feature_pandas_form(client, live_server, binary):
    ps = patients(7, prefix="C")
    inputs = []
    for code in FEATURE_CODES:
        column = triton.InferInput(code, [len(ps)], "FP64")
        column.set_data_from_numpy(np.array([p[code] for p in ps], dtype=np.float64), binary)
        inputs.append(column)
    result = client.infer("default", inputs, parameters={"content_type": "pd"})
    assert result.as_numpy("probability").tolist() == v1_probabilities(live_server.url, ps)


def test_errors_reach_the_client_with_the_servers_words(client):
    features = triton.InferInput("features", [1, 9], "FP64")
    features.set_data_from_numpy(matrix([{**PATIENT, "PL": 700}]))
    with pytest.raises(
        InferenceServerException, match=re.escape("PL (column 1): value 700: out of range")
    ):
        client.infer("default", [features])
    with pytest.raises(InferenceServerException, match="unknown model 'nope'"):
        client.infer("nope", [features])


def test_access_log_names_each_protocol_route(live_server):
    row = [PATIENT[c] for c in FEATURE_CODES]
    v2 = {"inputs": [{"name": "features", "datatype": "FP64", "shape": [1, 9], "data": row}]}
    with httpx.Client(base_url=live_server.url, timeout=30) as http:
        a = http.post("/v2/models/default/infer", json=v2, headers={"X-Request-ID": "proto-v2"})
        b = http.post(
            "/invocations",
            json={"dataframe_records": [PATIENT]},
            headers={"X-Request-ID": "proto-mlflow"},
        )
    assert a.status_code == b.status_code == 200
    lines = live_server.wait_for_access("proto-v2", "proto-mlflow")
    assert lines["proto-v2"]["route"] == "/v2/models/{model}/infer"
    assert lines["proto-mlflow"]["route"] == "/invocations"
    assert lines["proto-v2"]["model_version"] is not None
    assert lines["proto-v2"]["model_version"] == lines["proto-mlflow"]["model_version"]


def test_with_keys_the_client_needs_one_and_the_probes_stay_open(tmp_path):
    from server import ServerProcess

    key = "t" * 24
    with ServerProcess(tmp_path, env={"SEPSIS_API_KEYS": f"triton:{key}"}) as srv:
        c = triton.InferenceServerClient(urlsplit(srv.url).netloc)
        try:
            assert c.is_server_live() and c.is_server_ready()  # probes need no key
            features = triton.InferInput("features", [1, 9], "FP64")
            features.set_data_from_numpy(matrix([PATIENT]))
            with pytest.raises(InferenceServerException, match="API key"):
                c.infer("default", [features])
            result = c.infer("default", [features], headers={"Authorization": f"Bearer {key}"})
            pid = result.as_numpy("prediction_id")[0]
        finally:
            c.close()
        record = httpx.get(
            f"{srv.url}/v1/predictions/{pid}", headers={"X-API-Key": key}, timeout=30
        ).json()
        assert record["caller"] == "triton" and record["source"] == "v2"
