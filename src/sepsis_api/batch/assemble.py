"""The driver's half of ``sepsis-api predict --engine spark|dask``: the tasks' row results,
read back in partition order, written as the local engine writes its output.

Each task reports every row of its partition in order (``partitions.row_results``), so the
driver's running count is the file row number. Here the rows get those numbers (in errors, in
``OUTPUT.rejected.csv`` and as the ID of a row that has none), IDs are checked for duplicates
across the whole file, and the scored rows go to the output through the local engine's writer:
the same columns, formatting, atomic replacement and side file as ``offline.score_file``.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Generator, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from sepsis_api.batch.frames import OUTPUT_SCHEMA, BatchResult
from sepsis_api.batch.offline import OfflineResult, write_scores
from sepsis_api.batch.partitions import SCORE_FIELDS
from sepsis_api.ml.data import RowError
from sepsis_api.ml.locations import is_url
from sepsis_api.schema import ID_COLUMN


def assemble(
    parts: Iterable[pa.RecordBatch],
    input_path: str | Path,
    output: str | Path,
    *,
    skip_invalid: bool = False,
    progress: Callable[[int], None] | None = None,
) -> OfflineResult:
    """Write the scored rows of ``parts`` (``ROW_RESULT_SCHEMA``, in file order) to ``output``
    with the local engine's writer (``offline.write_scores``).

    Raises ``DataError`` naming the file row, column and value of the first invalid row
    (nothing written) unless ``skip_invalid``.
    """
    return write_scores(
        numbered(parts), input_path, output, skip_invalid=skip_invalid, progress=progress
    )


def numbered(parts: Iterable[pa.RecordBatch]) -> Generator[BatchResult, None, None]:
    """Each part's scored rows (``OUTPUT_SCHEMA``) and invalid rows, with file row numbers."""
    seen: set[str] = set()
    rows_before = 0
    for part in parts:
        given = part.column("given_id").to_pylist()
        errors = {
            i: RowError(rows_before + i + 1, c, v, r)
            for i, (c, v, r) in enumerate(
                zip(
                    part.column("error_column").to_pylist(),
                    part.column("error_value").to_pylist(),
                    part.column("error_reason").to_pylist(),
                    strict=True,
                )
            )
            if r is not None
        }
        _duplicates(given, seen, rows_before, errors)
        keep = np.ones(part.num_rows, dtype=bool)
        keep[list(errors)] = False
        ids = [g if g is not None else str(rows_before + i + 1) for i, g in enumerate(given)]
        scored = pa.RecordBatch.from_arrays(
            [pa.array(ids, pa.string()), *(part.column(f.name) for f in SCORE_FIELDS)],
            schema=OUTPUT_SCHEMA,
        )
        yield BatchResult(scored.filter(pa.array(keep)), [errors[i] for i in sorted(errors)])
        rows_before += part.num_rows


def _duplicates(
    given: list[str | None], seen: set[str], rows_before: int, errors: dict[int, RowError]
) -> None:
    """The local engine's rule: an ID seen on an earlier row (valid or not) makes a row invalid,
    unless it is invalid for another reason already."""
    present = [g for g in given if g is not None]
    if len(set(present)) == len(present) and seen.isdisjoint(present):
        seen.update(present)
        return
    for i, g in enumerate(given):
        if g is None:
            continue
        if g in seen:
            errors.setdefault(i, RowError(rows_before + i + 1, ID_COLUMN, g, "duplicate ID"))
        seen.add(g)


@contextmanager
def parts_dir(output: str | Path) -> Iterator[Path]:
    """A temporary directory for the tasks' parts, removed afterwards: beside ``output``, or in
    the temporary directory for an ``s3://`` output (which the driver uploads when complete)."""
    if is_url(output):
        parent, name = Path(tempfile.gettempdir()), str(output).rsplit("/", 1)[-1]
    else:
        parent, name = Path(output).parent, Path(output).name
        parent.mkdir(parents=True, exist_ok=True)
    parts = Path(tempfile.mkdtemp(prefix=f".{name}.parts-", dir=parent))
    try:
        yield parts
    finally:
        shutil.rmtree(parts, ignore_errors=True)


def read_parts(directory: Path) -> Iterator[pa.RecordBatch]:
    """The Parquet parts an engine wrote to ``directory``, in partition order: their names
    carry the partition number, zero-padded (Spark's ``part-00000-...``, ours for Dask)."""
    for path in sorted(directory.glob("part-*.parquet")):
        yield from pq.ParquetFile(path).iter_batches()
