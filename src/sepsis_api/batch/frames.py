"""THE batch function: one Arrow record batch of patients in, one of scores out.

Every batch engine calls it per partition: the local engine of ``sepsis-api predict``
(``batch.offline``), Spark's ``mapInArrow`` and Dask's ``map_partitions`` (through the pandas
wrapper). A worker gets its model with ``served_model`` (from a ``ModelSource`` the driver made
with ``model_source``): loaded through the hash-verifying store loader, never unpickled, and
compiled once per process.

Input: the feature columns by code (``PRG``, ``PL``, ...) or case-study name
(``plasma_glucose``, ...), any case, as text or numbers; an optional ``ID`` column; other
columns are ignored. Validation is ``ml.data``'s (``validate_arrow``). Output: ``OUTPUT_SCHEMA``
(``ID``, ``probability``, ``label``, ``risk_band``, ``model``, ``model_version``), one row per
valid input row in input order; the ``ID`` is the row number (``first_row`` + offset) where the
input has none.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from sepsis_api.ml.data import (
    ArrowBatch,
    Batch,
    DataError,
    RowError,
    validate_arrow_batch,
    validate_frame,
)
from sepsis_api.ml.scoring import BANDS, ServedModel, open_model, score, served_model_of
from sepsis_api.ml.seen_ids import SeenIds
from sepsis_api.ml.store import CARD, ArtifactError, ModelVersion, Registry
from sepsis_api.schema import ID_COLUMN, LABELS

if TYPE_CHECKING:
    import pandas as pd  # score_pandas only: the Arrow path does without it

_OUTPUT_TYPES: dict[str, pa.DataType] = {
    ID_COLUMN: pa.string(),
    "probability": pa.float64(),
    "label": pa.string(),
    "risk_band": pa.string(),
    "model": pa.string(),
    "model_version": pa.string(),
}
OUTPUT_SCHEMA = pa.schema(_OUTPUT_TYPES)
OUTPUT_COLUMNS = tuple(OUTPUT_SCHEMA.names)
_REJECTED_TYPES: dict[str, pa.DataType] = {
    "row": pa.int64(),
    "column": pa.string(),
    "value": pa.string(),
    "reason": pa.string(),
}
REJECTED_SCHEMA = pa.schema(_REJECTED_TYPES)
_LABELS = pa.array(LABELS, pa.string())
_BANDS = pa.array(BANDS, pa.string())


class BatchResult(NamedTuple):
    """``score_rows``: the valid rows' scores (``OUTPUT_SCHEMA``) and the rows set aside."""

    scores: pa.RecordBatch
    rejected: list[RowError]


def score_batch(
    batch: pa.RecordBatch | pa.Table,
    served: ServedModel,
    *,
    first_row: int = 1,
    skip_invalid: bool = False,
    seen_ids: set[str] | SeenIds | None = None,
) -> pa.RecordBatch:
    """Score one batch of patients with ``served`` (``ml.scoring.score``): ``OUTPUT_SCHEMA``.

    ``first_row`` is the 1-based row number of the batch's first row in its file, so that errors
    and missing IDs carry the file's row numbers. An invalid row raises ``DataError`` naming its
    row, column, value and what was expected, unless ``skip_invalid`` (then it is left out; use
    ``score_rows`` to get the reasons). ``seen_ids`` carries the IDs of earlier batches of the
    same file (a duplicate ID is invalid), as a ``set`` or a ``SeenIds`` (``ml.seen_ids``:
    compact, for millions of IDs); without it duplicates are looked for in this batch.
    """
    result = score_rows(batch, served, first_row=first_row, seen_ids=seen_ids)
    if result.rejected and not skip_invalid:
        raise DataError(str(result.rejected[0]))
    return result.scores


def score_rows(
    batch: pa.RecordBatch | pa.Table,
    served: ServedModel,
    *,
    first_row: int = 1,
    seen_ids: set[str] | SeenIds | None = None,
) -> BatchResult:
    """``score_batch`` that returns the invalid rows with their reasons instead of raising."""
    valid = validate_arrow_batch(batch, first_row=first_row, seen_ids=seen_ids)
    return BatchResult(scored_batch(served, valid), valid.errors)


