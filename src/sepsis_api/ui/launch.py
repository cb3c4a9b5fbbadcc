"""Start the web UI: ``streamlit run`` on ``ui/app.py`` as a child process, headless.

``ui_command`` is the one command line (used by ``run_ui``, the tests and the Dockerfiles);
the API address and key reach the UI through its settings' environment variables. ``stop`` is
the one way a launcher stops its children (``run_ui`` and ``sepsis-api up``).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

APP_PATH = Path(__file__).resolve().with_name("app.py")
STOP_SECONDS = 10.0  # how long a stopped child may take to finish before it is killed

# Fixed look, whatever the user's Streamlit config says.
THEME = {
    "theme.base": "light",
    "theme.primaryColor": "#1d4ed8",
    "theme.backgroundColor": "#ffffff",
    "theme.secondaryBackgroundColor": "#f2f4f7",
    "theme.textColor": "#101828",
}


def ui_command(host: str, port: int) -> list[str]:
    """The command line that serves the UI on host:port (no browser, no usage statistics)."""
    options = {
        "server.headless": "true",
        "server.address": host,
        "server.port": str(port),
        "server.fileWatcherType": "none",
        "server.runOnSave": "false",
        "browser.gatherUsageStats": "false",
        "client.toolbarMode": "viewer",
        "client.showErrorDetails": "type",
        **THEME,
    }
    return [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(APP_PATH),
        *(f"--{key}={value}" for key, value in options.items()),
    ]


def ui_env(api_url: str, api_key: str | None, base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for the UI process: its API address and key (none = no key sent)."""
    env = dict(os.environ if base is None else base)
    env["SEPSIS_API_UI_API_URL"] = api_url
    if api_key:
        env["SEPSIS_API_UI_API_KEY"] = api_key
    else:
        env.pop("SEPSIS_API_UI_API_KEY", None)
    return env


def run_ui(host: str, port: int, api_url: str, api_key: str | None = None) -> int:
    """Serve the UI until it exits or Ctrl-C; returns its exit status (0 after Ctrl-C)."""
    proc = subprocess.Popen(ui_command(host, port), env=ui_env(api_url, api_key))
    try:
        return proc.wait()
    except KeyboardInterrupt:  # the child got the same SIGINT; stop waits for it to finish
        stop(proc, timeout=STOP_SECONDS)
        return 0


def stop(*procs: subprocess.Popen[bytes], timeout: float = STOP_SECONDS) -> list[int]:
    """Stop child processes and reap them; returns their exit statuses, in order.

    Each one still running gets SIGTERM, then all of them share ``timeout`` seconds to finish;
    whichever is left is killed. SIGTERM, not SIGINT: after Ctrl-C the children (in the same
    process group) already had a SIGINT, and a second one makes uvicorn exit at once, skipping
    its shutdown (the API commits its queued audit rows there); a SIGTERM only asks uvicorn and
    Streamlit for the graceful stop again.
    """
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
    deadline = time.monotonic() + timeout
    for proc in procs:
        try:
            proc.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return [proc.returncode for proc in procs]
