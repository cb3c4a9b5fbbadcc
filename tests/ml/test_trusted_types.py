"""The skops trust list holds exactly what the stored pipelines are made of, in both directions.

Checked on every version shipped in the package and on a freshly trained one: a type an artifact
needs but the list lacks would refuse to load; a listed type no artifact contains is trust given
for nothing (the list once held ``builtins.getattr`` that way).
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import pytest
import skops.io as sio

from sepsis_api.ml.store import PACKAGED_ROOT, TRUSTED_SKLEARN_TYPES, ModelVersion


@pytest.fixture(scope="module")
def artifacts(small_version: ModelVersion) -> list[Path]:
    shipped = sorted(PACKAGED_ROOT.glob("*/*.skops"))
    assert shipped, f"no .skops file under {PACKAGED_ROOT}"
    fresh = [
        small_version.path / small_version.model_card(name)["files"]["sklearn"]
        for name in small_version.model_names
    ]
    return shipped + fresh


def _types_in(path: Path) -> set[str]:
    """Every ``module.class`` a skops file names: its schema.json, nested objects included."""
    with zipfile.ZipFile(path) as z:
        schema = json.loads(z.read("schema.json"))
    found: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("__module__"), str) and isinstance(node.get("__class__"), str):
                found.add(f"{node['__module__']}.{node['__class__']}")
            for child in node.values():
                walk(child)
        elif isinstance(node, list):
            for child in node:
                walk(child)

    walk(schema)
    return found


def test_the_list_has_no_repeats():
    assert len(set(TRUSTED_SKLEARN_TYPES)) == len(TRUSTED_SKLEARN_TYPES)


def test_every_type_an_artifact_needs_is_trusted(artifacts):
    needed = {str(p): set(sio.get_untrusted_types(file=p)) for p in artifacts}
    missing = {p: sorted(n - set(TRUSTED_SKLEARN_TYPES)) for p, n in needed.items()}
    assert not any(missing.values()), {p: m for p, m in missing.items() if m}
    assert set().union(*needed.values()), "skops trusts everything by default? check the test"


def test_every_trusted_type_occurs_in_an_artifact(artifacts):
    present = set().union(*(_types_in(p) for p in artifacts))
    assert "sklearn.pipeline.Pipeline" in present  # the walk reads the schema at all
    unused = sorted(set(TRUSTED_SKLEARN_TYPES) - present)
    assert not unused, (
        f"trusted but in no artifact: {unused}; remove them from TRUSTED_SKLEARN_TYPES "
        "or say in its comment which object needs them"
    )
