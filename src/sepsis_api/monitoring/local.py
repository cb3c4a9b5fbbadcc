"""A labelled file scored with one model, as the estimates the performance figures take."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from sepsis_api.ml.data import DEFAULT_CHUNK_ROWS, DataError, iter_batches
from sepsis_api.ml.scoring import ServedModel, score
from sepsis_api.monitoring.performance import Labelled, band_codes


def score_labelled(
    path: Path,
    model: ServedModel,
    *,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    progress: Callable[[int], None] | None = None,
) -> Labelled:
    """Every row of ``path`` (CSV or Parquet with the outcome column) scored by ``model``,
    read a chunk at a time; ``progress(rows so far)`` after each chunk. Any invalid row is a
    DataError naming it: a validation must not quietly leave patients out."""
    parts: list[tuple[np.ndarray, ...]] = []
    done = 0
    for batch in iter_batches(path, chunk_rows=chunk_rows, want_label=True):
        if batch.errors:
            more = len(batch.errors) - 1
            raise DataError(f"{path}: {batch.errors[0]}" + (f" (and {more} more)" if more else ""))
        assert batch.y is not None  # want_label: the column is there or iter_batches raised
        s = score(model, batch.X)
        parts.append((s.probability, batch.y.astype(bool), s.positive, band_codes(s.band)))
        done += len(batch)
        if progress is not None:
            progress(done)
    p, y, alert, band = (np.concatenate(column) for column in zip(*parts, strict=True))
    return Labelled(p, y, alert, band.astype(np.int8))
