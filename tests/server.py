"""Real processes on free loopback ports for tests that speak HTTP: the API and the web UI."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx

T = TypeVar("T")
POLL_SECONDS = 0.05


def wait_for(condition: Callable[[], T], what: str, timeout: float = 30) -> T:
    """The first truthy value of ``condition()``, polled until ``timeout`` s; else a failure
    naming ``what``. Tests wait for a condition like this, never for a fixed time."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(POLL_SECONDS)  # the poll interval, not a wait for something to happen


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ChildProcess:
    """A command serving HTTP on ``self.port``; started when ``health`` answers 200."""

    name = "process"
    health = "/"

    def __init__(self, log_dir: Path, env: dict[str, str]) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_dir / f"{self.name}-{self.port}.log"
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        raise NotImplementedError

    def start(self, timeout: float = 60) -> ChildProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "wb") as log:  # the child keeps its own copy of the handle
            self.proc = subprocess.Popen(
                self.command(), env=self.env, stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n{self.log()}")
            try:
                if httpx.get(self.url + self.health, timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)  # the poll interval of this wait for the health check
        self.stop()
        raise RuntimeError(f"{self.name} not ready after {timeout} s:\n{self.log()}")

    def stop(self, timeout: float = 30) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.terminate()
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def wait_for_log(self, *needles: str, timeout: float = 30) -> str:
        """The log once it holds every one of ``needles``."""

        def complete() -> str:
            text = self.log()
            return text if all(n in text for n in needles) else ""

        try:
            return wait_for(complete, f"{needles} in the {self.name} log", timeout)
        except AssertionError as e:
            raise AssertionError(f"{e}; its tail:\n{self.log()[-3000:]}") from None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class ServerProcess(ChildProcess):
    """``with ServerProcess(data_dir, env) as srv: httpx.get(srv.url + "/healthz")``."""

    name = "server"
    health = "/readyz"

    def __init__(
        self, data_dir: Path, env: dict[str, str] | None = None, args: list[str] | None = None
    ) -> None:
        super().__init__(
            data_dir, {**os.environ, "SEPSIS_API_DATA_DIR": str(data_dir), **(env or {})}
        )
        self.args = args or []

    def access_lines(self) -> list[dict[str, Any]]:
        """The JSON access lines written so far (whole lines only)."""
        text = self.log()
        whole = text[: text.rfind("\n") + 1]
        return [json.loads(line) for line in whole.splitlines() if line.startswith("{")]

    def wait_for_access(self, *request_ids: str, timeout: float = 30) -> dict[str, dict[str, Any]]:
        """The access lines by request id once each of ``request_ids`` has one. A line is
        written on a later pass of the server's event loop than its reply, so a client can
        hold the reply before the line is in the log."""

        def written() -> dict[str, dict[str, Any]]:
            lines = {line["request_id"]: line for line in self.access_lines()}
            return lines if lines.keys() >= set(request_ids) else {}

        try:
            return wait_for(written, f"access lines of {request_ids}", timeout)
        except AssertionError as e:
            raise AssertionError(f"{e}; the server log's tail:\n{self.log()[-3000:]}") from None

    def command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "sepsis_api.cli",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            *self.args,
        ]
