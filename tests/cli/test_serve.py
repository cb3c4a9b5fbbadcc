"""`sepsis-api serve` hands its options on as arguments (``plan_serve``), and with several
workers through the environment the worker processes build their app from."""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from factories import PATIENT
from sepsis_api.cli.serve import APP_FACTORY, app_for, plan_serve
from sepsis_api.config import Settings
from server import ServerProcess


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No SEPSIS_API_* from the caller: only what the test sets."""
    for name in list(os.environ):
        if name.startswith("SEPSIS_API_"):
            monkeypatch.delenv(name)
    return monkeypatch


def test_without_options_the_settings_are_served_as_they_are(tmp_path: Path) -> None:
    base = Settings(_env_file=None, data_dir=tmp_path, host="127.0.0.2", port=8123)
    plan = plan_serve(base)
    assert plan.settings == base and plan.worker_env == {}
    assert plan.uvicorn["host"] == "127.0.0.2" and plan.uvicorn["port"] == 8123
    assert plan.uvicorn["workers"] == 1 and plan.uvicorn["factory"] is False
    assert plan.uvicorn["access_log"] is False  # the app writes its own access lines


def test_options_become_uvicorn_arguments_and_the_apps_settings(tmp_path: Path) -> None:
    base = Settings(_env_file=None, data_dir=tmp_path)
    plan = plan_serve(base, host="0.0.0.0", port=9001, access_log=False, log_level="warning")
    assert (plan.uvicorn["host"], plan.uvicorn["port"]) == ("0.0.0.0", 9001)
    assert plan.uvicorn["log_level"] == "warning"
    assert plan.settings.access_log is False and plan.settings.port == 9001
    assert base.access_log is True and base.port == 8000  # the caller's settings are not changed
    assert plan.worker_env == {}  # one worker: nothing goes through the environment
    app = app_for(plan)
    assert isinstance(app, FastAPI) and app.state.settings is plan.settings


def test_with_several_workers_the_options_reach_the_workers_settings(
    tmp_path: Path, clean_env: pytest.MonkeyPatch
) -> None:
    clean_env.setenv("SEPSIS_API_DATA_DIR", str(tmp_path))
    clean_env.setenv("SEPSIS_API_ACCESS_LOG", "true")
    base = Settings(_env_file=None)
    plan = plan_serve(base, workers=3, port=9002, access_log=False)
    assert plan.uvicorn["workers"] == 3 and plan.uvicorn["factory"] is True
    assert app_for(plan) == APP_FACTORY  # each worker builds its own app
    assert plan.worker_env == {
        "SEPSIS_API_WORKERS": "3",
        "SEPSIS_API_PORT": "9002",
        "SEPSIS_API_ACCESS_LOG": "False",
    }
    for name, value in plan.worker_env.items():  # what a worker process inherits
        clean_env.setenv(name, value)
    assert Settings(_env_file=None) == plan.settings  # = what its create_app() reads


def test_a_server_with_two_workers_follows_the_options_over_the_environment(
    tmp_path: Path,
) -> None:
    with ServerProcess(
        tmp_path, env={"SEPSIS_API_ACCESS_LOG": "false"}, args=["--workers", "2", "--access-log"]
    ) as srv:
        reply = httpx.post(srv.url + "/v1/predict", json=PATIENT, headers={"X-Request-ID": "w-1"})
        assert reply.status_code == 200
        line = srv.wait_for_access("w-1")["w-1"]  # written by a worker process
        assert line["status"] == 200
