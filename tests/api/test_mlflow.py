"""MLflow's scoring protocol (api/protocols/mlflow.py): every JSON input format, CSV, the
probes, the model setting and the error shape."""

from __future__ import annotations

import pytest

from factories import PATIENT, patient, patients
from sepsis_api.schema import FEATURE_CODES

MANY = [patient(ID=None, PL=90 + 10 * i, SK=None if i == 1 else 35) for i in range(3)]
CSV_HEADER = ",".join(FEATURE_CODES)


def rows(ps):
    return [[p.get(c) for c in FEATURE_CODES] for p in ps]


def error(r, status=400):
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error_code", "message"}, body
    assert body["error_code"] == "BAD_REQUEST"
    return body["message"]


@pytest.fixture(scope="module")
def ml(tmp_path_factory):
    from fastapi.testclient import TestClient

    from sepsis_api.api.app import create_app
    from sepsis_api.config import Settings

    data = tmp_path_factory.mktemp("mlflow")
    with TestClient(
        create_app(Settings(_env_file=None, data_dir=data, max_batch_rows=10)),
        raise_server_exceptions=False,
    ) as client:
        yield client


@pytest.fixture(scope="module")
def v1(ml):
    return [ml.post("/v1/predict", json=p).json()["predictions"][0]["probability"] for p in MANY]


@pytest.mark.parametrize(
    "body",
    [
        {
            "dataframe_split": {
                "columns": list(FEATURE_CODES),
                "index": [7, 8, 9],
                "data": rows(MANY),
            }
        },
        {"dataframe_split": {"columns": list(FEATURE_CODES), "data": rows(MANY)}},
        {"dataframe_records": MANY},
        {"instances": MANY},
        {"instances": rows(MANY)},
        {"inputs": {c: [p.get(c) for p in MANY] for c in FEATURE_CODES}},
        {"inputs": MANY, "params": {}},
    ],
    ids=[
        "split+index",
        "split",
        "records",
        "instances",
        "instances-rows",
        "inputs-columns",
        "inputs",
    ],
)
def test_every_json_format_gives_v1s_estimates(ml, v1, body):
    r = ml.post("/invocations", json=body)
    assert r.status_code == 200, r.text
    predictions = r.json()["predictions"]
    assert [p["probability"] for p in predictions] == v1
    assert set(predictions[0]) == {"probability", "label", "risk_band", "prediction_id"}


def test_csv_body_gives_v1s_estimates_and_takes_ids(ml, v1):
    lines = [f"ID,{CSV_HEADER}"] + [
        f"M{i}," + ",".join("" if v is None else str(v) for v in row)
        for i, row in enumerate(rows(MANY))
    ]
    r = ml.post(
        "/invocations",
        content="\r".join(lines).encode(),  # CR-only, like the shipped files
        headers={"content-type": "text/csv; charset=utf-8"},
    )
    assert r.status_code == 200, r.text
    predictions = r.json()["predictions"]
    assert [p["probability"] for p in predictions] == v1
    record = ml.get(f"/v1/predictions/{predictions[2]['prediction_id']}").json()
    assert record["patient_id"] == "M2" and record["source"] == "mlflow"


def test_probes_and_version(ml):
    assert ml.get("/ping").status_code == 200
    assert ml.get("/health").status_code == 200
    assert ml.get("/version").text == ml.get("/").json()["version"]


