"""Publishing a training run: its card, serving form, skops files, report and model card,
written as one version directory that ml/store.py can open and verify."""

from __future__ import annotations

import contextlib
import json
import platform
import shutil
import tempfile
import zipfile
from importlib import metadata
from pathlib import Path
from typing import Any

import skops.io as sio

from sepsis_api import __version__
from sepsis_api.ml import evaluate as ev
from sepsis_api.ml.flatten import compile_pipeline
from sepsis_api.ml.report import write_model_card, write_report
from sepsis_api.ml.store import CARD, CARD_FORMAT, sha256_of
from sepsis_api.ml.train import TrainingRun, reference_bins
from sepsis_api.schema import FEATURES, NOT_A_DEVICE, PROVENANCE

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


def library_versions() -> dict[str, str]:
    out = {"python": platform.python_version(), "sepsis-api": __version__}
    for dist in ("numpy", "scikit-learn", "numba", "skops", "pandas"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            out[dist] = metadata.version(dist)
    return out


def build_card(run: TrainingRun) -> dict[str, Any]:
    """The card of a training run; file hashes are added when saving."""
    y = run.data.y
    assert y is not None  # a training run's data is always labelled
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
        "drift_reference": drift_reference(run),
    }


def drift_reference(run: TrainingRun) -> dict[str, Any]:
    """What the drift monitor compares live estimates with: the training data's per-feature
    bins and each model's out-of-fold predicted-risk bins, with the card's alert rate."""
    return {
        "rows": len(run.data.X),
        "bins": "deciles of the observed values (edges are data values, repeated ones merged); "
        "bin 0 holds v < edges[0], bin i edges[i-1] <= v < edges[i], the last v >= edges[-1]; "
        "missing values are counted apart",
        "features": run.feature_bins,
        "predicted_risk": {
            name: {
                **reference_bins(r.oof),
                "source": "out-of-fold probabilities, averaged over the CV repeats",
                "alert_rate": r.operating_point["alert_rate"],
            }
            for name, r in run.candidates.items()
        },
    }


def save_run(run: TrainingRun, root: Path) -> Path:
    """Write a run's version directory under ``root`` atomically; return its path."""
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
        finish_version(tmp, card, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def finish_version(tmp: Path, card: dict[str, Any], final: Path) -> None:
    """Hash every file of the filled directory ``tmp`` into the card, write it, and put the
    directory in place as ``final`` (replacing one there whole, never half)."""
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
