"""Load and validate patient tables (CSV or Parquet) into arrays in schema order.

The shipped CSVs are UTF-8 with a BOM and CR-only line endings; text mode with universal
newlines and ``utf-8-sig`` reads them and every LF/CRLF variant alike. Every problem is reported
as the file, the data row (1-based, the header not counted), the column and the value.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import numpy as np
import pandas as pd

from sepsis_api.schema import (
    FEATURES,
    ID_COLUMN,
    LABEL_COLUMN,
    LABEL_NEGATIVE,
    LABEL_POSITIVE,
    Feature,
)

DEFAULT_CHUNK_ROWS = 100_000
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
    seen_ids: set[str] | None = None,
) -> Batch:
    """Validate a raw table; valid rows go to the batch, the rest to ``batch.errors``."""
    cols = _column_map(list(df.columns), want_label=want_label)
    n = len(df)
    rows = np.arange(first_row, first_row + n)
    errors: dict[int, RowError] = {}
    X = np.empty((n, len(FEATURES)), dtype=np.float64)
    for j, f in enumerate(FEATURES):
        X[:, j] = _validate_feature(f, df[cols[f.code]], rows, errors)

    ids: list[str | None] = [None] * n
    if ID_COLUMN in cols:
        text = _as_text(df[cols[ID_COLUMN]])
        seen = seen_ids if seen_ids is not None else set()
        for i, value in enumerate(text.tolist()):
            if not value:
                continue
            if value in seen:
                errors.setdefault(i, RowError(int(rows[i]), ID_COLUMN, value, "duplicate ID"))
            seen.add(value)
            ids[i] = value

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


def _csv_frames(fh: TextIO, chunk_rows: int) -> Iterator[pd.DataFrame]:
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


def _csv_reader(path: Path, chunk_rows: int) -> Iterator[pd.DataFrame]:
    # Universal newlines turn CR and CRLF into LF; utf-8-sig drops a BOM when there is one.
    with open(path, encoding="utf-8-sig", newline=None) as fh:
        yield from _csv_frames(fh, chunk_rows)


def read_csv_bytes(data: bytes) -> pd.DataFrame:
    """A whole CSV held in memory (an upload), read exactly like a file; raises DataError."""
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


def _parquet_reader(path: Path, chunk_rows: int) -> Iterator[pd.DataFrame]:
    import pyarrow.parquet as pq

    yield from (b.to_pandas() for b in pq.ParquetFile(path).iter_batches(batch_size=chunk_rows))


def iter_batches(
    path: str | Path, *, chunk_rows: int = DEFAULT_CHUNK_ROWS, want_label: bool = False
) -> Iterator[Batch]:
    """Stream a CSV or Parquet file as validated batches; structural problems raise DataError."""
    path = Path(path)
    reader = _parquet_reader if path.suffix.lower() in {".parquet", ".pq"} else _csv_reader
    seen_ids: set[str] = set()
    first_row = 1
    got_any = False
    try:
        for frame in reader(path, chunk_rows):
            got_any = got_any or len(frame) > 0
            yield validate_frame(
                frame, first_row=first_row, want_label=want_label, seen_ids=seen_ids
            )
            first_row += len(frame)
    except DataError as e:
        raise DataError(f"{path}: {e}") from None
    except (OSError, UnicodeDecodeError, pd.errors.ParserError, ValueError) as e:
        raise DataError(f"{path}: cannot read as a table: {e}") from None
    if not got_any:
        raise DataError(f"{path}: file has a header but no data rows")


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