def test_the_model_is_a_setting(make_client):
    client = make_client(mlflow_model="random_forest")
    r = client.post("/invocations", json={"dataframe_records": [PATIENT]})
    assert r.status_code == 200, r.text
    record = client.get(f"/v1/predictions/{r.json()['predictions'][0]['prediction_id']}").json()
    assert record["model"] == "random_forest"
    wrong = make_client(mlflow_model="nope").post("/invocations", json={"inputs": [PATIENT]})
    assert wrong.status_code == 503 and "SEPSIS_API_MLFLOW_MODEL" in wrong.json()["message"]


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"dataframe_records": [patient(PL=700)]}, "patient 0, column PL, value 700: out of range"),
        ({"dataframe_records": [PATIENT, patient(Age="old")]}, "patient 1, column Age, value old"),
        ({"dataframe_records": [patient(PRG=None)]}, "column PRG: missing value"),
        ({"dataframe_records": [patient(SK=...)] * 1 + [{"PRG": 1}]}, "missing column(s)"),
        ({"instances": [PATIENT], "inputs": [PATIENT]}, "exactly one of the keys"),
        ({"data": [PATIENT]}, "exactly one of the keys"),
        ([PATIENT], "exactly one of the keys"),
        ({"dataframe_split": {"columns": ["PRG"], "data": [[1, 2]]}}, "2 values for 1 columns"),
        (
            {"dataframe_split": {"columns": list(FEATURE_CODES), "data": rows(MANY), "index": [1]}},
            "index must be a list of 3 labels",
        ),
        ({"dataframe_split": [1]}, "dataframe_split must be an object"),
        (
            {
                "dataframe_split": {
                    "columns": [*FEATURE_CODES, "PL"],
                    "data": [[*rows([PATIENT])[0], 1]],
                }
            },
            "PL given twice",
        ),
        ({"dataframe_records": [1, 2]}, "must be a list of objects"),
        ({"instances": [[1, 2]]}, "a row holds 9"),
        ({"inputs": []}, "non-empty list"),
        ({"inputs": patients(11)}, "exceed the batch limit of 10"),
    ],
)
def test_bad_json_is_a_bad_request_naming_the_problem(ml, body, words):
    r = ml.post("/invocations", json=body)
    assert words in error(r, 413 if "limit" in words else 400)


def test_malformed_json_bad_csv_and_other_content_types(ml):
    r = ml.post(
        "/invocations", content=b'{"inputs": [', headers={"content-type": "application/json"}
    )
    assert "not valid JSON" in error(r)
    csv = {"content-type": "text/csv"}
    assert "missing column(s) PR" in error(
        ml.post("/invocations", content=b"PRG,PL\n1,2\n", headers=csv)
    )
    bad = f"{CSV_HEADER}\n6,148,72,35,0,33.6,0.627,500,0\n".encode()
    assert "row 1, column Age, value '500'" in error(
        ml.post("/invocations", content=bad, headers=csv)
    )
    assert "no patients" in error(ml.post("/invocations", content=CSV_HEADER.encode(), headers=csv))
    other = ml.post("/invocations", content=b"x", headers={"content-type": "text/plain"})
    assert "unsupported content type" in error(other, 415)


def test_numbers_only_shortcut_and_the_data_frame_route_agree(ml):
    """Exact feature columns take a shortcut without pandas; an extra column takes the data
    frame route. Both give the same estimates and the same words for the same problem."""
    for changes in ({}, {"PL": 700}, {"PRG": None}):
        exact = ml.post("/invocations", json={"dataframe_records": [patient(ID=..., **changes)]})
        extra = ml.post(
            "/invocations", json={"dataframe_records": [patient(ID=..., note="x", **changes)]}
        )
        assert exact.status_code == extra.status_code
        if exact.status_code == 200:
            p = [r.json()["predictions"][0]["probability"] for r in (exact, extra)]
            assert p[0] == p[1]
        else:
            assert exact.json() == extra.json()


def test_payloads_as_pandas_writes_them_for_mlflow_clients(ml, v1):
    """MLflow's clients serialise a DataFrame with pandas: orient=split (with its index),
    records, and CSV; all three are read as they are written."""
    import json

    import pandas as pd

    frame = pd.DataFrame(rows(MANY), columns=list(FEATURE_CODES), index=[10, 11, 12])
    split = json.loads(frame.to_json(orient="split"))
    records = json.loads(frame.to_json(orient="records"))
    for body in ({"dataframe_split": split}, {"dataframe_records": records}):
        r = ml.post("/invocations", json=body)
        assert r.status_code == 200, r.text
        assert [p["probability"] for p in r.json()["predictions"]] == v1
    csv = frame.to_csv(index=False).encode()
    r = ml.post("/invocations", content=csv, headers={"content-type": "text/csv"})
    assert [p["probability"] for p in r.json()["predictions"]] == v1


def test_a_large_body_is_read_off_the_loop_with_the_same_result(ml, v1):
    import json

    body = json.dumps({"dataframe_records": MANY}).encode() + b" " * 40_000
    r = ml.post("/invocations", content=body, headers={"content-type": "application/json"})
    assert [p["probability"] for p in r.json()["predictions"]] == v1
    bad = json.dumps({"dataframe_records": [patient(PL=700)]}).encode() + b" " * 40_000
    r = ml.post("/invocations", content=bad, headers={"content-type": "application/json"})
    assert "column PL, value 700" in error(r)
