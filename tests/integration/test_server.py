"""`sepsis-api serve` as an operator runs it: a real process answering on loopback."""

from __future__ import annotations

import signal
import subprocess
import sys

import httpx

from factories import PATIENT, patients
from server import ServerProcess


def test_live_server_answers_predict_batch_and_history(live_server):
    with httpx.Client(base_url=live_server.url, timeout=30) as http:
        one = http.post("/v1/predict", json=PATIENT, headers={"X-Request-ID": "trace-42"})
        assert one.status_code == 200 and one.headers["x-request-id"] == "trace-42"
        pid = one.json()["predictions"][0]["prediction_id"]
        batch = http.post("/v1/predict/batch", json={"patients": patients(10, prefix="S")})
        assert batch.status_code == 200 and batch.json()["count"] == 10
        record = http.get(f"/v1/predictions/{pid}").json()
        assert record["request_id"] == "trace-42" and record["patient_id"] == "ICU200010"
        assert http.get("/readyz").json()["status"] == "ready"
        bad = http.post("/v1/predict", json={**PATIENT, "Age": 500})
        assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "Age"


def test_server_with_keys_refuses_anonymous_callers(tmp_path):
    key = "k" * 24
    with ServerProcess(tmp_path, env={"SEPSIS_API_KEYS": f"ward:{key}"}) as srv:
        assert httpx.post(srv.url + "/v1/predict", json=PATIENT).status_code == 401
        ok = httpx.post(srv.url + "/v1/predict", json=PATIENT,
                        headers={"Authorization": f"Bearer {key}"})
        assert ok.status_code == 200
        assert key not in srv.log()  # keys are never logged


def test_sigterm_shuts_down_cleanly_and_keeps_the_log(tmp_path):
    srv = ServerProcess(tmp_path).start()
    assert httpx.post(srv.url + "/v1/predict", json=PATIENT).status_code == 200
    assert srv.proc is not None
    srv.proc.send_signal(signal.SIGTERM)
    assert srv.proc.wait(30) in (0, -signal.SIGTERM)  # uvicorn re-raises the signal it handled
    assert "Application shutdown complete" in srv.log()
    # the estimate survived the restart
    with ServerProcess(tmp_path) as again:
        assert len(httpx.get(again.url + "/v1/predictions").json()["items"]) == 1


def test_public_bind_without_keys_is_refused():
    proc = subprocess.run([sys.executable, "-m", "sepsis_api.cli", "serve", "--host", "0.0.0.0"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "--insecure" in proc.stderr and "SEPSIS_API_KEYS" in proc.stderr
