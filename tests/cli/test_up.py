"""`sepsis-api up` as a user runs it: API and web UI together; Ctrl-C (or either one ending)
stops both and leaves no process behind."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from server import free_port, wait_for


class Up:
    def __init__(self, tmp_path: Path, api_port: int | None = None) -> None:
        self.api_port, self.ui_port = api_port or free_port(), free_port()
        env = {
            **os.environ,
            "SEPSIS_API_HOST": "127.0.0.1",
            "SEPSIS_API_PORT": str(self.api_port),
            "SEPSIS_API_UI_HOST": "127.0.0.1",
            "SEPSIS_API_UI_PORT": str(self.ui_port),
            "SEPSIS_API_DATA_DIR": str(tmp_path / "data"),
        }
        self.log = tmp_path / "up.log"
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "sepsis_api.cli", "up"],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, as a terminal gives it
            )

    def answers(self, url: str) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"up exited with {self.proc.returncode}:\n{self.output()}")
        try:
            return httpx.get(url, timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def group_is_gone(self) -> bool:
        try:
            os.killpg(self.proc.pid, 0)
        except ProcessLookupError:
            return True
        return False


@pytest.fixture
def start_up(tmp_path: Path) -> Iterator[Callable[..., Up]]:
    """start_up([api_port]) -> a running `sepsis-api up`; what is left of it is killed after."""
    started: list[Up] = []

    def start(api_port: int | None = None) -> Up:
        started.append(Up(tmp_path, api_port))
        return started[-1]

    yield start
    for up in started:
        if not up.group_is_gone():
            os.killpg(up.proc.pid, signal.SIGKILL)
        up.proc.wait(30)


def test_ctrl_c_stops_the_api_and_the_ui(start_up: Callable[..., Up]) -> None:
    up = start_up()
    api, ui = f"http://127.0.0.1:{up.api_port}", f"http://127.0.0.1:{up.ui_port}"
    wait_for(lambda: up.answers(api + "/readyz"), "the API", timeout=120)
    wait_for(lambda: up.answers(ui + "/_stcore/health"), "the web UI", timeout=120)
    os.killpg(up.proc.pid, signal.SIGINT)  # Ctrl-C: the terminal signals the whole group
    assert up.proc.wait(60) == 0, up.output()
    assert up.group_is_gone()  # both children were reaped
    for url in (api + "/healthz", ui + "/_stcore/health"):
        with pytest.raises(httpx.ConnectError):
            httpx.get(url, timeout=5)


def test_when_the_api_cannot_start_the_ui_is_stopped_too(start_up: Callable[..., Up]) -> None:
    with socket.socket() as taken:  # the API's port is in use before `up` starts
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        up = start_up(taken.getsockname()[1])
        assert up.proc.wait(120) == 1, up.output()
        assert "address already in use" in up.output().lower()
    assert up.group_is_gone()
