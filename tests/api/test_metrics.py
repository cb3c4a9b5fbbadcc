"""``share_between_workers``: the folder through which worker processes share their metrics."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sepsis_api.api.metrics import MULTIPROC_ENV, share_between_workers


def test_a_given_folder_is_emptied_of_an_earlier_runs_values(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "metrics"
    folder.mkdir()
    (folder / "counter_123.db").write_bytes(b"stale")
    (folder / "notes.txt").write_text("not ours")
    monkeypatch.setenv(MULTIPROC_ENV, str(folder))
    assert share_between_workers() == folder
    assert sorted(p.name for p in folder.iterdir()) == ["notes.txt"]


def test_without_one_a_fresh_folder_is_made_and_handed_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(MULTIPROC_ENV, "")  # so that the variable is unset again afterwards
    monkeypatch.delenv(MULTIPROC_ENV)
    folder = share_between_workers()
    try:
        assert os.environ[MULTIPROC_ENV] == str(folder)
        assert folder.is_dir() and not any(folder.iterdir())
    finally:
        folder.rmdir()
