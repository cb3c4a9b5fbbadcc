"""Score a file of patients offline (the local engine): CSV or Parquet in, CSV or Parquet out,
local paths or ``s3://`` URLs.

``score_file`` is the engine behind ``sepsis-api predict``. The input is streamed by pyarrow
(``ml.data.read_tables``: CSV with the streaming reader, the features typed as numbers and the
text reader taking over where a cell needs it; Parquet batch by batch) in chunks of
``chunk_rows`` rows; each chunk is validated and scored by THE batch function
(``batch.frames.score_rows``, over ``ml.scoring.score``) and written (CSV by
``batch.csv_out``, byte for byte pyarrow's CSV writer; Parquet by pyarrow's writer). Three
threads overlap: the next chunk is read while one is scored and the previous one written
(pyarrow and the compiled kernels release the GIL; the kernels use both cores for a chunk).
Memory is bounded by a few chunks, not by the file: what grows with the file is the IDs seen
(an ID may not repeat; ``ml.seen_ids.SeenIds``: nothing while IDs rise, else about the ID's
bytes + 8 plus a hash slot per ID) and the list of rows set aside.

The output is written whole or not at all: to a temporary file beside it that replaces it only
when every chunk has been written; for an ``s3://`` output, to a local temporary file that is
uploaded once complete (an S3 object appears only when its upload completes, so a run that
fails leaves no object and an existing one as it was).

An invalid row stops the run with a ``DataError`` naming file, row, column and value, unless
``skip_invalid``: then invalid rows go to ``OUTPUT.rejected.csv`` (row, column, value, reason)
and the rest are scored; a side file left by an earlier run is removed when none is rejected.

CSV output has the probability with six decimals (1e-6 is far below any difference the
calibration can tell; Parquet keeps the float64); text columns are quoted (pyarrow's writer
quotes every string, which also keeps an ID with a comma or a quote intact).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Generator, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack, closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from sepsis_api.batch.csv_out import ScoresCsv
from sepsis_api.batch.frames import OUTPUT_SCHEMA, BatchResult, rejected_batch, score_rows
from sepsis_api.ml.data import DEFAULT_CHUNK_ROWS, DataError, RowError, read_tables, reread_ids
from sepsis_api.ml.locations import is_parquet, is_url, locate
from sepsis_api.ml.scoring import ServedModel
from sepsis_api.ml.seen_ids import SeenIds

T = TypeVar("T")


@dataclass(frozen=True)
class OfflineResult:
    """What ``score_file`` did: rows written to ``output`` and rows set aside."""

    output: str | Path
    scored: int
    rejected: list[RowError]
    rejected_path: str | Path | None  # the side file, when rows were set aside


def rejected_path_for(output: str | Path) -> str | Path:
    """Where ``skip_invalid`` puts the rows it sets aside: OUTPUT.rejected.csv (beside it, in
    the same bucket for a URL)."""
    if is_url(output):
        text = str(output)
        head, _, name = text.rpartition("/")
        stem = name.rsplit(".", 1)[0] if "." in name else name
        return f"{head}/{stem}.rejected.csv"
    output = Path(output)
    return output.with_name(output.stem + ".rejected.csv")


def score_file(
    input_path: str | Path,
    output: str | Path,
    served: ServedModel,
    *,
    skip_invalid: bool = False,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    progress: Callable[[int], None] | None = None,
) -> OfflineResult:
    """Score every valid row of ``input_path`` with ``served`` into ``output``, in input order.

    Output columns are ``OUTPUT_SCHEMA``'s (the ID is the row number when the file has none).
    ``progress`` is called after each chunk with the rows scored so far. Raises ``DataError``
    (nothing written) for an unreadable file or, without ``skip_invalid``, for the first
    invalid row; ``OSError`` when the output cannot be written.
    """
    check_writable(output)
    # IDs in rising order (a file sorted by ID) cost no memory; others are read again once.
    seen_ids = SeenIds(reread=lambda: reread_ids(input_path, chunk_rows=chunk_rows))

    def results() -> Generator[BatchResult, None, None]:
        first_row = 1
        with closing(_prefetched(read_tables(input_path, chunk_rows=chunk_rows))) as tables:
            for table in tables:
                yield score_rows(table, served, first_row=first_row, seen_ids=seen_ids)
                first_row += table.num_rows

    return write_scores(results(), input_path, output, skip_invalid=skip_invalid, progress=progress)


def write_scores(
    results: Generator[BatchResult, None, None],
    input_path: str | Path,
    output: str | Path,
    *,
    skip_invalid: bool = False,
    progress: Callable[[int], None] | None = None,
) -> OfflineResult:
    """Write scored chunks (``OUTPUT_SCHEMA``, each with the rows it set aside, in file order)
    to ``output`` as ``score_file`` does: this engine's chunks and the Spark and Dask engines'
    partitions (``batch.assemble``) alike. ``results`` is closed when writing stops."""
    rejected: list[RowError] = []
    side = rejected_path_for(output)
    scored = 0
    with ExitStack() as stack:
        # Left in reverse order: the writer thread stops before the writer closes, and the
        # temporary files are published (or removed) last.
        out_tmp = stack.enter_context(_staged(output))
        side_tmp = stack.enter_context(_staged(side))
        writer = stack.enter_context(_Writer(out_tmp, parquet=is_parquet(output)))
        writes = stack.enter_context(ThreadPoolExecutor(1, thread_name_prefix="write"))
        chunks = stack.enter_context(closing(results))
        side_writer: _Writer | None = None
        written: Future[None] | None = None
        for result in chunks:
            if result.rejected:
                if not skip_invalid:
                    raise DataError(f"{input_path}: {result.rejected[0]}")
                if side_writer is None:
                    side_writer = stack.enter_context(_Writer(side_tmp, parquet=False))
                side_writer.write(rejected_batch(result.rejected))
                rejected.extend(result.rejected)
            if written is not None:
                written.result()  # one chunk in flight: chunks are written in order
            written = writes.submit(writer.write, result.scores)
            scored += result.scores.num_rows
            if progress is not None:
                progress(scored)
        if written is not None:
            written.result()
        writer.close()
        if side_writer is None:
            side_tmp.unlink()  # nothing set aside: no side file is published
        else:
            side_writer.close()
    if not rejected and skip_invalid:
        _remove(side)  # from an earlier run; this one set nothing aside
    return OfflineResult(output, scored, rejected, side if rejected else None)


def _prefetched(items: Iterator[T]) -> Generator[T, None, None]:
    """``items``, each one produced in a worker thread while the caller works on the last."""
    done = object()
    with ThreadPoolExecutor(1, thread_name_prefix="read") as pool:
        try:
            ahead = pool.submit(next, items, done)
            while (item := ahead.result()) is not done:
                ahead = pool.submit(next, items, done)
                yield item  # type: ignore[misc]  # not the sentinel
        finally:
            if not ahead.cancel():
                ahead.exception()  # wait for a read in flight before closing the reader
            close = getattr(items, "close", None)
            if close is not None:
                close()


@contextmanager
def _staged(final: str | Path) -> Iterator[Path]:
    """A local temporary path that becomes ``final`` only if the block succeeds, and only if
    the path still exists then (a caller may unlink it to publish nothing). A local ``final``
    is replaced by a rename in its own directory; a URL gets the finished file in one upload."""
    if is_url(final):
        parent = Path(tempfile.gettempdir())
        name = str(final).rsplit("/", 1)[-1]
    else:
        parent, name = Path(final).parent, Path(final).name
        parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=parent)
    os.close(fd)
    try:
        yield Path(tmp)
        if os.path.exists(tmp):
            if is_url(final):
                _upload(Path(tmp), str(final))
            else:
                os.replace(tmp, final)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def check_writable(output: str | Path) -> None:
    """An ``s3://`` output's bucket must exist: said before the input is read, not after."""
    if is_url(output):
        place = locate(output)
        bucket = place.path.split("/", 1)[0]
        if place.filesystem.get_file_info(bucket).type == pafs.FileType.NotFound:
            raise FileNotFoundError(f"no bucket {bucket!r}")


