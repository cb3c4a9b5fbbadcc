"""The model as shipped to Spark and Dask workers: bytes only, unpacked once, verified by the
store's loader (a changed byte is refused there), never a pickled model object."""

from __future__ import annotations

import dataclasses
import pickle
import pickletools
from pathlib import Path

import pytest

from sepsis_api.batch.bundle import ModelBundle, bundle_for
from sepsis_api.batch.frames import served_model
from sepsis_api.ml.store import ArtifactError


@pytest.fixture(scope="module")
def bundle() -> ModelBundle:
    return bundle_for("random_forest")


def test_the_pickled_bundle_names_no_class_but_its_own(bundle: ModelBundle) -> None:
    names = [
        arg
        for op, arg, _ in pickletools.genops(pickle.dumps(bundle))
        if op.name in {"GLOBAL", "SHORT_BINUNICODE", "BINUNICODE"} and isinstance(arg, str)
    ]
    assert "sepsis_api.batch.bundle" in names and "ModelBundle" in names
    assert not [n for n in names if n.startswith(("sklearn", "numba", "sepsis_api.ml"))]
    assert {rel for rel, _ in bundle.files} >= {"card.json", "random_forest.npz"}


def test_unpacked_once_and_loaded_through_the_hash_checks(
    bundle: ModelBundle, tmp_path: Path
) -> None:
    first = bundle.unpack(tmp_path)
    assert bundle.unpack(tmp_path) == first  # found, not written again
    served = served_model(first, bundle.model)
    assert (served.name, served.version) == (bundle.model, bundle.version)
    assert [p.name for p in first.parent.iterdir()] == [bundle.version]  # no staging left


def test_a_changed_byte_is_refused_by_the_store_loader(bundle: ModelBundle, tmp_path: Path) -> None:
    files = tuple(
        (rel, data[:-1] + bytes([data[-1] ^ 1]) if rel == "random_forest.npz" else data)
        for rel, data in bundle.files
    )
    path = dataclasses.replace(bundle, files=files).unpack(tmp_path)
    with pytest.raises(ArtifactError, match="SHA-256 does not match the card"):
        served_model(path, bundle.model)


def test_a_card_other_than_the_one_the_job_was_built_with_is_refused(
    bundle: ModelBundle, tmp_path: Path
) -> None:
    files = tuple((rel, data + b" " if rel == "card.json" else data) for rel, data in bundle.files)
    with pytest.raises(ArtifactError, match="does not match the digest taken"):
        dataclasses.replace(bundle, files=files).unpack(tmp_path)


def test_a_path_outside_the_version_directory_is_refused(
    bundle: ModelBundle, tmp_path: Path
) -> None:
    files = (*bundle.files, ("../escape.txt", b"x"))
    with pytest.raises(ArtifactError, match="unsafe path"):
        dataclasses.replace(bundle, files=files).unpack(tmp_path / "root")
    assert not list(tmp_path.rglob("escape.txt"))
