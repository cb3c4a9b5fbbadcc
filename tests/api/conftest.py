"""An app per test on a fresh SQLite audit log, driven in-process by TestClient."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from sepsis_api.api.app import create_app
from sepsis_api.config import Settings


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
