"""Operators' path on PostgreSQL: migrate, then two API servers sharing one audit log."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import threading

import httpx

from factories import patient
from server import ServerProcess

_names = itertools.count()


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sepsis_api.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **env},
    )


def test_migrate_then_two_servers_share_one_history(postgres, tmp_path):
    url = postgres.create_database(f"replicas_{next(_names)}")
    env = {"SEPSIS_API_DATABASE_URL": url, "SEPSIS_API_DB_AUTO_UPGRADE": "false"}
    behind = _cli("db", "current", env=env)
    assert behind.returncode == 1 and "sepsis-api db upgrade" in behind.stdout
    upgraded = _cli("db", "upgrade", env=env)
    assert upgraded.returncode == 0, upgraded.stderr
    assert _cli("db", "current", env=env).returncode == 0

    sent: list[str] = []
    lock = threading.Lock()
    with ServerProcess(tmp_path / "a", env=env) as a, ServerProcess(tmp_path / "b", env=env) as b:

        def send(srv: ServerProcess, prefix: str) -> None:
            with httpx.Client(base_url=srv.url, timeout=30) as http:
                for i in range(40):
                    r = http.post("/v1/predict", json=patient(ID=f"{prefix}{i}"))
                    assert r.status_code == 200, r.text
                    with lock:
                        sent.append(r.json()["predictions"][0]["prediction_id"])

        threads = [threading.Thread(target=send, args=(srv, p)) for srv, p in ((a, "A"), (b, "B"))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        page = httpx.get(a.url + "/v1/predictions", params={"limit": 500}).json()
        also = httpx.get(b.url + "/v1/predictions", params={"limit": 500}).json()
    ids = [item["prediction_id"] for item in page["items"]]
    assert len(sent) == 80 and sorted(ids) == sorted(sent)  # nothing lost, nothing extra
    assert ids == sorted(ids, reverse=True)  # one history, newest first
    assert [i["prediction_id"] for i in also["items"]] == ids  # the same from either server
    for prefix in ("A", "B"):  # each server's own calls are in the order they were made
        own = [i["patient_id"] for i in reversed(page["items"]) if i["patient_id"][0] == prefix]
        assert own == [f"{prefix}{i}" for i in range(40)]


def test_server_refuses_a_database_whose_schema_is_behind(postgres, tmp_path):
    url = postgres.create_database(f"behind_{next(_names)}")
    srv = ServerProcess(
        tmp_path, env={"SEPSIS_API_DATABASE_URL": url, "SEPSIS_API_DB_AUTO_UPGRADE": "false"}
    )
    try:
        srv.start(timeout=30)
        raise AssertionError("the server started against an unmigrated database")
    except RuntimeError as e:
        assert "sepsis-api db upgrade" in str(e)
    finally:
        srv.stop()
