"""Load and validate patient tables (CSV or Parquet) into arrays in schema order.

The shipped CSVs are UTF-8 with a BOM and CR-only line endings; text mode with universal
newlines and ``utf-8-sig`` reads them and every LF/CRLF variant alike. Every problem is reported
as the file, the data row (1-based, the header not counted), the column and the value.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TextIO, cast

import numpy as np

from sepsis_api.ml.locations import Location, is_parquet, locate
from sepsis_api.schema import (
    FEATURES,
    ID_COLUMN,
    LABEL_COLUMN,
    LABEL_NEGATIVE,
    LABEL_POSITIVE,
    Feature,
)

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

    from sepsis_api.ml.seen_ids import SeenIds

# Rows per chunk: 25,000 scored 1M rows faster than 100,000 here (2.0-2.2 s against 2.4-2.7 s
# whole process) with less memory in flight (peak ~370 MiB against ~440 MiB).
DEFAULT_CHUNK_ROWS = 25_000
_LABEL_ALIASES = ("sepssis", "sepsis")


class DataError(ValueError):
    """A table that cannot be used; the message names file, row and column."""

    def __init__(self, message: str, columns: list[str] | None = None) -> None:
        super().__init__(message)
        self.columns = columns or []  # the columns at fault, where the problem is a column


@dataclass(frozen=True, slots=True)
class RowError:
    row: int  # 1-based data row (the header is not counted)
    column: str | None
    value: str | None
    reason: str

    def __str__(self) -> str:
        where = f"row {self.row}"
        if self.column is not None:
            where += f", column {self.column}"
        if self.value is not None:
            where += f", value {self.value!r}"
        return f"{where}: {self.reason}"


@dataclass(slots=True)
class Batch:
    """Validated rows: features in schema order (NaN = missing), IDs, optional labels."""

    X: np.ndarray  # float64, shape (n, len(FEATURES)); zeros are kept, the model maps them
    ids: list[str | None]
    rows: np.ndarray  # 1-based data row numbers of the valid rows
    y: np.ndarray | None = None  # 1 = Positive, 0 = Negative
    errors: list[RowError] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.rows)


def _column_map(columns: list[str], *, want_label: bool) -> dict[str, str]:
    """Map schema keys (feature codes, ID, label) to the file's column names."""
    stripped = {str(c).strip(): str(c) for c in columns}
    lowered = {k.lower(): v for k, v in stripped.items()}
    found: dict[str, str] = {}
    missing: list[str] = []
    for f in FEATURES:
        for key in (f.code, f.name):
            col = stripped.get(key) or lowered.get(key.lower())
            if col is not None:
                found[f.code] = col
                break
        else:
            missing.append(f.code)
    if missing:
        raise DataError(
            f"missing column(s) {', '.join(missing)}; expected columns "
            f"{', '.join(f.code for f in FEATURES)} (or their descriptive names)",
            columns=missing,
        )
    if ID_COLUMN.lower() in lowered:
        found[ID_COLUMN] = lowered[ID_COLUMN.lower()]
    for alias in _LABEL_ALIASES:
        if alias in lowered:
            found[LABEL_COLUMN] = lowered[alias]
            break
    else:
        if want_label:
            raise DataError(
                f"missing label column {LABEL_COLUMN} (values Positive/Negative)",
                columns=[LABEL_COLUMN],
            )
    return found


def _as_text(s: pd.Series) -> pd.Series:
    return s.astype("string").str.strip().fillna("")


def _validate_feature(
    f: Feature, raw: pd.Series, rows: np.ndarray, errors: dict[int, RowError]
) -> np.ndarray:
    import pandas as pd

    if pd.api.types.is_numeric_dtype(raw) and not pd.api.types.is_bool_dtype(raw):
        values = raw.to_numpy(dtype=np.float64, na_value=np.nan)
        empty = np.isnan(values)
        text = None
    else:
        text = _as_text(raw)
        empty = (text == "").to_numpy()
        values = pd.to_numeric(text, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)

    if text is not None:
        _flag(
            f,
            rows,
            errors,
            np.isnan(values) & ~empty,
            lambda i: str(text.iloc[i]),
            f"not a number; {f.code} is {f.rule}",
        )
    _check_values(f, values, empty, rows, errors)
    return values


