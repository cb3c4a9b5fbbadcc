"""The base install alone (``pip install sepsis-api``, no extras) serves, predicts offline and
verifies the shipped model: a fresh virtualenv, the training libraries absent.

What the base install holds is read from pyproject.toml, never listed here.
"""

from __future__ import annotations

import csv
import json
import secrets
import shutil
import subprocess
import tomllib
import venv
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from sepsis_api.ml.store import PACKAGED_ROOT, Registry
from server import ServerProcess

pytestmark = pytest.mark.install

ROOT = Path(__file__).resolve().parents[2]
WARD = ROOT / "examples" / "ward.csv"
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]


def requirement_name(req: str) -> str:
    for sep in "<>=!~;[ ":
        req = req.split(sep)[0]
    return req.lower()


@dataclass
class BaseInstall:
    bin: Path

    def run(self, *argv: str, **kw: object) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.bin / argv[0]), *argv[1:]],
            capture_output=True,
            text=True,
            timeout=300,
            env={"COLUMNS": "10000", "PATH": str(self.bin)},  # wide: rich wraps no line
            **kw,  # type: ignore[arg-type]
        )


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> BaseInstall:
    root = tmp_path_factory.mktemp("base-install")
    # The build inputs of the images (pyproject, README, src), so pip builds outside the checkout.
    source = root / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(
        ROOT / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info")
    )
    env_dir = root / "venv"
    venv.create(env_dir, with_pip=True)
    pip = subprocess.run(
        [str(env_dir / "bin" / "python"), "-m", "pip", "install", "--quiet", str(source)],
        capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert pip.returncode == 0, pip.stdout + pip.stderr
    return BaseInstall(env_dir / "bin")


def test_the_base_install_leaves_every_extra_only_package_out(base: BaseInstall) -> None:
    wanted = {requirement_name(r) for r in PROJECT["dependencies"]}
    extra_only = (
        {
            requirement_name(r)
            for name, reqs in PROJECT["optional-dependencies"].items()
            if name != "dev"
            for r in reqs
        }
        - wanted
        - {"sepsis-api"}
    )
    probe = (
        "import importlib.metadata as m, json\n"
        "print(json.dumps(sorted({d.metadata['Name'].lower().replace('_', '-')"
        " for d in m.distributions()})))\n"
    )
    installed = set(json.loads(base.run("python", "-c", probe).stdout))
    assert wanted <= installed
    assert not installed & extra_only, "extras' packages in the base install"
    assert "scikit-learn" in extra_only  # the training libraries are among those left out


def test_the_base_install_verifies_the_shipped_model(base: BaseInstall) -> None:
    shipped = Registry([PACKAGED_ROOT]).open()
    shown = base.run("sepsis-api", "models", "show")
    assert shown.returncode == 0, shown.stdout + shown.stderr
    assert f"all {len(shipped.card['files'])} file hashes OK" in shown.stdout


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_the_base_install_predicts_a_file_offline(
    base: BaseInstall, tmp_path: Path, suffix: str
) -> None:
    out = tmp_path / f"scores{suffix}"
    done = base.run("sepsis-api", "predict", "--input", str(WARD), "--output", str(out))
    assert done.returncode == 0, done.stdout + done.stderr
    reader = (
        "import pandas, sys\n"
        "p = sys.argv[1]\n"
        "print(len(pandas.read_parquet(p) if p.endswith('.parquet') else pandas.read_csv(p)))\n"
    )
    with WARD.open(encoding="utf-8") as fh:
        rows = sum(1 for _ in csv.DictReader(fh))
    assert int(base.run("python", "-c", reader, str(out)).stdout) == rows


class BaseServer(ServerProcess):
    """``sepsis-api serve`` from the base install's own interpreter."""

    def __init__(self, base: BaseInstall, data_dir: Path, key: str) -> None:
        super().__init__(data_dir, {"SEPSIS_API_KEYS": f"tests:{key}"})
        self.python = str(base.bin / "python")

    def command(self) -> list[str]:
        return [self.python, *super().command()[1:]]


@pytest.fixture(scope="module")
def served(
    base: BaseInstall, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, str]]:
    key = secrets.token_urlsafe(32)
    with BaseServer(base, tmp_path_factory.mktemp("base-serve"), key) as srv:
        yield srv.url, key


def test_the_base_install_serves_one_patient_and_a_batch(served: tuple[str, str]) -> None:
    url, key = served
    headers = {"Authorization": f"Bearer {key}"}
    patient = {
        "PRG": 6,
        "PL": 148,
        "PR": 72,
        "SK": 35,
        "TS": 0,
        "M11": 33.6,
        "BD2": 0.627,
        "Age": 50,
        "Insurance": 1,
    }
    one = httpx.post(url + "/v1/predict", json=patient, headers=headers)
    assert one.status_code == 200, one.text
    assert 0 < one.json()["predictions"][0]["probability"] < 1
    batch = httpx.post(
        url + "/v1/predict/batch",
        content=WARD.read_bytes(),
        headers={**headers, "Content-Type": "text/csv"},
    )
    assert batch.status_code == 200, batch.text
    with WARD.open(encoding="utf-8") as fh:
        assert (
            batch.json()["count"]
            == len(batch.json()["results"])
            == sum(1 for _ in csv.DictReader(fh))
        )
    assert httpx.post(url + "/v1/predict", json=patient).status_code == 401
