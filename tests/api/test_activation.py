"""Model roll-out: switch the served version without failing a request; replicas follow."""

from __future__ import annotations

import os
import subprocess
import sys
import threading

import httpx

from factories import PATIENT
from server import ServerProcess, wait_for

ADMIN = "ops:" + "a" * 24
ADMIN_HEADERS = {"Authorization": "Bearer " + "a" * 24}


def test_admin_route_needs_an_admin_key(make_client, registry):
    client = make_client(model_dir=registry, admin_keys=ADMIN, api_keys="ui:" + "u" * 20)
    body = {"version": "x"}
    assert client.post("/v1/admin/activate", json=body).status_code == 401
    user = client.post("/v1/admin/activate", json=body, headers={"X-API-Key": "u" * 20})
    assert user.status_code == 401  # an ordinary key is not enough
    unknown = client.post("/v1/admin/activate", json=body, headers=ADMIN_HEADERS)
    assert unknown.status_code == 422 and unknown.json()["errors"][0]["field"] == "version"


def test_admin_keys_can_come_from_a_file(make_client, registry, tmp_path):
    secret = tmp_path / "admin_keys"
    secret.write_text(f"# model roll-out\n{ADMIN}\n", encoding="utf-8")
    client = make_client(model_dir=registry, admin_keys_file=secret)
    body = {"version": "x"}
    assert client.post("/v1/admin/activate", json=body).status_code == 401
    known = client.post("/v1/admin/activate", json=body, headers=ADMIN_HEADERS)
    assert known.status_code == 422  # past the key check: the version is what is wrong


def test_activation_switches_the_served_version(make_client, registry, shipped, small_version):
    client = make_client(model_dir=registry, admin_keys=ADMIN)
    before = client.post("/v1/predict", json=PATIENT).json()["predictions"][0]
    assert before["model_version"] == shipped.version
    r = client.post(
        "/v1/admin/activate", json={"version": small_version.version}, headers=ADMIN_HEADERS
    )
    assert r.status_code == 200
    assert r.json() == {
        "version": small_version.version,
        "default_model": small_version.default_model,
        "previous": shipped.version,
    }
    after = client.post("/v1/predict", json=PATIENT).json()["predictions"][0]
    assert after["model_version"] == small_version.version
    assert client.get("/v1/models").json()["version"] == small_version.version


def test_switch_under_load_fails_no_request_and_a_second_server_follows(
    tmp_path, registry, shipped, small_version
):
    env = {
        "SEPSIS_API_MODEL_DIR": str(registry),
        "SEPSIS_API_ADMIN_KEYS": ADMIN,
        "SEPSIS_API_MODEL_POLL_SECONDS": "0.5",
    }
    data = tmp_path / "shared"  # both servers share one SQLite audit database
    with ServerProcess(data, env=env) as one, ServerProcess(data, env=env) as two:
        versions: list[str] = []
        failures: list[str] = []
        stop = threading.Event()

        def load(url: str) -> None:
            with httpx.Client(base_url=url, timeout=30) as http:
                while not stop.is_set():
                    r = http.post("/v1/predict", json=PATIENT)
                    if r.status_code != 200:
                        failures.append(f"{r.status_code} {r.text}")
                    else:
                        versions.append(r.json()["predictions"][0]["model_version"])

        workers = [
            threading.Thread(target=load, args=(srv.url,)) for srv in (one, two) for _ in range(3)
        ]
        for w in workers:
            w.start()

        def wait_until(condition, what: str) -> None:  # a failed request ends the wait early
            wait_for(lambda: failures or condition(), what, timeout=60)

        def serves_the_new_version(srv: ServerProcess) -> bool:
            return httpx.get(srv.url + "/v1/models").json()["version"] == small_version.version

        try:
            wait_until(lambda: len(versions) >= 200, "200 predictions before the switch")
            r = httpx.post(
                one.url + "/v1/admin/activate",
                headers=ADMIN_HEADERS,
                json={"version": small_version.version},
                timeout=60,
            )
            assert r.status_code == 200, r.text
            for srv in (one, two):  # the second follows on its next poll of the registry
                wait_until(lambda srv=srv: serves_the_new_version(srv), f"{srv.url} to switch")
            seen = len(versions)
            wait_until(lambda: len(versions) >= seen + 300, "300 predictions after the switch")
        finally:
            stop.set()
            for w in workers:
                w.join(60)
        assert failures == []
        assert set(versions) == {shipped.version, small_version.version}
        tail = versions[-100:]
        assert set(tail) == {small_version.version}  # the second server followed too
        for srv in (one, two):
            v = httpx.get(srv.url + "/v1/models").json()["version"]
            assert v == small_version.version


def test_cli_activation_is_what_servers_start_on(tmp_path, registry, small_version):
    env = {"SEPSIS_API_MODEL_DIR": str(registry), "SEPSIS_API_DATA_DIR": str(tmp_path / "d")}
    proc = subprocess.run(
        [sys.executable, "-m", "sepsis_api.cli", "models", "activate", small_version.version],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **env},
    )
    assert proc.returncode == 0, proc.stderr
    assert small_version.version in proc.stdout
    with ServerProcess(tmp_path / "d", env=env) as srv:
        assert httpx.get(srv.url + "/v1/models").json()["version"] == small_version.version
