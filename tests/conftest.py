"""Shared fixtures: the data set beside the checkout, a small trained version, the shipped one."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from pg import PostgresCluster, missing_reason
from sepsis_api.api.app import create_app
from sepsis_api.config import Settings
from sepsis_api.ml.store import PACKAGED_ROOT, ModelVersion, Registry

pytest_plugins = ["s3"]  # the `s3` fixture: an S3-compatible server on loopback (tests/s3.py)

REPO = Path(__file__).resolve().parents[1]
DATA_DIR = REPO.parent / "shared" / "data"
TRAIN_CSV = DATA_DIR / "Paitients_Files_Train.csv"
TEST_CSV = DATA_DIR / "Paitients_Files_Test.csv"


def _need(path: Path) -> Path:
    if not path.is_file():
        pytest.skip(f"data set not found at {path} (it lives in ../shared/data beside the repo)")
    return path


@pytest.fixture(scope="session")
def train_csv() -> Path:
    return _need(TRAIN_CSV)


@pytest.fixture(scope="session")
def test_csv() -> Path:
    return _need(TEST_CSV)


@pytest.fixture(scope="session")
def small_version(train_csv: Path, tmp_path_factory: pytest.TempPathFactory) -> ModelVersion:
    """A full training run with one CV repeat (fast), saved to a temporary registry."""
    from sepsis_api.ml.publish import save_run
    from sepsis_api.ml.train import train

    run = train(train_csv, seed=7, n_repeats=1, n_jobs=2)
    path = save_run(run, tmp_path_factory.mktemp("registry"))
    return ModelVersion.open(path)


@pytest.fixture(scope="session")
def shipped() -> ModelVersion:
    return Registry([PACKAGED_ROOT]).open()


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresCluster]:
    """A throwaway PostgreSQL server (tests/pg.py) shared by the session; see `.url`."""
    reason = missing_reason()
    if reason is not None:
        # CI must run these tests, so a missing server there is an error, not a skip.
        if os.environ.get("CI"):
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    with PostgresCluster() as cluster:
        yield cluster


@pytest.fixture(scope="session")
def live_server(tmp_path_factory: pytest.TempPathFactory):
    """One real `sepsis-api serve` process (SQLite audit log) shared by the session."""
    from server import ServerProcess

    with ServerProcess(tmp_path_factory.mktemp("live")) as srv:
        yield srv


@pytest.fixture
def make_client(tmp_path: Path) -> Iterator[Callable[..., TestClient]]:
    """make_client(**settings) -> a started TestClient; each call gets its own database."""
    with ExitStack() as stack:
        count = 0

        def make(**overrides: Any) -> TestClient:
            nonlocal count
            count += 1
            settings = Settings(_env_file=None, data_dir=tmp_path / f"data{count}", **overrides)
            client = TestClient(create_app(settings), raise_server_exceptions=False)
            return stack.enter_context(client)

        yield make


@pytest.fixture
def client(make_client: Callable[..., TestClient]) -> TestClient:
    return make_client()
