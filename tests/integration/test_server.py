"""`sepsis-api serve` as an operator runs it: a real process answering on loopback."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import httpx

from factories import PATIENT, patients
from server import ServerProcess, wait_for


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
        anonymous = httpx.post(
            srv.url + "/v1/predict", json=PATIENT, headers={"X-Request-ID": "k-1"}
        )
        assert anonymous.status_code == 401
        ok = httpx.post(
            srv.url + "/v1/predict",
            json=PATIENT,
            headers={"Authorization": f"Bearer {key}", "X-Request-ID": "k-2"},
        )
        assert ok.status_code == 200
        srv.wait_for_access("k-1", "k-2")  # both requests are in the log by now
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
    proc = subprocess.run(
        [sys.executable, "-m", "sepsis_api.cli", "serve", "--host", "0.0.0.0"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "--insecure" in proc.stderr and "SEPSIS_API_KEYS" in proc.stderr


def test_one_json_access_line_per_request_without_keys_or_patient_values(tmp_path):
    key = "s" * 24
    with ServerProcess(tmp_path, env={"SEPSIS_API_KEYS": f"ehr:{key}"}) as srv:
        auth = {"X-API-Key": key, "X-Request-ID": "acc-1"}
        assert httpx.post(srv.url + "/v1/predict", json=PATIENT, headers=auth).status_code == 200
        assert (
            httpx.post(
                srv.url + "/v1/predict",
                json={**PATIENT, "Age": 500},
                headers={**auth, "X-Request-ID": "acc-2"},
            ).status_code
            == 422
        )
        by_id = srv.wait_for_access("acc-1", "acc-2")
    logged = srv.log()  # the whole run, shutdown included
    ids = [line["request_id"] for line in srv.access_lines()]
    assert ids.count("acc-1") == ids.count("acc-2") == 1
    ok, bad = by_id["acc-1"], by_id["acc-2"]
    assert ok["route"] == "/v1/predict" and ok["status"] == 200 and ok["caller"] == "ehr"
    assert ok["model_version"] and ok["latency_ms"] > 0 and ok["time"].endswith("+00:00")
    assert bad["status"] == 422
    assert key not in logged
    assert "ICU200010" not in logged and "0.627" not in logged  # no patient values at INFO


def _unread_bytes(server_port: int, client_port: int) -> int | None:
    """Bytes the server has not read yet on the loopback connection from ``client_port``
    (the receive queue of its socket in /proc/net/tcp), or None before the kernel lists it."""
    local, remote = f"0100007F:{server_port:04X}", f"0100007F:{client_port:04X}"
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[1] == local and fields[2] == remote:
            return int(fields[4].split(":")[1], 16)
    return None


def test_sigterm_lets_an_in_flight_request_finish_and_commit(tmp_path):
    import http.client
    import json
    import threading

    srv = ServerProcess(tmp_path).start()
    result: dict[str, object] = {}
    body = json.dumps({"patients": patients(20_000, prefix="T")}).encode()
    half_sent, resume = threading.Event(), threading.Event()

    def chunks():  # a streamed body: the request is in flight until the second half is sent
        yield body[: len(body) // 2]
        half_sent.set()
        resume.wait(30)
        yield body[len(body) // 2 :]

    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=120)
    conn.connect()
    client_port = conn.sock.getsockname()[1]

    def big_batch() -> None:
        conn.request(
            "POST",
            "/v1/predict/batch",
            body=chunks(),
            headers={"content-type": "application/json"},
            encode_chunked=True,
        )
        r = conn.getresponse()
        result["status"] = r.status
        result["count"] = json.loads(r.read()).get("count")

    sender = threading.Thread(target=big_batch)
    sender.start()
    assert half_sent.wait(30)
    # In flight means the server has read the headers and half the body (a request it has not
    # read yet would be closed unanswered at shutdown, as uvicorn does).
    wait_for(lambda: _unread_bytes(srv.port, client_port) == 0, "the server to read the request")
    assert srv.proc is not None
    srv.proc.send_signal(signal.SIGTERM)
    try:  # the server is shutting down while the request is still arriving
        srv.wait_for_log("Waiting for connections to close", timeout=60)
    finally:
        resume.set()
    sender.join(120)
    conn.close()
    assert srv.proc.wait(60) in (0, -signal.SIGTERM)
    assert result == {"status": 200, "count": 20_000}
    with ServerProcess(tmp_path) as again:  # and every row of it was committed
        page = httpx.get(again.url + "/v1/predictions", params={"limit": 1}).json()
        assert page["items"][0]["patient_id"] == "T19999"
        counted = httpx.get(again.url + "/v1/predictions", params={"patient_id": "T0"}).json()[
            "items"
        ]
        assert len(counted) == 1


def test_metrics_add_up_over_worker_processes(tmp_path):
    import re

    n = 30
    with ServerProcess(tmp_path, env={"SEPSIS_API_WORKERS": "2"}) as srv:
        for _ in range(n):  # a new connection each: the kernel spreads them over the workers
            assert httpx.post(srv.url + "/v1/predict", json=PATIENT).status_code == 200
        for _ in range(6):  # whichever worker answers the scrape sees all of them
            text = httpx.get(srv.url + "/metrics").text
            counted = sum(
                float(v)
                for v in re.findall(
                    r"^sepsis_api_predictions_total\{[^}]*\} (\S+)$", text, re.MULTILINE
                )
            )
            assert counted == n, text[:2000]