def _flag(
    f: Feature,
    rows: np.ndarray,
    errors: dict[int, RowError],
    mask: np.ndarray,
    value: Callable[[int], str],
    reason: str,
) -> None:
    for i in np.flatnonzero(mask):
        errors.setdefault(int(i), RowError(int(rows[i]), f.code, value(int(i)), reason))


def _check_values(
    f: Feature, values: np.ndarray, empty: np.ndarray, rows: np.ndarray, errors: dict[int, RowError]
) -> None:
    """The schema's rules for one feature's numbers: required where it is not nullable, within
    range (or one of its choices), finite."""

    def flag(mask: np.ndarray, value: Callable[[int], str], reason: str) -> None:
        _flag(f, rows, errors, mask, value, reason)

    if not f.nullable:
        flag(empty, lambda i: "", f"missing value; {f.code} is required ({f.rule})")
    finite = np.isfinite(values)
    if f.choices is not None:
        bad = finite & ~np.isin(values, f.choices)
    else:
        bad = finite & ((values < f.minimum) | (values > f.maximum))
    bad |= np.isinf(values)
    flag(bad, lambda i: f"{values[i]:g}", f"out of range; {f.code} is {f.rule}")


def validate_matrix(X: np.ndarray, ids: list[str | None] | None = None) -> Batch:
    """A numeric matrix in schema order (NaN = not measured), validated by the same rules as
    ``validate_frame`` without building a table (the protocol adapters' tensors)."""
    X = np.asarray(X, dtype=np.float64)
    n = len(X)
    rows = np.arange(1, n + 1)
    errors: dict[int, RowError] = {}
    for j, f in enumerate(FEATURES):
        _check_values(f, X[:, j], np.isnan(X[:, j]), rows, errors)
    ids = ids if ids is not None else [None] * n
    if not errors:
        return Batch(X=X, ids=ids, rows=rows)
    keep = np.ones(n, dtype=bool)
    keep[list(errors)] = False
    return Batch(
        X=X[keep],
        ids=[ids[i] for i in np.flatnonzero(keep)],
        rows=rows[keep],
        errors=[errors[i] for i in sorted(errors)],
    )


def validate_frame(
    df: pd.DataFrame,
    *,
    first_row: int = 1,
    want_label: bool = False,
    seen_ids: set[str] | SeenIds | None = None,
) -> Batch:
    """Validate a raw table; valid rows go to the batch, the rest to ``batch.errors``.
    ``seen_ids`` holds the IDs of earlier batches of the same file (a repeat is invalid)."""
    cols = _column_map(list(df.columns), want_label=want_label)
    n = len(df)
    rows = np.arange(first_row, first_row + n)
    errors: dict[int, RowError] = {}
    X = np.empty((n, len(FEATURES)), dtype=np.float64)
    for j, f in enumerate(FEATURES):
        X[:, j] = _validate_feature(f, df[cols[f.code]], rows, errors)

    ids: list[str | None] = [None] * n
    if ID_COLUMN in cols:
        values = cast("list[str]", _as_text(df[cols[ID_COLUMN]]).tolist())
        ids = [v or None for v in values]
        given = np.array([bool(v) for v in values], dtype=bool)
        seen = seen_ids if seen_ids is not None else set()
        _flag_duplicates(values, given, seen, rows, errors)

    y = None
    if LABEL_COLUMN in cols:
        text = _as_text(df[cols[LABEL_COLUMN]]).str.lower()
        y = np.full(n, -1, dtype=np.int8)
        y[(text == LABEL_POSITIVE.lower()).to_numpy()] = 1
        y[(text == LABEL_NEGATIVE.lower()).to_numpy()] = 0
        if want_label:
            for i in map(int, np.flatnonzero(y < 0)):
                errors.setdefault(
                    i,
                    RowError(
                        int(rows[i]),
                        cols[LABEL_COLUMN],
                        str(df[cols[LABEL_COLUMN]].iloc[i]),
                        f"unknown label; expected {LABEL_POSITIVE} or {LABEL_NEGATIVE}",
                    ),
                )
        else:
            y = None  # labels are optional when scoring; ignore them

    keep = np.ones(n, dtype=bool)
    keep[list(errors)] = False
    return Batch(
        X=X[keep],
        ids=[ids[i] for i in np.flatnonzero(keep)],
        rows=rows[keep],
        y=None if y is None else y[keep].astype(np.int64),
        errors=[errors[i] for i in sorted(errors)],
    )


