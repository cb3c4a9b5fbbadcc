"""The command line starts light: `sepsis-api --help` loads no model, data or server code."""

from __future__ import annotations

import json
import subprocess
import sys

from sepsis_api.cli import predict
from sepsis_api.ml.data import DEFAULT_CHUNK_ROWS

HEAVY = (
    "numpy",
    "pandas",
    "pyarrow",
    "numba",
    "sklearn",
    "uvicorn",
    "fastapi",
    "sqlalchemy",
    "sepsis_api.api",
    "sepsis_api.batch",
    "sepsis_api.db",
    "sepsis_api.ml",
    "sepsis_api.ui",
)


def test_importing_the_command_line_loads_none_of_the_heavy_packages() -> None:
    script = "import json, sys, sepsis_api.cli; print(json.dumps(sorted(sys.modules)))"
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    loaded = set(json.loads(proc.stdout))
    assert "sepsis_api.cli.serve" in loaded  # every group was registered
    heavy = sorted(m for m in loaded if any(m == h or m.startswith(h + ".") for h in HEAVY))
    assert heavy == []


def test_the_predict_chunk_default_is_the_readers() -> None:
    assert predict.CHUNK_ROWS == DEFAULT_CHUNK_ROWS


def test_python_m_lists_every_command() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "sepsis_api.cli", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    for command in ("train", "predict", "serve", "ui", "up", "config", "models", "db"):
        assert f" {command} " in proc.stdout, command
