"""FHIR's $predict when the audit log cannot confirm its commit: a 503 OperationOutcome
(issue type transient) within the bound, no RiskAssessment; answered again once it can."""

from __future__ import annotations

from fhir.resources.R4B.operationoutcome import OperationOutcome

from fhir_bundles import bundle_json, patient, patient_observations

PREDICT = "/fhir/RiskAssessment/$predict"
FHIR = {"content-type": "application/fhir+json"}


def test_an_audit_commit_not_confirmed_in_time_is_a_503_outcome(make_client, write_lock):
    client = make_client(audit_wait_seconds=0.2)
    body = bundle_json(patient(), patient_observations())
    with write_lock(client.app.state.service.audit.sqlite_file):  # the writer thread waits
        r = client.post(PREDICT, content=body, headers=FHIR)
    assert r.status_code == 503 and r.headers["content-type"] == "application/fhir+json"
    [issue] = OperationOutcome.model_validate(r.json()).issue
    assert issue.code == "transient" and "within 0.2 s" in issue.diagnostics
    assert r.headers.get("retry-after") == "5"
    assert client.post(PREDICT, content=body, headers=FHIR).status_code == 200
