"""Model versions load only when every file matches the card; nothing is unpickled."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from sepsis_api.ml.store import ArtifactError, ModelVersion, Registry


@pytest.fixture
def copy_of(small_version: ModelVersion, tmp_path: Path) -> Path:
    dst = tmp_path / small_version.version
    shutil.copytree(small_version.path, dst)
    return dst


def test_a_saved_version_has_every_artifact_and_hash(small_version):
    files = small_version.card["files"]
    for name in small_version.model_names:
        assert f"{name}.npz" in files and f"{name}.skops" in files
    for must in ("report.html", "MODEL_CARD.md"):
        assert must in files
    assert any(f.startswith("plots/") and f.endswith(".png") for f in files)
    card = small_version.card
    assert card["training_data"]["rows"] == 599
    assert len(card["training_data"]["sha256"]) == 64
    assert {"numpy", "scikit-learn", "python"} <= set(card["libraries"])
    assert set(card["training_data"]["feature_stats"]) == set(card["features"])


@pytest.mark.parametrize(
    "victim", ["logistic_regression.npz", "random_forest.skops", "MODEL_CARD.md"]
)
def test_tampered_file_is_refused(copy_of, victim):
    path = copy_of / victim
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match=f"{victim}: SHA-256 does not match"):
        ModelVersion.open(copy_of)


def test_missing_file_is_refused(copy_of):
    (copy_of / "random_forest.npz").unlink()
    with pytest.raises(ArtifactError, match=r"random_forest\.npz listed in the card is missing"):
        ModelVersion.open(copy_of)


def test_a_file_without_a_hash_in_the_card_is_refused(copy_of):
    card = json.loads((copy_of / "card.json").read_text())
    del card["files"]["gradient_boosting.npz"]
    (copy_of / "card.json").write_text(json.dumps(card))
    with pytest.raises(ArtifactError, match=r"files not in the card: gradient_boosting\.npz"):
        ModelVersion.open(copy_of)


def test_unknown_card_format_is_refused(copy_of):
    card = json.loads((copy_of / "card.json").read_text())
    card["format"] = "something-else/9"
    (copy_of / "card.json").write_text(json.dumps(card))
    with pytest.raises(ArtifactError, match="unknown card format"):
        ModelVersion.open(copy_of)


def test_a_directory_without_card_is_not_a_version(tmp_path):
    with pytest.raises(ArtifactError, match=r"no card\.json"):
        ModelVersion.open(tmp_path)


def test_untrusted_type_in_skops_file_is_refused(copy_of):
    import hashlib

    import skops.io as sio

    from sepsis_api.ml.features import ZeroAsMissing

    class Sneaky(ZeroAsMissing):
        pass

    path = copy_of / "logistic_regression.skops"
    sio.dump(Sneaky(), path)
    card = json.loads((copy_of / "card.json").read_text())
    card["files"]["logistic_regression.skops"] = hashlib.sha256(path.read_bytes()).hexdigest()
    (copy_of / "card.json").write_text(json.dumps(card))
    version = ModelVersion.open(copy_of)  # hashes match: the card was re-signed
    with pytest.raises(ArtifactError, match="refusing untrusted types"):
        version.load_sklearn("logistic_regression")


def test_registry_lists_and_resolves_versions(small_version, shipped, tmp_path):
    reg = Registry([small_version.path.parent, shipped.path.parent])
    assert small_version.version in reg.versions()
    assert shipped.version in reg.versions()
    with pytest.raises(ArtifactError, match="unknown model version 'nope'"):
        reg.open("nope")
    (tmp_path / "DEFAULT").write_text(small_version.version)
    assert Registry([tmp_path, small_version.path.parent]).default_version() == (
        small_version.version
    )


def test_shipped_default_is_the_pointer_and_loads(shipped):
    pointer = (shipped.path.parent / "DEFAULT").read_text().strip()
    assert shipped.version == pointer
    assert shipped.default_model in shipped.model_names
