"""`sepsis-api ui` plumbing: the command line and the environment the UI process gets."""

from __future__ import annotations

import signal
import subprocess
import sys

from sepsis_api.ui.launch import APP_PATH, stop, ui_command, ui_env


def test_ui_command_runs_the_app_headless_on_the_given_address() -> None:
    cmd = ui_command("127.0.0.1", 8765)
    assert cmd[:4] == [sys.executable, "-m", "streamlit", "run"]
    assert cmd[4] == str(APP_PATH) and APP_PATH.is_file()
    for option in (
        "--server.headless=true",
        "--browser.gatherUsageStats=false",
        "--server.address=127.0.0.1",
        "--server.port=8765",
        "--theme.base=light",
    ):
        assert option in cmd


def test_ui_env_carries_the_api_address_and_key_only_when_given() -> None:
    base = {"PATH": "/bin", "SEPSIS_API_UI_API_KEY": "stale-key-from-the-shell"}
    env = ui_env("http://127.0.0.1:9000", None, base)
    assert env["SEPSIS_API_UI_API_URL"] == "http://127.0.0.1:9000"
    assert "SEPSIS_API_UI_API_KEY" not in env and env["PATH"] == "/bin"
    keyed = ui_env("http://api:8000", "k" * 20, base)
    assert keyed["SEPSIS_API_UI_API_KEY"] == "k" * 20


def child(script: str) -> subprocess.Popen[bytes]:
    """A Python child that runs ``script``, then says "ready" and waits for a signal."""
    code = f"import signal, sys\n{script}\nprint('ready', flush=True)\nsignal.pause()\n"
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    assert proc.stdout is not None and proc.stdout.readline() == b"ready\n"  # handlers are set
    return proc


def test_stop_asks_with_sigterm_and_reaps_every_child() -> None:
    graceful = child("signal.signal(signal.SIGTERM, lambda *a: sys.exit(3))")
    plain = child("")
    assert stop(graceful, plain, timeout=30) == [3, -signal.SIGTERM]


def test_stop_kills_a_child_that_ignores_sigterm_after_the_timeout() -> None:
    stubborn = child("signal.signal(signal.SIGTERM, signal.SIG_IGN)")
    assert stop(stubborn, timeout=0.2) == [-signal.SIGKILL]


def test_stop_leaves_a_finished_child_alone() -> None:
    done = subprocess.Popen([sys.executable, "-c", "raise SystemExit(4)"])
    done.wait()
    assert stop(done) == [4]
