"""Versioned model artifacts: one directory per training run.

    <root>/<version>/
        card.json                 metrics, threshold, bands, feature stats, library versions,
                                  the SHA-256 of every other file in the directory
        MODEL_CARD.md, report.html, plots/*.png
        <model>.npz               serving form (numeric arrays; loaded with allow_pickle=False)
        <model>.skops             the scikit-learn pipeline (skops, explicit trusted types)

Loading verifies every hash first and refuses a directory whose files do not match its card.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import platform
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from functools import cached_property
from importlib import metadata
from importlib.resources import files
from pathlib import Path
from typing import Any

from sepsis_api import __version__
from sepsis_api.ml import evaluate as ev
from sepsis_api.ml.compiled import CompiledModel
from sepsis_api.schema import FEATURES, NOT_A_DEVICE, PROVENANCE

CARD = "card.json"
CARD_FORMAT = "sepsis-api-card/1"
PACKAGED_ROOT = Path(str(files("sepsis_api") / "models"))
DEFAULT_POINTER = "DEFAULT"  # a text file in a registry root naming its default version

# Everything a stored scikit-learn pipeline may contain beyond skops' own safe defaults.
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
    "numpy.random._mt19937.MT19937",
    "numpy.random.mtrand.RandomState",
    "builtins.getattr",
    "collections.OrderedDict",
    "numpy.dtype",
]

INTENDED_USE = (
    "Research and teaching demonstration of a calibrated, explained risk service with an "
    "audit trail. Not for use in patient care."
)


def limitations(rows: int) -> list[str]:
    zero_missing = ", ".join(f.code for f in FEATURES if f.zero_means_missing)
    return [
        NOT_A_DEVICE,
        PROVENANCE,
        f"Trained on {rows} rows from one source; the intervals are wide and the estimates "
        "have not been validated on any external or prospective cohort.",
        f"Zeros in {zero_missing} are read as 'not measured' and imputed with the training "
        "median; features that are often missing carry little information.",
        "The threshold, the risk bands and their intervals come from the same data's "
        "out-of-fold predictions (averaged over the CV repeats), so the sensitivity at the "
        "threshold is optimistic by construction; they need re-estimation on the population "
        "where the model would be used.",
    ]


class ArtifactError(RuntimeError):
    """A model directory that is missing, incomplete, tampered with or of an unknown format."""


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def library_versions() -> dict[str, str]:
    out = {"python": platform.python_version(), "sepsis-api": __version__}
    for dist in ("numpy", "scikit-learn", "numba", "skops", "pandas"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            out[dist] = metadata.version(dist)
    return out


# -- writing ---------------------------------------------------------------------------------
def build_card(run: Any) -> dict[str, Any]:
    """The card of a TrainingRun (see ml/train.py); file hashes are added when saving."""
    y = run.data.y
    models = {}
    for name, r in run.candidates.items():
        models[name] = {
            "display_name": r.display_name,
            "calibration": r.calibration,
            "metrics": {k: v.as_dict() for k, v in r.metrics().items()},
            "uncalibrated_metrics": {
                m: ev.interval(s).as_dict() for m, s in r.uncalibrated_fold_scores.items()
            },
            "threshold": r.threshold,
            "operating_point": r.operating_point,
            "risk_bands": {"moderate_from": r.bands.moderate_from, "high_from": r.bands.high_from},
            "importance": r.importance,
            "files": {"compiled": f"{name}.npz", "sklearn": f"{name}.skops"},
        }
    return {
        "format": CARD_FORMAT,
        "version": run.version,
        "created_at": run.created_at,
        "default_model": run.default,
        "seed": run.seed,
        "intended_use": INTENDED_USE,
        "limitations": limitations(len(y)),
        "provenance": PROVENANCE,
        "features": [f.code for f in FEATURES],
        "training_data": {
            "file": run.data_path.name,
            "sha256": run.data_sha256,
            "rows": len(y),
            "positives": int(y.sum()),
            "feature_stats": run.feature_stats,
        },
        "validation": {
            "method": "repeated stratified k-fold cross-validation",
            "splits": run.n_splits,
            "repeats": run.n_repeats,
            "interval": "2.5th-97.5th percentile of the per-fold scores",
            "operating_point_interval": "95% percentile bootstrap (1000 resamples) of the "
            "out-of-fold predictions",
            "threshold_rule": "highest threshold with out-of-fold sensitivity >= "
            f"{ev.TARGET_SENSITIVITY:.2f}",
            "band_rule": "low below the highest cut with sensitivity >= "
            f"{ev.LOW_BAND_SENSITIVITY:.2f}; high from the lowest cut with "
            f"specificity >= {ev.HIGH_BAND_SPECIFICITY:.2f}; moderate between",
        },
        "libraries": library_versions(),
        "models": models,
    }


def save_run(run: Any, root: Path) -> Path:
    """Write a run's version directory under ``root`` atomically; return its path."""
    import skops.io as sio

    from sepsis_api.ml.compiled import compile_pipeline
    from sepsis_api.ml.report import write_model_card, write_report

    root.mkdir(parents=True, exist_ok=True)
    final = root / run.version
    tmp = Path(tempfile.mkdtemp(prefix=f".{run.version}-", dir=root))
    try:
        card = build_card(run)
        for name, r in run.candidates.items():
            compile_pipeline(r.fitted).save(tmp / f"{name}.npz")
            sio.dump(r.fitted, tmp / f"{name}.skops", compression=zipfile.ZIP_DEFLATED)
        write_report(run, card, tmp)
        write_model_card(card, tmp)
        card["files"] = {
            str(p.relative_to(tmp)): sha256_of(p) for p in sorted(tmp.rglob("*")) if p.is_file()
        }
        (tmp / CARD).write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
        tmp.chmod(0o755)  # mkdtemp makes it owner-only; servers may run as another user
        if final.exists():  # same data, seed and settings: replace, never half-replace
            old = final.with_name(f".{final.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            final.rename(old)
            tmp.rename(final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


# -- reading ---------------------------------------------------------------------------------
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
            return self.card["models"][name]
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

    def open(self, version: str | None = None) -> ModelVersion:
        version = version or self.default_version()
        dirs = self.version_dirs()
        if version not in dirs:
            raise ArtifactError(
                f"unknown model version {version!r}; known: {', '.join(self.versions()) or 'none'}"
            )
        return ModelVersion.open(dirs[version])
