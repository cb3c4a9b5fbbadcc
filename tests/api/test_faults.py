"""Server faults: a generic 500 with a request id, the stack in the log, nothing recorded."""

from __future__ import annotations

import logging

from factories import PATIENT


def test_an_unexpected_fault_is_a_generic_500_with_the_request_id(client, caplog):
    service = client.app.state.service

    def broken(rows):
        raise RuntimeError("disk on fire")

    service.audit.insert.statements = broken  # on the loop and in the writer thread
    with caplog.at_level(logging.ERROR, logger="sepsis_api"):
        r = client.post("/v1/predict", json=PATIENT, headers={"X-Request-ID": "fault-1"})
    assert r.status_code == 500
    body = r.json()
    assert body["request_id"] == "fault-1" and "disk on fire" not in body["detail"]
    assert "request_id" in body["detail"]
    logged = "\n".join(rec.getMessage() + str(rec.exc_info) for rec in caplog.records)
    assert "fault-1" in logged and "disk on fire" in logged
