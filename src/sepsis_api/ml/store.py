"""Versioned model artifacts: one directory per training run.

    <root>/<version>/
        card.json                 metrics, threshold, bands, feature stats, library versions,
                                  the SHA-256 of every other file in the directory
        MODEL_CARD.md, report.html, plots/*.png
        <model>.npz               serving form (numeric arrays; loaded with allow_pickle=False)
        <model>.skops             the scikit-learn pipeline (skops, explicit trusted types)

Loading verifies every hash first and refuses a directory whose files do not match its card.
This module reads and verifies; it imports nothing from training (ml/publish.py writes).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import cached_property
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sepsis_api.ml.compiled import CompiledModel

if TYPE_CHECKING:
    from sepsis_api.config import Settings

CARD = "card.json"
CARD_FORMAT = "sepsis-api-card/1"
PACKAGED_ROOT = Path(str(files("sepsis_api") / "models"))
DEFAULT_POINTER = "DEFAULT"  # a text file in a registry root naming its default version

# The types the stored scikit-learn pipelines are made of, past builtins and numpy arrays and
# scalars. Six are ones skops does not trust by itself, so a pipeline cannot load without them:
# ZeroAsMissing, numpy.dtype, the two calibration internals, StratifiedKFold (the calibrator's
# cv) and Tree. The others skops 0.16 trusts by default; they are listed so loading does not
# lean on one skops version's defaults. Every entry occurs in the shipped or a freshly trained
# version and every type those need is here (tests/ml/test_trusted_types.py). Nothing here
# may fetch or call an arbitrary object: builtins.getattr, once listed, was needed by no file.
TRUSTED_SKLEARN_TYPES = [
    "sepsis_api.ml.features.ZeroAsMissing",
    "sklearn.calibration.CalibratedClassifierCV",
    "sklearn.calibration._CalibratedClassifier",
    "sklearn.calibration._SigmoidCalibration",
    "sklearn.model_selection._split.StratifiedKFold",
    "sklearn.ensemble._gb.GradientBoostingClassifier",
    "sklearn.ensemble._forest.RandomForestClassifier",
    "sklearn.tree._classes.DecisionTreeClassifier",
    "sklearn.tree._classes.DecisionTreeRegressor",
    "sklearn.tree._tree.Tree",
    "sklearn.dummy.DummyClassifier",
    "sklearn._loss.loss.HalfBinomialLoss",
    "sklearn._loss.link.LogitLink",
    "sklearn._loss.link.Interval",
    "sklearn._loss._loss.CyHalfBinomialLoss",
    "sklearn.linear_model._logistic.LogisticRegression",
    "sklearn.impute._base.SimpleImputer",
    "sklearn.preprocessing._data.StandardScaler",
    "sklearn.pipeline.Pipeline",
    "numpy.random.mtrand.RandomState",
    "numpy.dtype",
]


class ArtifactError(RuntimeError):
    """A model directory that is missing, incomplete, tampered with or of an unknown format."""


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@dataclass(frozen=True)
class ModelVersion:
    path: Path
    card: dict[str, Any]

    @property
    def version(self) -> str:
        return str(self.card["version"])

    @property
    def default_model(self) -> str:
        return str(self.card["default_model"])

    @property
    def model_names(self) -> list[str]:
        return list(self.card["models"])

    @classmethod
    def open(cls, path: Path) -> ModelVersion:
        """Read the card and verify every listed file's hash (and that none is unlisted)."""
        card_path = path / CARD
        if not card_path.is_file():
            raise ArtifactError(f"{path}: no {CARD}; not a model version directory")
        try:
            card = json.loads(card_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise ArtifactError(f"{card_path}: unreadable card: {e}") from None
        if not isinstance(card, dict) or card.get("format") != CARD_FORMAT:
            raise ArtifactError(f"{card_path}: unknown card format (expected {CARD_FORMAT})")
        listed = card.get("files", {})
        for rel, digest in listed.items():
            f = path / rel
            if not f.is_file():
                raise ArtifactError(f"{path}: file {rel} listed in the card is missing")
            if sha256_of(f) != digest:
                raise ArtifactError(
                    f"{f}: SHA-256 does not match the card; the artifact was altered, refusing "
                    "to load it"
                )
        unlisted = sorted(
            str(p.relative_to(path))
            for p in path.rglob("*")
            if p.is_file() and p.name != CARD and str(p.relative_to(path)) not in listed
        )
        if unlisted:
            raise ArtifactError(f"{path}: files not in the card: {', '.join(unlisted)}")
        for name, m in card.get("models", {}).items():
            for rel in m.get("files", {}).values():
                if rel not in listed:
                    raise ArtifactError(f"{path}: model {name} file {rel} has no hash in the card")
        return cls(path=path, card=card)

    def model_card(self, name: str) -> dict[str, Any]:
        try:
            model: dict[str, Any] = self.card["models"][name]  # card.json is JSON
            return model
        except KeyError:
            raise ArtifactError(
                f"version {self.version} has no model {name!r}; it has "
                f"{', '.join(self.model_names)}"
            ) from None

    def load_compiled(self, name: str) -> CompiledModel:
        rel = self.model_card(name)["files"]["compiled"]
        try:
            return CompiledModel.load(self.path / rel)
        except (OSError, ValueError, KeyError) as e:
            raise ArtifactError(f"{self.path / rel}: cannot load: {e}") from None

    def load_sklearn(self, name: str) -> Any:
        """The reference scikit-learn pipeline, loaded by skops with an explicit trust list."""
        import skops.io as sio

        path = self.path / self.model_card(name)["files"]["sklearn"]
        untrusted = set(sio.get_untrusted_types(file=path)) - set(TRUSTED_SKLEARN_TYPES)
        if untrusted:
            raise ArtifactError(f"{path}: refusing untrusted types {sorted(untrusted)}")
        return sio.load(path, trusted=TRUSTED_SKLEARN_TYPES)

    @cached_property
    def size_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.path.rglob("*") if p.is_file())


