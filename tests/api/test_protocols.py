"""Every standard protocol gives /v1/predict's estimate for the same patient, audits it with
the protocol as its source, and is labelled by its route in the metrics (not "unmatched").
A new protocol adds one entry to PROTOCOLS."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from cds import hook_request, prefetch
from factories import PATIENT
from fhir_bundles import bundle_json, patient, patient_observations
from sepsis_api.schema import FEATURE_CODES


def _v2(client: Any) -> tuple[float, str]:
    body = {
        "inputs": [
            {
                "name": "features",
                "datatype": "FP64",
                "shape": [1, 9],
                "data": [PATIENT[c] for c in FEATURE_CODES],
            }
        ]
    }
    r = client.post("/v2/models/default/infer", json=body)
    assert r.status_code == 200, r.text
    out = {o["name"]: o["data"] for o in r.json()["outputs"]}
    return out["probability"][0], out["prediction_id"][0]


def _mlflow(client: Any) -> tuple[float, str]:
    r = client.post("/invocations", json={"dataframe_records": [PATIENT]})
    assert r.status_code == 200, r.text
    p = r.json()["predictions"][0]
    return p["probability"], p["prediction_id"]


def _cds_hooks(client: Any) -> tuple[float, str]:
    r = client.post("/cds-services/sepsis-risk", json=hook_request(prefetch(PATIENT)))
    assert r.status_code == 200, r.text
    card = r.json()["cards"][0]
    return client.get(f"/v1/predictions/{card['uuid']}").json()["probability"], card["uuid"]


def _fhir(client: Any) -> tuple[float, str]:
    # PATIENT as a Bundle: one Observation per feature, Age from the birth date
    body = bundle_json(patient(), patient_observations(PATIENT))
    r = client.post(
        "/fhir/RiskAssessment/$predict",
        content=body,
        headers={"content-type": "application/fhir+json"},
    )
    assert r.status_code == 200, r.text
    ra = r.json()
    return float(ra["prediction"][0]["probabilityDecimal"]), ra["id"]


# source in the audit log, the route label, the call (probability, prediction id)
PROTOCOLS: dict[str, tuple[str, Callable[[Any], tuple[float, str]]]] = {
    "v2": ("/v2/models/{model}/infer", _v2),
    "mlflow": ("/invocations", _mlflow),
    "cds-hooks": ("/cds-services/{service_id}", _cds_hooks),
    "fhir": ("/fhir/RiskAssessment/$predict", _fhir),
}


@pytest.mark.parametrize("source", list(PROTOCOLS))
def test_each_protocol_gives_v1s_estimate_audited_with_its_source(client, source):
    route, call = PROTOCOLS[source]
    v1 = client.post("/v1/predict", json=PATIENT).json()["predictions"][0]
    probability, prediction_id = call(client)
    assert probability == v1["probability"]
    record = client.get(f"/v1/predictions/{prediction_id}").json()
    assert record["source"] == source
    assert record["probability"] == v1["probability"] and record["model"] == v1["model"]
    assert record["inputs"] == client.get(f"/v1/predictions/{v1['prediction_id']}").json()["inputs"]
    metrics = client.get("/metrics").text
    assert f'route="{route}",status="200"' in metrics


def test_root_links_the_protocol_roots(client):
    links = client.get("/").json()["links"]
    assert links["open_inference_v2"] == "/v2" and links["mlflow_invocations"] == "/invocations"
    assert links["cds_hooks_discovery"] == "/cds-services"
    assert links["fhir_r4"] == "/fhir"
