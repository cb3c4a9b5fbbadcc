"""FHIR R4 over HTTP against a real `sepsis-api serve` process on loopback: a Bundle built by
fhir.resources, the RiskAssessment read back by it, the access log naming the route; and a
server that refuses to start on a broken mapping file."""

from __future__ import annotations

import os
import subprocess
import sys

import httpx
from fhir.resources.R4B.capabilitystatement import CapabilityStatement
from fhir.resources.R4B.operationoutcome import OperationOutcome
from fhir.resources.R4B.riskassessment import RiskAssessment

from factories import PATIENT
from fhir_bundles import bundle_json, patient, patient_observations

PREDICT = "/fhir/RiskAssessment/$predict"
FHIR = {"content-type": "application/fhir+json", "accept": "application/fhir+json"}


def test_a_bundle_over_http_gives_v1s_estimate_and_an_access_line(live_server):
    body = bundle_json(patient(), patient_observations())
    with httpx.Client(base_url=live_server.url, timeout=30) as http:
        cs = CapabilityStatement.model_validate(http.get("/fhir/metadata").json())
        assert cs.rest[0].resource[0].operation[0].name == "predict"
        r = http.post(PREDICT, content=body, headers={**FHIR, "X-Request-ID": "fhir-1"})
        assert r.status_code == 200, r.text
        ra = RiskAssessment.model_validate(r.json())
        v1 = http.post("/v1/predict", json=PATIENT).json()["predictions"][0]
        assert float(ra.prediction[0].probabilityDecimal) == v1["probability"]
        record = http.get(f"/v1/predictions/{ra.id}").json()
        assert record["source"] == "fhir" and record["request_id"] == "fhir-1"
        missing = [o for o in patient_observations() if o.id != "obs-PRG"]
        bad = http.post(
            PREDICT,
            content=bundle_json(patient(), missing),
            headers={**FHIR, "X-Request-ID": "fhir-2"},
        )
        assert bad.status_code == 422
        assert "PRG" in OperationOutcome.model_validate(bad.json()).issue[0].diagnostics
    lines = live_server.wait_for_access("fhir-1", "fhir-2")
    assert lines["fhir-1"]["route"] == PREDICT and lines["fhir-2"]["route"] == PREDICT
    assert lines["fhir-1"]["model_version"] == v1["model_version"]
    metrics = httpx.get(live_server.url + "/metrics", timeout=30).text
    assert f'route="{PREDICT}",status="200"' in metrics


def test_serve_refuses_to_start_on_a_broken_mapping_file(tmp_path):
    mapping = tmp_path / "mapping.json"
    mapping.write_text('{"features": {"PL": {"codes": [], "units": {}}}}')
    proc = subprocess.run(
        [sys.executable, "-m", "sepsis_api.cli", "serve", "--port", "1"],
        capture_output=True,
        text=True,
        timeout=120,
        env={
            **os.environ,
            "SEPSIS_API_FHIR_MAPPING": str(mapping),
            "SEPSIS_API_DATA_DIR": str(tmp_path),
        },
    )
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "SEPSIS_API_FHIR_MAPPING" in proc.stderr and str(mapping) in proc.stderr
