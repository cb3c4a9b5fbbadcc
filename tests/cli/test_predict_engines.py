"""``sepsis-api predict --engine spark|dask`` as a user runs it (a real subprocess each, which
starts its own Spark local[2] or Dask LocalCluster), and the base install without the extras."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

CLI = [sys.executable, "-m", "sepsis_api.cli"]
# The interpreter with Spark and Dask made unimportable, as in an install without the extras.
WITHOUT_EXTRAS = [
    sys.executable,
    "-c",
    "import sys\n"
    "for m in ('pyspark', 'py4j', 'dask', 'distributed'): sys.modules[m] = None\n"
    "from sepsis_api.cli import app\n"
    "app(sys.argv[1:], prog_name='sepsis-api')",
]


def run(cmd: list[str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*cmd, *args], capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize(
    "engine", [["--engine", "spark", "--master", "local[2]"], ["--engine", "dask"]], ids=str
)
def test_each_engine_writes_the_local_engines_file(
    engine: list[str], test_csv: Path, tmp_path: Path
) -> None:
    local, distributed = tmp_path / "local.csv", tmp_path / "engine.csv"
    assert run(CLI, "predict", "--input", str(test_csv), "--output", str(local)).returncode == 0
    proc = run(CLI, "predict", "--input", str(test_csv), "--output", str(distributed), *engine)
    assert proc.returncode == 0, proc.stderr
    assert "scored 169 rows" in proc.stderr
    assert distributed.read_bytes() == local.read_bytes()


def test_without_the_extras_the_local_engine_works_and_the_others_say_what_to_install(
    test_csv: Path, tmp_path: Path
) -> None:
    out = tmp_path / "scores.csv"
    proc = run(WITHOUT_EXTRAS, "predict", "--input", str(test_csv), "--output", str(out))
    assert proc.returncode == 0, proc.stderr
    assert len(out.read_text().splitlines()) == 170
    for engine in ("spark", "dask"):
        proc = run(
            WITHOUT_EXTRAS, "predict", "--input", str(test_csv), "--output", str(out),
            "--engine", engine,
        )  # fmt: skip
        assert proc.returncode == 2
        assert f"--engine {engine} needs the {engine} extra" in proc.stderr
        assert f"pip install 'sepsis-api[{engine}]'" in proc.stderr
