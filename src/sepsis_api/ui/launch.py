"""Start the web UI: ``streamlit run`` on ``ui/app.py`` as a child process, headless.

``ui_command`` is the one command line (used by ``run_ui``, the tests and the Dockerfiles);
the API address and key reach the UI through its settings' environment variables.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

APP_PATH = Path(__file__).resolve().with_name("app.py")

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
    except KeyboardInterrupt:  # the child got the same SIGINT; give it time to stop
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        return 0
