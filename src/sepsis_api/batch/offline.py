"""Score a file of patients offline: CSV or Parquet in, CSV or Parquet out.

``score_file`` is the engine behind ``sepsis-api predict``. The input is read and validated a
chunk at a time (``ml.data.iter_batches``); each chunk is scored with THE scoring function
(``ml.scoring.score``) and appended to a temporary file beside the output, which replaces the
output only when every chunk has been written: the output is written whole or not at all, and
an existing output file is left as it was when scoring fails.

An invalid row stops the run with a ``DataError`` naming file, row, column and value, unless
``skip_invalid``: then invalid rows go to ``OUTPUT.rejected.csv`` (row, column, value, reason)
and the rest are scored; a side file left by an earlier run is removed when none is rejected.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from sepsis_api.batch.frames import OUTPUT_COLUMNS
from sepsis_api.ml.data import DEFAULT_CHUNK_ROWS, Batch, DataError, RowError, iter_batches
from sepsis_api.ml.scoring import ServedModel, score

# Fixed Parquet column types: a chunk whose rows were all set aside has no values to infer
# them from, and every chunk of one file must have the same schema.
_PARQUET_SCHEMA = pa.schema(
    [(c, pa.float64() if c == "probability" else pa.large_string()) for c in OUTPUT_COLUMNS]
)
_REJECTED_COLUMNS = ("row", "column", "value", "reason")
PARQUET_SUFFIXES = {".parquet", ".pq"}


@dataclass(frozen=True)
class OfflineResult:
    """What ``score_file`` did: rows written to ``output`` and rows set aside."""

    output: Path
    scored: int
    rejected: list[RowError]
    rejected_path: Path | None  # the side file, when rows were set aside


def rejected_path_for(output: Path) -> Path:
    """Where ``skip_invalid`` puts the rows it sets aside: OUTPUT.rejected.csv."""
    return output.with_name(output.stem + ".rejected.csv")


def is_parquet(path: Path) -> bool:
    return path.suffix.lower() in PARQUET_SUFFIXES


def score_file(
    input_path: Path,
    output: Path,
    served: ServedModel,
    *,
    skip_invalid: bool = False,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    progress: Callable[[int], None] | None = None,
) -> OfflineResult:
    """Score every valid row of ``input_path`` with ``served`` into ``output``, in input order.

    Output columns are ``OUTPUT_COLUMNS`` (the ID is the row number when the file has none);
    CSV probabilities have six decimals. ``progress`` is called after each chunk with the rows
    scored so far. Raises ``DataError`` (nothing written) for an unreadable file or, without
    ``skip_invalid``, for the first invalid row.
    """
    batches = iter_batches(input_path, chunk_rows=chunk_rows)
    scored = ((_scored_frame(served, b), b.errors) for b in batches)
    return write_scores(scored, input_path, output, skip_invalid=skip_invalid, progress=progress)


def write_scores(
    chunks: Iterable[tuple[pd.DataFrame | pa.RecordBatch, list[RowError]]],
    input_path: Path | str,
    output: Path,
    *,
    skip_invalid: bool = False,
    progress: Callable[[int], None] | None = None,
) -> OfflineResult:
    """Write scored chunks (``OUTPUT_COLUMNS``, each with the rows it set aside) to ``output``
    as ``score_file`` does, for this engine and the distributed ones (``batch.assemble``)."""
    rejected: list[RowError] = []
    side = rejected_path_for(output)
    scored = 0
    with _atomic_path(output) as tmp:
        with _TableWriter(tmp, parquet=is_parquet(output)) as writer:
            for frame, errors in chunks:
                if errors and not skip_invalid:
                    raise DataError(f"{input_path}: {errors[0]}")
                rejected.extend(errors)
                if isinstance(frame, pa.RecordBatch):
                    frame = frame.to_pandas()
                writer.write(frame)
                scored += len(frame)
                if progress is not None:
                    progress(scored)
        if rejected:  # written before the output is replaced: both files or neither
            with _atomic_path(side) as side_tmp:
                pd.DataFrame(
                    [(r.row, r.column, r.value, r.reason) for r in rejected],
                    columns=list(_REJECTED_COLUMNS),
                ).to_csv(side_tmp, index=False)
    if not rejected and skip_invalid and side.exists():
        side.unlink()  # from an earlier run; this one set nothing aside
    return OfflineResult(output, scored, rejected, side if rejected else None)


def _scored_frame(served: ServedModel, batch: Batch) -> pd.DataFrame:
    scores = score(served, batch.X)
    ids = [
        i if i is not None else str(r) for i, r in zip(batch.ids, batch.rows.tolist(), strict=True)
    ]
    n = len(batch)
    return pd.DataFrame(
        {
            "ID": pd.Series(ids, dtype="str"),
            "probability": scores.probability,
            "label": scores.label,
            "risk_band": scores.band,
            "model": np.full(n, served.name),
            "model_version": np.full(n, served.version),
        },
        columns=list(OUTPUT_COLUMNS),
    )


@contextmanager
def _atomic_path(final: Path) -> Iterator[Path]:
    """A temporary path beside ``final`` that replaces it only if the block succeeds."""
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, final)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


class _TableWriter:
    """Appends DataFrames to one CSV or Parquet file, chunk by chunk."""

    def __init__(self, path: Path, *, parquet: bool) -> None:
        self._parquet: pq.ParquetWriter | None = None
        self._csv: TextIO | None = None
        if parquet:
            self._parquet = pq.ParquetWriter(path, _PARQUET_SCHEMA)
        else:
            self._csv = open(path, "w", encoding="utf-8", newline="")  # noqa: SIM115
        self._header = True

    def write(self, frame: pd.DataFrame) -> None:
        if self._parquet is not None:
            table = pa.Table.from_pandas(frame, schema=_PARQUET_SCHEMA, preserve_index=False)
            self._parquet.write_table(table)
        elif self._csv is not None:
            frame.to_csv(
                self._csv,
                header=self._header,
                index=False,
                float_format="%.6f",
                lineterminator="\n",
            )
        self._header = False

    def __enter__(self) -> _TableWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._parquet is not None:
            self._parquet.close()
        if self._csv is not None:
            self._csv.close()
