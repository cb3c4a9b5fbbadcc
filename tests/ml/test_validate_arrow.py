"""``validate_arrow`` applies ``validate_frame``'s rules to Arrow tables: same rows kept, same
numbers, same errors (row, column, value, reason), for text and for typed columns."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from sepsis_api.ml.data import Batch, validate_arrow, validate_frame
from sepsis_api.schema import FEATURES

# Cells as a CSV gives them: numbers in every spelling pandas and Arrow read, and the text
# neither takes for a number.
QUIRKS = [
    "1",
    " 2 ",
    "+3",
    ".5",
    "5.",
    "1e1",
    "1E-3",
    "00012",
    "-0",
    "",
    "  ",
    "nan",
    "NaN",
    "inf",
    "-inf",
    "Infinity",
    "1e400",
    "1_0",
    "0x1",
    "1,5",
    "1d3",
    "1.5e",
    "e5",
    "-",
    "+",
    "1 2",
    "١٢",
    "１",
    "x",
    "-1",
    "31",
    "0",
]
BASE = ["6", "148", "72", "35", "0", "33.6", "0.627", "50", "0"]


def assert_same(a: Batch, b: Batch) -> None:
    np.testing.assert_array_equal(a.X, b.X)
    assert a.ids == b.ids
    np.testing.assert_array_equal(a.rows, b.rows)
    assert a.errors == b.errors
    assert (a.y is None and b.y is None) or np.array_equal(a.y, b.y)  # type: ignore[arg-type]


@pytest.mark.parametrize("j", range(len(FEATURES)))
def test_every_quirky_cell_in_every_column_as_validate_frame(j: int) -> None:
    rows = []
    for value in QUIRKS:
        row = list(BASE)
        row[j] = value
        rows.append(row)
    text = {f.code: [r[i] for r in rows] for i, f in enumerate(FEATURES)}
    text["ID"] = [f"P{i}" if i % 5 else "" for i in range(len(rows))]
    df = pd.DataFrame(text)
    table = pa.table({k: pa.array(v, pa.string()) for k, v in text.items()})
    seen_a: set[str] = {"P1"}
    seen_b: set[str] = {"P1"}
    ours = validate_arrow(table, first_row=11, seen_ids=seen_a)
    theirs = validate_frame(df, first_row=11, seen_ids=seen_b)
    assert_same(ours, theirs)
    assert seen_a == seen_b
    assert len(ours.errors) > 10  # the test exercises the error paths


def test_typed_columns_nulls_and_labels_as_validate_frame() -> None:
    n = 6
    data: dict[str, pa.Array] = {
        f.code: pa.array([float(v)] * n, pa.float64()) for f, v in zip(FEATURES, BASE, strict=True)
    }
    data["Age"] = pa.array([50, None, 500, 30, 20, 81], pa.int64())  # required: null is missing
    data["PL"] = pa.array([148.0, None, 0.0, np.nan, 700.0, 1.0])  # nullable
    data["ID"] = pa.array(["a", "b", None, "a", " c ", ""])
    data["Sepssis"] = pa.array(["Positive", " negative ", "x", None, "POSITIVE", "Negative"])
    table = pa.table(data)
    for want_label in (False, True):
        ours = validate_arrow(table, first_row=1, want_label=want_label)
        theirs = validate_frame(table.to_pandas(), first_row=1, want_label=want_label)
        assert_same(ours, theirs)


def test_other_column_types_are_read_as_pandas_reads_them() -> None:
    data = {f.code: pa.array([float(v)], pa.float64()) for f, v in zip(FEATURES, BASE, strict=True)}
    data["Insurance"] = pa.array([True])
    table = pa.table(data)
    ours = validate_arrow(table)
    assert_same(ours, validate_frame(table.to_pandas()))
    assert [e.value for e in ours.errors] == ["True"]