def validate_arrow(
    batch: pa.RecordBatch | pa.Table,
    *,
    first_row: int = 1,
    want_label: bool = False,
    seen_ids: set[str] | SeenIds | None = None,
) -> Batch:
    """``validate_frame`` over an Arrow batch, without building a pandas table: the same
    columns accepted, the same errors with the same row, column, value and reason. Text is
    trimmed and parsed by Arrow (it accepts exactly the numbers pandas does; tests/ml/
    test_validate_arrow.py); a column of another type than text or numbers (bool, decimal, ...)
    sends the batch through ``validate_frame``, which reads it as it always did.
    ``validate_arrow_batch`` is the same with the IDs left an Arrow array.
    """
    valid = validate_arrow_batch(
        batch, first_row=first_row, want_label=want_label, seen_ids=seen_ids
    )
    ids: list[str | None] = [None] * len(valid) if valid.ids is None else valid.ids.to_pylist()
    return Batch(X=valid.X, ids=ids, rows=valid.rows, y=valid.y, errors=valid.errors)


@dataclass(slots=True)
class ArrowBatch:
    """``validate_arrow_batch``'s valid rows: a ``Batch`` whose IDs are an Arrow string array
    (trimmed; null where a row has none), or None when the table has no ID column."""

    X: np.ndarray
    ids: pa.Array[Any] | None
    rows: np.ndarray
    y: np.ndarray | None = None
    errors: list[RowError] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.rows)