class Registry:
    """Model versions found under one or more roots (the user's first, the shipped one last)."""

    def __init__(self, roots: list[Path]) -> None:
        self.roots = [Path(r) for r in roots]

    def version_dirs(self) -> dict[str, Path]:
        found: dict[str, Path] = {}
        for root in self.roots:
            if root.is_dir():
                for d in sorted(root.iterdir()):
                    if (d / CARD).is_file() and d.name not in found:
                        found[d.name] = d
        return found

    def versions(self) -> list[str]:
        return sorted(self.version_dirs(), reverse=True)

    def default_version(self) -> str:
        for root in self.roots:
            pointer = root / DEFAULT_POINTER
            if pointer.is_file():
                return pointer.read_text(encoding="utf-8").strip()
        versions = self.versions()
        if not versions:
            raise ArtifactError(f"no model versions under {', '.join(map(str, self.roots))}")
        return versions[0]

    def cards(self) -> dict[str, dict[str, Any]]:
        """Each version's card, newest first, read without verifying the files (for listings;
        ``open`` verifies)."""
        out: dict[str, dict[str, Any]] = {}
        for version, path in sorted(self.version_dirs().items(), reverse=True):
            try:
                out[version] = json.loads((path / CARD).read_text(encoding="utf-8"))
            except (OSError, ValueError) as e:
                raise ArtifactError(f"{path / CARD}: unreadable card: {e}") from None
        return out

    def set_default(self, version: str, root: Path) -> None:
        """Point ``root``'s DEFAULT file at ``version``."""
        (root / DEFAULT_POINTER).write_text(version + "\n", encoding="utf-8")

    def open(self, version: str | None = None) -> ModelVersion:
        version = version or self.default_version()
        dirs = self.version_dirs()
        if version not in dirs:
            raise ArtifactError(
                f"unknown model version {version!r}; known: {', '.join(self.versions()) or 'none'}"
            )
        return ModelVersion.open(dirs[version])


def registry_for(settings: Settings) -> Registry:
    """The settings' model directory first (if any), then the shipped models."""
    roots = [settings.model_dir] if settings.model_dir else []
    return Registry([*roots, PACKAGED_ROOT])
