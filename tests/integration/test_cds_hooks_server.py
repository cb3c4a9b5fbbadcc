"""CDS Hooks between real processes: a `sepsis-api serve` that trusts a loopback EHR process
(its JWKS, its FHIR server), called as that EHR calls it, without prefetch."""

from __future__ import annotations

import json

import httpx

from cds import FHIR_TOKEN, ISSUER, PUBLIC_URL, EHRKeys, bearer, fhir_authorization, hook_request
from cds import resources as ehr_resources
from ehr_server import EHRProcess
from factories import PATIENT
from server import ServerProcess


def test_an_ehr_calls_the_service_and_the_server_fetches_from_its_fhir_server(tmp_path):
    keys = EHRKeys()
    with EHRProcess(tmp_path, keys.jwks(), FHIR_TOKEN, ehr_resources()) as ehr:
        env = {
            "SEPSIS_API_PUBLIC_URL": PUBLIC_URL,
            "SEPSIS_API_CDS_ISSUERS": json.dumps({ISSUER: ehr.url + "/jwks.json"}),
            "SEPSIS_API_CDS_FHIR_SERVERS": ehr.url + "/fhir",
        }
        with ServerProcess(tmp_path / "api", env) as srv:
            body = hook_request(
                fhirServer=ehr.url + "/fhir", fhirAuthorization=fhir_authorization()
            )
            r = httpx.post(
                srv.url + "/cds-services/sepsis-risk",
                json=body,
                headers={**bearer(keys.token("RS384")), "X-Request-ID": "cds-1"},
                timeout=30,
            )
            assert r.status_code == 200, r.text
            card = r.json()["cards"][0]
            v1 = httpx.post(srv.url + "/v1/predict", json=PATIENT, timeout=30).json()
            record = httpx.get(f"{srv.url}/v1/predictions/{card['uuid']}", timeout=30).json()
            assert record["probability"] == v1["predictions"][0]["probability"]
            assert record["source"] == "cds-hooks" and record["caller"] == ISSUER
            line = srv.wait_for_access("cds-1")["cds-1"]
            assert line["route"] == "/cds-services/{service_id}" and line["caller"] == ISSUER
            assert line["model_version"] == record["model_version"]
            metrics = httpx.get(srv.url + "/metrics", timeout=30).text
            assert 'route="/cds-services/{service_id}",status="200"' in metrics
        assert {q["path"] for q in ehr.requests() if q["path"].startswith("/fhir/")} == {
            "/fhir/Patient/pat-1",
            "/fhir/Observation",
        }