def validate_arrow_batch(
    batch: pa.RecordBatch | pa.Table,
    *,
    first_row: int = 1,
    want_label: bool = False,
    seen_ids: set[str] | SeenIds | None = None,
) -> ArrowBatch:
    """``validate_arrow`` without a Python object per row: the IDs stay an Arrow array, and
    ``seen_ids`` (the IDs of earlier batches of the same file; without it, duplicates are
    looked for in this batch) may be a ``SeenIds`` rather than a ``set``."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from sepsis_api.ml.seen_ids import SeenIds  # numba: loaded by the batch paths only

    table = batch if isinstance(batch, pa.Table) else pa.Table.from_batches([batch])
    names = [str(c) for c in table.schema.names]
    index = _wanted(names, want_label)
    kinds = {key: _arrow_kind(table.schema.field(i).type) for key, i in index.items()}
    text_only = [k for k in (ID_COLUMN, LABEL_COLUMN) if k in kinds]
    if None in kinds.values() or any(kinds[k] != "text" for k in text_only):
        framed = validate_frame(
            table.to_pandas(), first_row=first_row, want_label=want_label, seen_ids=seen_ids
        )
        return ArrowBatch(
            framed.X, pa.array(framed.ids, pa.string()), framed.rows, framed.y, framed.errors
        )
    n = table.num_rows
    rows = np.arange(first_row, first_row + n)
    errors: dict[int, RowError] = {}
    X = np.empty((n, len(FEATURES)), dtype=np.float64)
    for j, f in enumerate(FEATURES):
        X[:, j] = _validate_arrow_feature(f, table.column(index[f.code]), rows, errors)

    ids: pa.Array[Any] | None = None
    if ID_COLUMN in index:
        text, given = _id_text(table.column(index[ID_COLUMN]))
        _flag_duplicates(text, given, seen_ids if seen_ids is not None else SeenIds(), rows, errors)
        ids = (
            text if given.all() else pc.if_else(pa.array(given), text, pa.scalar(None, pa.string()))
        )

    y = None
    if want_label:
        label = table.column(index[LABEL_COLUMN])
        y = _arrow_labels(label, rows)
        for i in map(int, np.flatnonzero(y < 0)):
            raw = label[i].as_py()
            errors.setdefault(
                i,
                RowError(
                    int(rows[i]),
                    names[index[LABEL_COLUMN]],
                    "" if raw is None else str(raw),
                    f"unknown label; expected {LABEL_POSITIVE} or {LABEL_NEGATIVE}",
                ),
            )
    if not errors:
        return ArrowBatch(X=X, ids=ids, rows=rows, y=None if y is None else y.astype(np.int64))
    keep = np.ones(n, dtype=bool)
    keep[list(errors)] = False
    return ArrowBatch(
        X=X[keep],
        ids=None if ids is None else ids.filter(pa.array(keep)),
        rows=rows[keep],
        y=None if y is None else y[keep].astype(np.int64),
        errors=[errors[i] for i in sorted(errors)],
    )


def _id_text(col: pa.ChunkedArray[Any]) -> tuple[pa.Array[Any], np.ndarray]:
    """A text ID column as validation reads it (trimmed, "" where none) and where a row has
    one."""
    import pyarrow as pa
    import pyarrow.compute as pc

    text = _arrow_text(col).combine_chunks()
    return text, pc.not_equal(text, pa.scalar("")).to_numpy(zero_copy_only=False)


def reread_ids(
    location: str | Path, *, chunk_rows: int = DEFAULT_CHUNK_ROWS
) -> Iterator[tuple[pa.Array[Any], np.ndarray]]:
    """The IDs of ``location`` read again, batch by batch from the first row, as validation
    reads them (``_id_text``, or pandas' text for an ID column of numbers), with the rows
    that have one: what a ``SeenIds`` reads when the IDs stop rising."""
    import pyarrow as pa

    for table in read_tables(location, chunk_rows=chunk_rows):
        # The file's ID column: a SeenIds is only ever given IDs, so the file has one.
        at = _wanted([str(c) for c in table.schema.names], want_label=False)[ID_COLUMN]
        if _arrow_kind(table.schema.field(at).type) == "text":
            yield _id_text(table.column(at))
        else:
            values = _as_text(table.column(at).to_pandas()).tolist()
            yield pa.array(values, pa.string()), np.array([bool(v) for v in values], dtype=bool)


def _flag_duplicates(
    ids: list[str] | pa.Array[Any],
    given: np.ndarray,
    seen: set[str] | SeenIds,
    rows: np.ndarray,
    errors: dict[int, RowError],
) -> None:
    """The duplicate-ID rule: an ID given (``ids`` trimmed, "" where none) that an earlier row
    of this batch or of an earlier one (``seen``, which takes this batch's IDs) had. ``seen``
    is a ``set`` of str or a ``SeenIds`` (compact, over the Arrow array itself)."""
    if isinstance(seen, set):
        values = ids if isinstance(ids, list) else cast("list[str]", ids.to_pylist())
        present = values if given.all() else [v for v in values if v]
        fresh = set(present)
        if len(fresh) == len(present) and seen.isdisjoint(fresh):
            seen |= fresh  # the usual case, without a Python loop
            return
        for i, value in enumerate(values):
            if not value:
                continue
            if value in seen:
                errors.setdefault(i, RowError(int(rows[i]), ID_COLUMN, value, "duplicate ID"))
            seen.add(value)
        return
    import pyarrow as pa

    text = pa.array(ids, pa.string()) if isinstance(ids, list) else ids
    for i in map(int, np.flatnonzero(seen.add(text, given))):
        value = str(text[i].as_py())
        errors.setdefault(i, RowError(int(rows[i]), ID_COLUMN, value, "duplicate ID"))


def _arrow_labels(col: pa.ChunkedArray[Any], rows: np.ndarray) -> np.ndarray:
    """1 = Positive, 0 = Negative, -1 = anything else (any case, spaces trimmed)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    text = pc.utf8_lower(_arrow_text(col))
    y = np.full(len(rows), -1, dtype=np.int8)
    for label, code in ((LABEL_POSITIVE, 1), (LABEL_NEGATIVE, 0)):
        y[pc.equal(text, pa.scalar(label.lower())).to_numpy(zero_copy_only=False)] = code
    return y


def _arrow_kind(t: pa.DataType) -> str | None:
    """ "number", "text", or None for a type read through pandas (bool, decimal, ...)."""
    import pyarrow as pa

    if pa.types.is_integer(t) or pa.types.is_floating(t):
        return "number"
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return "text"
    return None


def _arrow_text(col: pa.ChunkedArray[Any]) -> pa.ChunkedArray[Any]:
    """Trimmed text, empty for a null (as ``_as_text``)."""
    import pyarrow.compute as pc

    # pyarrow-stubs type fill_null's value as Scalar[Never] for a ChunkedArray[Any]
    return pc.utf8_trim_whitespace(col).fill_null("")  # type: ignore[arg-type]


def _validate_arrow_feature(
    f: Feature, col: pa.ChunkedArray[Any], rows: np.ndarray, errors: dict[int, RowError]
) -> np.ndarray:
    import pyarrow as pa
    import pyarrow.compute as pc

    nan = pa.scalar(np.nan, pa.float64())
    if _arrow_kind(col.type) == "number":
        values = np.asarray(pc.fill_null(col.cast(pa.float64()), nan), dtype=np.float64)
        _check_values(f, values, np.isnan(values), rows, errors)
        return values
    text = _arrow_text(col)
    is_empty = pc.equal(text, pa.scalar(""))
    empty = is_empty.to_numpy(zero_copy_only=False)
    try:  # an empty cell is missing (NaN); Arrow's cast does not take "" for a number
        if empty.any():
            nulls = pa.nulls(len(text), text.type)
            text_or_null = pc.if_else(is_empty, nulls, text)
            values = np.asarray(pc.fill_null(text_or_null.cast(pa.float64()), nan))
        else:
            values = np.asarray(text.cast(pa.float64()), dtype=np.float64)
    except pa.ArrowInvalid:  # some value is not a number: parse this column as pandas does
        import pandas as pd

        values = pd.to_numeric(text.to_pandas(), errors="coerce").to_numpy(
            dtype=np.float64, na_value=np.nan
        )
    _flag(
        f,
        rows,
        errors,
        np.isnan(values) & ~empty,
        lambda i: str(text[i].as_py()),
        f"not a number; {f.code} is {f.rule}",
    )
    _check_values(f, values, empty, rows, errors)
    return values


def _csv_frames(fh: TextIO, chunk_rows: int) -> Iterator[pd.DataFrame]:
    import pandas as pd

    try:
        for frame in pd.read_csv(
            fh,
            dtype=str,
            keep_default_na=False,
            chunksize=chunk_rows,
            skipinitialspace=True,
            quoting=csv.QUOTE_MINIMAL,
        ):
            # When row 1 has one field more than the header, pandas silently makes the
            # first column the index and shifts every column of every row by one.
            if not isinstance(frame.index, pd.RangeIndex):
                raise DataError("row 1 has more fields than the header row")
            yield frame
    except pd.errors.EmptyDataError:
        raise DataError("file is empty (no header row)") from None


def read_csv_bytes(data: bytes) -> pd.DataFrame:
    """A whole CSV held in memory (an upload), read exactly like a file; raises DataError."""
    import pandas as pd

    stream = io.TextIOWrapper(io.BytesIO(data), encoding="utf-8-sig", newline=None)
    try:
        frames = list(_csv_frames(stream, DEFAULT_CHUNK_ROWS))
    except UnicodeDecodeError as e:
        raise DataError(f"not UTF-8 text: {e}") from None
    except (pd.errors.ParserError, ValueError) as e:
        if isinstance(e, DataError):
            raise
        raise DataError(f"cannot read as a table: {e}") from None
    if not frames:
        raise DataError("the CSV has a header but no data rows")
    return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]


# Arrow's CSV blocks are sized in bytes; rows are regrouped into chunk_rows afterwards. About
# 64 bytes a row (the shipped files have ~50) keeps a block near one chunk, within bounds. The
# streaming reader reads up to 32 blocks ahead in a thread of its own (a queue Arrow does not
# let Python size), so the block bounds memory: about 35 blocks are held at most (9 MB here,
# 58 MB at 1 MB blocks); smaller blocks read no slower.
_BYTES_PER_ROW = 64
_MIN_BLOCK, _MAX_BLOCK = 64 << 10, 256 << 10
_HEADER_BYTES = 1 << 16  # read to find the header row; header rows are far shorter


def read_tables(
    location: str | Path, *, chunk_rows: int = DEFAULT_CHUNK_ROWS, want_label: bool = False
) -> Iterator[pa.Table]:
    """Stream the columns that matter (features, ID, label) of a CSV or Parquet file, local or
    at a URL (``ml.locations``), as Arrow tables of ``chunk_rows`` rows (the last one shorter),
    under the file's own column names.

    CSV is read by pyarrow's streaming reader with the features typed as numbers; where a cell
    is not one (or a row is malformed, or bytes are not UTF-8) the reader with every column typed
    as text takes over from the first row not yet yielded (so a bad value is an error for its
    row, not for the file): UTF-8 with or without a BOM, CR, LF or CRLF,
    quoted fields (also over several lines), blank lines skipped. Parquet columns keep their
    types. A structural problem (no header, a row with more or fewer fields than the header,
    bytes that are not UTF-8, a missing column) raises ``DataError`` naming the file and, for
    a row, its 1-based data row number; rows before it are yielded first.
    """
    where = str(location)
    try:
        place = locate(location)
        if is_parquet(location):
            tables = _parquet_tables(place, chunk_rows, want_label)
        else:
            tables = _csv_tables(place, chunk_rows, want_label)
        got_any = False
        for table in _regroup(tables, chunk_rows):
            got_any = True
            yield table
    except DataError as e:
        raise DataError(f"{where}: {e}", columns=e.columns) from None
    except (OSError, UnicodeDecodeError, ValueError) as e:  # ArrowInvalid is a ValueError
        raise DataError(f"{where}: cannot read as a table: {e}") from None
    if not got_any:
        raise DataError(f"{where}: file has a header but no data rows")


def _wanted(names: list[str], want_label: bool) -> dict[str, int]:
    """Schema key -> column index, for the columns the reader keeps."""
    cols = _column_map(names, want_label=want_label)
    return {key: names.index(col) for key, col in cols.items()}


_PARQUET_BUFFER = 256 << 10  # bytes read at a time from one column of a local Parquet file


def _parquet_tables(place: Location, chunk_rows: int, want_label: bool) -> Iterator[pa.Table]:
    import pyarrow as pa
    import pyarrow.fs as pafs
    import pyarrow.parquet as pq

    with place.filesystem.open_input_file(place.path) as fh:
        # A local file is read a page at a time (buffer_size) rather than a row group's columns
        # at once (pre_buffer): memory is bounded by the chunk, not by the writer's row groups
        # (a million rows each by default), and it reads faster. A remote one is pre-buffered:
        # a few large requests rather than many small ones.
        local = isinstance(place.filesystem, pafs.LocalFileSystem)
        parquet = pq.ParquetFile(
            fh, pre_buffer=not local, buffer_size=_PARQUET_BUFFER if local else 0
        )
        names = list(parquet.schema_arrow.names)
        columns = [names[i] for i in sorted(_wanted(names, want_label).values())]
        # One thread: the offline engine reads in a thread of its own beside scoring and
        # writing; Arrow's pool of decoding threads measured no faster and 30 MB larger.
        batches = parquet.iter_batches(batch_size=chunk_rows, columns=columns, use_threads=False)
        for batch in batches:
            yield pa.Table.from_batches([batch])


def _csv_header(place: Location) -> tuple[list[str], int]:
    """The header row's names (as pandas read them: leading spaces dropped) and the number of
    physical lines up to and including it (blank lines before it are skipped)."""
    with place.filesystem.open_input_stream(place.path) as fh:
        head = fh.read(_HEADER_BYTES)
    text = head.decode("utf-8-sig", errors="replace")
    rows = csv.reader(io.StringIO(text, newline=None), skipinitialspace=True)
    for blank, row in enumerate(rows):
        if row:
            if len(head) < _HEADER_BYTES and not any(rows):  # the whole file: nothing after it
                raise DataError("file has a header but no data rows")
            return row, blank + 1
    raise DataError("file is empty (no header row)")


def _csv_tables(place: Location, chunk_rows: int, want_label: bool) -> Iterator[pa.Table]:
    """The file's rows, read fast (``_typed_csv``) until that reader meets something only
    the text reader handles as documented; from there, the text reader (``_text_csv``) from
    the first row not yet yielded (the rows before it are read again and dropped)."""
    header, skip = _csv_header(place)
    done = 0
    typed = _typed_csv(place, header, skip, chunk_rows, want_label)
    try:
        for table in typed:
            yield table
            done += table.num_rows
        return
    except _Untyped:
        pass
    finally:
        typed.close()
    for table in _text_csv(place, header, skip, chunk_rows, want_label):
        if done >= table.num_rows:
            done -= table.num_rows
            continue
        yield table.slice(done) if done else table
        done = 0


class _Untyped(Exception):
    """The fast reader stops: a block it cannot type as documented (see ``_typed_csv``)."""


def _csv_options(
    header: list[str], skip: int, chunk_rows: int, want_label: bool
) -> tuple[list[str], list[int], list[str], int]:
    """The reader's column names (header names may repeat), the chosen columns' indices and
    names, and the block size in bytes."""
    keep = _wanted([c.strip() for c in header], want_label)
    internal = [f"c{i}" for i in range(len(header))]
    chosen = sorted(keep.values())
    block = min(max(chunk_rows * _BYTES_PER_ROW, _MIN_BLOCK), _MAX_BLOCK)
    return internal, chosen, [header[i] for i in chosen], block


def _typed_csv(
    place: Location, header: list[str], skip: int, chunk_rows: int, want_label: bool
) -> Generator[pa.Table, None, None]:
    """The rows with the features parsed as float64 by Arrow (an empty cell is null) and the
    other columns as text, by the streaming reader. One thread: the offline engine reads in a
    thread of its own beside scoring and writing (Arrow's threads measured no faster on two
    cores, and then cannot number a bad row).

    Raises ``_Untyped`` where that could differ from the text reader's result: a cell Arrow
    does not take for a number (``" 2 "`` with other spaces, ``x``...: the text reader names it
    or reads it as pandas does), a cell it reads as NaN (``nan`` is an error naming the cell
    as written), a row with another number of fields, or text that is not UTF-8."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pcsv

    internal, chosen, names, block = _csv_options(header, skip, chunk_rows, want_label)
    features = {_wanted(names, want_label)[f.code] for f in FEATURES}
    bad_rows: list[pcsv.InvalidRow] = []

    def on_bad_row(row: pcsv.InvalidRow) -> Literal["skip"]:
        bad_rows.append(row)
        return "skip"

    types = {
        internal[i]: pa.float64() if k in features else pa.string() for k, i in enumerate(chosen)
    }
    try:
        reader = pcsv.open_csv(
            place.filesystem.open_input_stream(place.path),  # type: ignore[arg-type]  # stubs: IO only
            read_options=pcsv.ReadOptions(
                column_names=internal, skip_rows=skip, block_size=block, use_threads=False
            ),
            parse_options=pcsv.ParseOptions(
                newlines_in_values=True, invalid_row_handler=on_bad_row
            ),
            convert_options=pcsv.ConvertOptions(
                column_types=types,
                include_columns=[internal[i] for i in chosen],
                null_values=[""],
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )
    except pa.ArrowInvalid:  # the first block already
        raise _Untyped from None
    with reader:
        while True:
            try:
                batch = reader.read_next_batch()
            except StopIteration:
                break
            except pa.ArrowInvalid:
                raise _Untyped from None
            if bad_rows or any(
                pc.any(pc.is_nan(batch.column(k))).as_py() for k in sorted(features)
            ):
                raise _Untyped
            yield pa.Table.from_batches([batch]).rename_columns(names)
    if bad_rows:
        raise _Untyped


def _text_csv(
    place: Location, header: list[str], skip: int, chunk_rows: int, want_label: bool
) -> Iterator[pa.Table]:
    """The rows with every column typed as text (so that a bad value is an error for its
    row, not for the file), by the serial streaming reader, which numbers a bad row."""
    import pyarrow as pa
    import pyarrow.csv as pcsv

    internal, chosen, names, block = _csv_options(header, skip, chunk_rows, want_label)
    bad_rows: list[tuple[int | None, int, int]] = []  # (data row, fields, expected)

    def on_bad_row(row: pcsv.InvalidRow) -> Literal["skip"]:
        number = None if row.number is None else row.number - skip
        bad_rows.append((number, row.actual_columns, row.expected_columns))
        return "skip"  # noted, raised below once the rows before it have been yielded

    reader = pcsv.open_csv(
        place.filesystem.open_input_stream(place.path),  # type: ignore[arg-type]  # stubs: IO only
        read_options=pcsv.ReadOptions(
            column_names=internal, skip_rows=skip, block_size=block, use_threads=False
        ),
        parse_options=pcsv.ParseOptions(newlines_in_values=True, invalid_row_handler=on_bad_row),
        convert_options=pcsv.ConvertOptions(
            column_types={internal[i]: pa.string() for i in chosen},
            include_columns=[internal[i] for i in chosen],
            strings_can_be_null=False,
            quoted_strings_can_be_null=False,
        ),
    )
    first_row = 1
    with reader:
        for batch in reader:
            table = pa.Table.from_batches([batch]).rename_columns(names)
            if bad_rows:
                number, fields, expected = bad_rows[0]
                if number is not None and number > first_row:
                    yield table.slice(0, number - first_row)  # the rows before it
                raise DataError(_bad_row_message(number, fields, expected))
            first_row += table.num_rows
            yield table
    if bad_rows:
        raise DataError(_bad_row_message(*bad_rows[0]))


def _bad_row_message(number: int | None, fields: int, expected: int) -> str:
    row = "a row" if number is None else f"row {number}"
    more = "more" if fields > expected else "fewer"
    return f"{row} has {more} fields than the header row ({fields}, expected {expected})"


def _regroup(tables: Iterator[pa.Table], rows: int) -> Iterator[pa.Table]:
    """The same rows in tables of exactly ``rows`` rows (the last one shorter, and the last
    before the column types change: the CSV reader's switch to text), without copying:
    slices of the blocks read."""
    import pyarrow as pa

    pending: list[pa.Table] = []
    count = 0
    for table in tables:
        if pending and table.schema != pending[0].schema:
            if count:
                yield pa.concat_tables(pending)
            pending, count = [], 0
        pending.append(table)
        count += table.num_rows
        while count >= rows:
            joined = pa.concat_tables(pending)
            yield joined.slice(0, rows)
            pending, count = [joined.slice(rows)], count - rows
    if count:
        yield pa.concat_tables(pending)


def iter_batches(
    location: str | Path, *, chunk_rows: int = DEFAULT_CHUNK_ROWS, want_label: bool = False
) -> Iterator[Batch]:
    """Stream a CSV or Parquet file as validated batches (``read_tables`` then
    ``validate_arrow``); structural problems raise DataError."""
    seen_ids: set[str] = set()
    first_row = 1
    for table in read_tables(location, chunk_rows=chunk_rows, want_label=want_label):
        try:
            batch = validate_arrow(
                table, first_row=first_row, want_label=want_label, seen_ids=seen_ids
            )
        except DataError as e:
            raise DataError(f"{location}: {e}", columns=e.columns) from None
        yield batch
        first_row += table.num_rows


def load_table(path: str | Path, *, want_label: bool = False) -> Batch:
    """Load a whole file; any invalid row raises a DataError naming row, column and value."""
    batches = list(iter_batches(path, want_label=want_label))
    errors = [e for b in batches for e in b.errors]
    if errors:
        more = f" (and {len(errors) - 1} more invalid rows)" if len(errors) > 1 else ""
        raise DataError(f"{path}: {errors[0]}{more}")
    ys = [b.y for b in batches]
    return Batch(
        X=np.concatenate([b.X for b in batches]),
        ids=[i for b in batches for i in b.ids],
        rows=np.concatenate([b.rows for b in batches]),
        # every batch of one file has the label column or none has: ys holds no None here
        y=None if ys[0] is None else np.concatenate(ys),  # type: ignore[arg-type]  # no None here
    )


def load_training_data(path: str | Path) -> Batch:
    """Load a labelled training file (label column ``Sepssis`` with Positive/Negative)."""
    return load_table(path, want_label=True)