def score_pandas(
    df: pd.DataFrame, served: ServedModel, *, first_row: int = 1, skip_invalid: bool = False
) -> pd.DataFrame:
    """``score_batch`` for a pandas DataFrame (a Dask partition): the scores as a DataFrame."""
    try:
        batch = pa.RecordBatch.from_pandas(df, preserve_index=False)
    except (pa.ArrowInvalid, pa.ArrowTypeError):  # mixed object columns: pandas' own rules
        valid = validate_frame(df, first_row=first_row)
        if valid.errors and not skip_invalid:
            raise DataError(str(valid.errors[0])) from None
        return scored_batch(served, valid).to_pandas()
    return score_batch(batch, served, first_row=first_row, skip_invalid=skip_invalid).to_pandas()


def scored_batch(served: ServedModel, valid: Batch | ArrowBatch) -> pa.RecordBatch:
    """The scores of validated rows as ``OUTPUT_SCHEMA``: Arrow arrays throughout (labels and
    bands by index, the model's name and version as one repeated value, a missing ID as the
    row number), no Python string per row."""
    scores = score(served, valid.X)
    n = len(valid)
    ids = valid.ids if isinstance(valid, ArrowBatch) else pa.array(valid.ids, pa.string())
    if ids is None:
        ids = pc.cast(pa.array(valid.rows), pa.string())
    elif ids.null_count:
        ids = pc.coalesce(ids, pc.cast(pa.array(valid.rows), pa.string()))
    return pa.RecordBatch.from_arrays(
        [
            ids,
            pa.array(scores.probability, pa.float64()),
            _LABELS.take(scores.positive.view(np.int8)),
            _BANDS.take(pa.array(served.bands.index(scores.probability))),
            pa.repeat(pa.scalar(served.name, pa.string()), n),
            pa.repeat(pa.scalar(served.version, pa.string()), n),
        ],
        schema=OUTPUT_SCHEMA,
    )


def rejected_batch(rejected: list[RowError]) -> pa.RecordBatch:
    """Rows set aside as ``REJECTED_SCHEMA`` (row, column, value, reason)."""
    return pa.RecordBatch.from_pylist(
        [
            {"row": r.row, "column": r.column, "value": r.value, "reason": r.reason}
            for r in rejected
        ],
        schema=REJECTED_SCHEMA,
    )


# -- the model on a worker -------------------------------------------------------------------


@dataclass(frozen=True)
class ModelSource:
    """Where a worker finds one model: its version directory and name, with the version id
    and the card's SHA-256 of its compiled file (the per-process cache key). Plain strings:
    cheap to ship with a job; the model itself is loaded by each worker."""

    path: str
    model: str
    version: str
    sha256: str


def model_source(
    ref: str | None, registry: Registry, default_version: str | None = None
) -> ModelSource:
    """The model ``ref`` names (``open_model``'s rules), opened and verified here, as the
    source workers load it from."""
    served = open_model(ref, registry, default_version)
    source = _source_of(registry.version_dirs()[served.version], served.name)
    with _LOCK:
        _CACHE.setdefault(source, served)
    return source


def served_model(source: ModelSource | str | Path, model: str | None = None) -> ServedModel:
    """The model of ``source`` (a ``ModelSource``, or a version directory and a model name,
    default the version's default model), loaded once per process.

    The first call in a process opens the version with ``ModelVersion.open`` (every file's
    SHA-256 checked against the card; the serving arrays are read with ``allow_pickle=False``)
    and compiles its kernel; later calls for the same version id, model and compiled-file hash
    return the same object. A ``ModelSource`` whose directory now holds another version or
    other bytes is refused with ``ArtifactError``. Safe to call from several threads.
    """
    name: str | None
    if isinstance(source, ModelSource):
        path, name = Path(source.path), source.model
    else:
        path, name = Path(source), model
    found = _source_of(path, name)
    if isinstance(source, ModelSource) and found != source:
        raise ArtifactError(
            f"{path}: holds version {found.version} with {found.model} SHA-256 {found.sha256}, "
            f"not the {source.version} ({source.sha256}) this job was started with"
        )
    with _LOCK:
        cached = _CACHE.get(found)
        if cached is None:
            version = ModelVersion.open(path)  # every hash verified against the card
            cached = _CACHE[found] = served_model_of(version, found.model)
        return cached


_LOCK = threading.Lock()
_CACHE: dict[ModelSource, ServedModel] = {}


def _source_of(path: Path, model: str | None) -> ModelSource:
    """The cache key read from the card alone (the card's hashes are checked on a miss)."""
    try:
        card = json.loads((path / CARD).read_text(encoding="utf-8"))
        name = model or str(card["default_model"])
        rel = card["models"][name]["files"]["compiled"]
        return ModelSource(str(path), name, str(card["version"]), str(card["files"][rel]))
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ArtifactError(f"{path}: not a model version with model {model!r}: {e}") from None
