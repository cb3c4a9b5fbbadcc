"""A version recalibrated to a local population: the parent's fitted models, a new map.

Model updating as in the clinical literature (Steyerberg, Clinical Prediction Models, ch. 20;
Van Calster et al. 2016): each model keeps its fitted pipeline and gets a logistic
recalibration map ``p' = sigmoid(a + b * logit(p))`` fitted on the local labelled data
(``a`` alone for recalibration-in-the-large). The threshold and the risk bands are then chosen
again on the local data by the training rules (ml/evaluate.py), and the operating point is
bootstrapped there. The result is an ordinary version directory: a card with every file's
hash, the serving arrays (with the map, ml/compiled.py), the parent's skops pipelines and
training report, and a model card that names the parent, the method and the data's SHA-256.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import shutil
import tempfile
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from sepsis_api import __version__
from sepsis_api.ml import evaluate as ev
from sepsis_api.ml.data import Batch
from sepsis_api.ml.publish import finish_version, library_versions
from sepsis_api.ml.report import write_model_card
from sepsis_api.ml.scoring import Predictor, score
from sepsis_api.ml.store import ModelVersion

METHODS = ("intercept", "logistic")


@dataclasses.dataclass(frozen=True)
class Map:
    """One model's fitted map on its current output, with the slope's interval (if fitted)."""

    intercept: float
    slope: float
    slope_low: float | None = None
    slope_high: float | None = None


def recalibrated_version_name(parent: str, method: str, data_sha256: str) -> str:
    """Date plus a digest of what determines the result (parent, method, data, code)."""
    key = f"recalibrate:{parent}:{method}:{data_sha256}:{__version__}"
    return f"{datetime.now(UTC):%Y%m%d}-{hashlib.sha256(key.encode()).hexdigest()[:8]}"


def save_recalibrated(
    parent: ModelVersion,
    maps: Mapping[str, Map],
    data: Batch,
    *,
    method: str,
    data_file: str,
    data_sha256: str,
    root: Path,
    seed: int = 42,
) -> Path:
    """Write the recalibrated version of ``parent`` under ``root`` atomically; its path.
    ``maps`` holds a map for every model of the parent, fitted to its output on ``data``."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    if set(maps) != set(parent.model_names):
        raise ValueError(f"maps for {sorted(maps)}, but the version has {parent.model_names}")
    y = data.y
    if y is None:
        raise ValueError("the local data have no outcome column")
    version = recalibrated_version_name(parent.version, method, data_sha256)
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{version}-", dir=root))
    try:
        card = copy.deepcopy(parent.card)
        served = Predictor(parent)
        for name, m in maps.items():
            compiled = parent.load_compiled(name)
            # A map fitted on an already recalibrated model composes with the one it has.
            new = dataclasses.replace(
                compiled,
                recal_intercept=m.intercept + m.slope * compiled.recal_intercept,
                recal_slope=m.slope * compiled.recal_slope,
            )
            files = card["models"][name]["files"]
            new.save(tmp / files["compiled"])
            shutil.copy2(parent.path / files["sklearn"], tmp / files["sklearn"])
            model = dataclasses.replace(served.models[name], version=version, compiled=new)
            p = score(model, data.X).probability
            threshold = ev.threshold_for_sensitivity(y, p, ev.TARGET_SENSITIVITY)
            bands = ev.choose_bands(y, p, threshold)
            card["models"][name].update(
                threshold=threshold,
                risk_bands={"moderate_from": bands.moderate_from, "high_from": bands.high_from},
                operating_point=ev.bootstrap_operating(y, p, threshold, seed=seed),
                recalibration=_map_card(new, m),
            )
        for extra in ("report.html", "plots"):  # the training report of the same fitted models
            source = parent.path / extra
            if source.is_dir():
                shutil.copytree(source, tmp / extra)
            elif source.is_file():
                shutil.copy2(source, tmp / extra)
        _describe(card, parent, version, method, data_file, data_sha256, y)
        write_model_card(card, tmp)
        finish_version(tmp, card, root / version)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return root / version


def _map_card(compiled: Any, m: Map) -> dict[str, Any]:
    return {
        "intercept": compiled.recal_intercept,
        "slope": compiled.recal_slope,
        "fitted": {
            "intercept": m.intercept,
            "slope": m.slope,
            "slope_interval": None
            if m.slope_low is None
            else {"low": m.slope_low, "high": m.slope_high},
        },
    }


def _describe(
    card: dict[str, Any],
    parent: ModelVersion,
    version: str,
    method: str,
    data_file: str,
    data_sha256: str,
    y: np.ndarray,
) -> None:
    """The card's own fields for a recalibrated version (in place)."""
    what = (
        "recalibration-in-the-large (intercept, slope 1)"
        if method == "intercept"
        else "logistic recalibration (intercept and slope)"
    )
    card.update(
        version=version,
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        parent_version=parent.version,
        libraries=library_versions(),
        recalibration={
            "method": method,
            "description": what + " of each model's log-odds, fitted by maximum likelihood",
            "parent_version": parent.version,
            "data": {
                "file": data_file,
                "sha256": data_sha256,
                "rows": len(y),
                "positives": int(y.sum()),
            },
        },
    )
    validation = card["validation"]
    validation["threshold_rule"] += " on the local data, after recalibration"
    validation["operating_point_interval"] = (
        "95% percentile bootstrap (1000 resamples) of the recalibrated estimates on the local data"
    )
    card["limitations"] = [
        *card["limitations"],
        f"Recalibrated ({what}) from version {parent.version} on {len(y)} local rows "
        f"({data_file}, SHA-256 {data_sha256}). The threshold, the bands and the operating "
        "point were re-estimated on those same rows, so they are in-sample there; the "
        "cross-validation metrics are the parent's, before recalibration.",
    ]