def _upload(local: Path, url: str) -> None:
    place = locate(url)
    with open(local, "rb") as src, place.filesystem.open_output_stream(place.path) as dst:
        shutil.copyfileobj(src, dst, 8 << 20)


def _remove(location: str | Path) -> None:
    if is_url(location):
        place = locate(location)
        if place.filesystem.get_file_info(place.path).type != pafs.FileType.NotFound:
            place.filesystem.delete_file(place.path)
    elif os.path.exists(location):
        os.unlink(location)


class _Writer:
    """Appends score (or rejected-row) batches to one CSV or Parquet file."""

    def __init__(self, path: Path, *, parquet: bool) -> None:
        self._writer: Any = None
        self._file: BinaryIO | None = None
        self._path, self._parquet = path, parquet

    def write(self, batch: pa.RecordBatch) -> None:
        if self._writer is None:  # opened with the first batch's schema
            if self._parquet:
                self._writer = pq.ParquetWriter(
                    self._path,
                    batch.schema,
                    use_dictionary=_FEW_VALUES,  # type: ignore[arg-type]  # stubs: bool only
                )
            elif batch.schema == OUTPUT_SCHEMA:
                self._file = open(self._path, "wb")  # noqa: SIM115  # closed by close()
                self._writer = ScoresCsv(self._file)
            else:
                self._writer = pcsv.CSVWriter(self._path, batch.schema)
        self._writer.write(batch)

    def close(self) -> None:
        if self._writer is None:  # no row at all: the header alone
            self.write(pa.RecordBatch.from_pylist([], schema=OUTPUT_SCHEMA))
        self._shut()

    def _shut(self) -> None:
        if self._file is not None:
            self._file.close()
        elif self._writer is not None:
            self._writer.close()
        self._writer = self._file = None

    def __enter__(self) -> _Writer:
        return self

    def __exit__(self, *exc: object) -> None:
        self._shut()


# Parquet dictionary-encodes only the columns of a few values: an ID or a probability is
# nearly always new, and trying costs a hash per value.
_FEW_VALUES = ["label", "risk_band", "model", "model_version"]
