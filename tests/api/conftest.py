"""Fixtures of the API tests."""

from __future__ import annotations

import shutil

import pytest


@pytest.fixture
def registry(tmp_path, shipped, small_version):
    """A model directory holding two versions: the shipped one and a small retrained one."""
    root = tmp_path / "models"
    for v in (shipped, small_version):
        shutil.copytree(v.path, root / v.version)
    (root / "DEFAULT").write_text(shipped.version)
    return root
