"""The patient-table loader: file quirks, validation messages, formats and streaming."""

from __future__ import annotations

import codecs
import csv
import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sepsis_api.ml.data import (
    DataError,
    RowError,
    iter_batches,
    load_table,
    load_training_data,
    validate_frame,
)
from sepsis_api.schema import FEATURES

HEADER = ["ID", "PRG", "PL", "PR", "SK", "TS", "M11", "BD2", "Age", "Insurance", "Sepssis"]
# The first five rows of the shipped training file.
ROWS = [
    ["ICU200010", "6", "148", "72", "35", "0", "33.6", "0.627", "50", "0", "Positive"],
    ["ICU200011", "1", "85", "66", "29", "0", "26.6", "0.351", "31", "0", "Negative"],
    ["ICU200012", "8", "183", "64", "0", "0", "23.3", "0.672", "32", "1", "Positive"],
    ["ICU200013", "1", "89", "66", "23", "94", "28.1", "0.167", "21", "1", "Negative"],
    ["ICU200014", "0", "137", "40", "35", "168", "43.1", "2.288", "33", "1", "Positive"],
]
EXPECTED_X = np.array([[float(v) for v in r[1:10]] for r in ROWS])
EXPECTED_IDS = [r[0] for r in ROWS]
EXPECTED_Y = np.array([1, 0, 1, 0, 1])

REAL_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"


def write_csv(
    path: Path,
    rows: list[list[str]] | None = None,
    *,
    header: list[str] = HEADER,
    newline: str = "\r",
    bom: bool = True,
) -> Path:
    """Write ``header`` + ``rows`` as CSV text with the chosen line ending and optional BOM.

    The defaults reproduce the shipped files: UTF-8 with a BOM, CR-only line endings and no
    line ending after the last row.
    """
    lines = [",".join(header)] + [",".join(r) for r in (ROWS if rows is None else rows)]
    data = newline.join(lines).encode("utf-8")
    path.write_bytes((codecs.BOM_UTF8 if bom else b"") + data)
    return path


def with_value(column: str, value: str, row: int = 0) -> list[list[str]]:
    """ROWS with one cell replaced (``row`` is 0-based, i.e. data row ``row + 1``)."""
    rows = [list(r) for r in ROWS]
    rows[row][HEADER.index(column)] = value
    return rows


def load_error(path: Path, *, want_label: bool = True) -> str:
    """The DataError message for ``path``; it always names the file."""
    with pytest.raises(DataError) as info:
        load_table(path, want_label=want_label)
    message = str(info.value)
    assert str(path) in message
    return message


# --- file quirks --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("newline", "bom"),
    [("\r", True), ("\n", True), ("\r\n", True), ("\r", False), ("\n", False), ("\r\n", False)],
    ids=["CR+BOM", "LF+BOM", "CRLF+BOM", "CR", "LF", "CRLF"],
)
def test_line_endings_and_bom_give_identical_arrays(tmp_path: Path, newline: str, bom: bool):
    batch = load_training_data(write_csv(tmp_path / "t.csv", newline=newline, bom=bom))
    np.testing.assert_array_equal(batch.X, EXPECTED_X)
    assert batch.X.dtype == np.float64
    assert batch.ids == EXPECTED_IDS  # the BOM does not stick to the first ID or header
    np.testing.assert_array_equal(batch.y, EXPECTED_Y)
    np.testing.assert_array_equal(batch.rows, [1, 2, 3, 4, 5])


def test_trailing_line_ending_and_blank_lines_are_ignored(tmp_path: Path):
    path = tmp_path / "t.csv"
    path.write_bytes(write_csv(path, newline="\r\n").read_bytes() + b"\r\n\r\n")
    batch = load_training_data(path)
    np.testing.assert_array_equal(batch.X, EXPECTED_X)


def test_real_files(tmp_path: Path):
    if not REAL_DATA.is_dir():
        pytest.skip(f"shared data set not present at {REAL_DATA}")
    train_path = REAL_DATA / "Paitients_Files_Train.csv"
    test_path = REAL_DATA / "Paitients_Files_Test.csv"
    raw = train_path.read_bytes()
    assert raw.startswith(codecs.BOM_UTF8) and b"\n" not in raw  # the quirks are real

    # Count independently of the loader with the csv module.
    with open(train_path, encoding="utf-8-sig", newline=None) as fh:
        reference = list(csv.reader(fh))[1:]
    positives = sum(r[-1] == "Positive" for r in reference)

    train = load_training_data(train_path)
    assert len(reference) == 599 and positives == 208
    assert train.X.shape == (599, len(FEATURES)) == (599, 9)
    assert int(train.y.sum()) == positives
    assert set(np.unique(train.y)) == {0, 1}
    assert len(set(train.ids)) == 599
    assert train.ids[0] == reference[0][0] == "ICU200010"
    np.testing.assert_array_equal(train.X[0], EXPECTED_X[0])
    np.testing.assert_array_equal(train.X[-1], [float(v) for v in reference[-1][1:10]])
    assert not np.isnan(train.X).any()  # zeros are kept; the model maps them to missing

    test = load_table(test_path)
    assert test.X.shape == (169, 9)
    assert test.y is None
    assert len(set(test.ids)) == 169


# --- structural errors --------------------------------------------------------------------


def test_missing_column_is_named(tmp_path: Path):
    header = [h for h in HEADER if h != "M11"]
    rows = [[v for h, v in zip(HEADER, r, strict=True) if h != "M11"] for r in ROWS]
    message = load_error(write_csv(tmp_path / "t.csv", rows, header=header))
    assert "missing column" in message and "M11" in message


def test_missing_label_column_is_an_error_only_for_training(tmp_path: Path):
    path = write_csv(tmp_path / "t.csv", [r[:-1] for r in ROWS], header=HEADER[:-1])
    assert "Sepssis" in load_error(path, want_label=True)
    assert load_table(path).y is None


def test_empty_file(tmp_path: Path):
    path = tmp_path / "empty.csv"
    path.write_bytes(b"")
    assert "empty" in load_error(path)


def test_header_only_file(tmp_path: Path):
    message = load_error(write_csv(tmp_path / "header.csv", []))
    assert "no data rows" in message


def test_missing_file(tmp_path: Path):
    load_error(tmp_path / "nope.csv")


def test_row_with_extra_field_is_not_shifted(tmp_path: Path):
    # pandas would make the first column the index and shift every column by one.
    rows = [list(r) for r in ROWS]
    rows[0].append("")
    message = load_error(write_csv(tmp_path / "t.csv", rows))
    assert "row 1" in message and "more fields" in message


# --- row errors ---------------------------------------------------------------------------


def test_text_in_numeric_column(tmp_path: Path):
    message = load_error(write_csv(tmp_path / "t.csv", with_value("PR", "high", row=2)))
    assert "row 3" in message and "column PR" in message and "'high'" in message
    assert "not a number" in message


@pytest.mark.parametrize(
    ("column", "value", "rule"),
    [
        ("Age", "500", "from 0 to 120"),
        ("M11", "900", "from 0 to 100"),
        ("PRG", "-1", "from 0 to 30"),
        ("Insurance", "2", "one of 0, 1"),
    ],
)
def test_out_of_range_value(tmp_path: Path, column: str, value: str, rule: str):
    message = load_error(write_csv(tmp_path / "t.csv", with_value(column, value, row=1)))
    assert "row 2" in message and f"column {column}" in message and f"'{value}'" in message
    assert rule in message


def test_bad_label(tmp_path: Path):
    message = load_error(write_csv(tmp_path / "t.csv", with_value("Sepssis", "Maybe", row=4)))
    assert "row 5" in message and "Sepssis" in message and "'Maybe'" in message
    assert "Positive" in message and "Negative" in message


def test_label_is_ignored_when_scoring(tmp_path: Path):
    path = write_csv(tmp_path / "t.csv", with_value("Sepssis", "Maybe"))
    assert load_table(path).y is None


def test_label_tolerates_case_and_spaces(tmp_path: Path):
    rows = with_value("Sepssis", '" positive "', row=0)
    rows[1][-1] = "NEGATIVE"
    rows[2][-1] = "positive"
    batch = load_training_data(write_csv(tmp_path / "t.csv", rows))
    np.testing.assert_array_equal(batch.y, EXPECTED_Y)


def test_duplicate_id(tmp_path: Path):
    message = load_error(write_csv(tmp_path / "t.csv", with_value("ID", "ICU200010", row=3)))
    assert "row 4" in message and "'ICU200010'" in message and "duplicate ID" in message


def test_empty_cell_where_zero_means_missing_is_nan(tmp_path: Path):
    batch = load_training_data(write_csv(tmp_path / "t.csv", with_value("PL", "", row=1)))
    pl = [f.code for f in FEATURES].index("PL")
    assert np.isnan(batch.X[1, pl])
    expected = EXPECTED_X.copy()
    expected[1, pl] = np.nan
    np.testing.assert_array_equal(batch.X, expected)


def test_empty_cell_in_required_feature_is_an_error(tmp_path: Path):
    message = load_error(write_csv(tmp_path / "t.csv", with_value("Age", "", row=0)))
    assert "row 1" in message and "column Age" in message and "required" in message


def test_message_counts_further_invalid_rows(tmp_path: Path):
    rows = with_value("Age", "500", row=0)
    rows[3][HEADER.index("Age")] = "x"
    message = load_error(write_csv(tmp_path / "t.csv", rows))
    assert "row 1" in message and "1 more invalid row" in message


# --- column names and formats -------------------------------------------------------------


def test_descriptive_column_names(tmp_path: Path):
    header = ["ID"] + [f.name for f in FEATURES] + ["Sepssis"]
    assert "plasma_glucose" in header and "blood_work_result_1" in header
    batch = load_training_data(write_csv(tmp_path / "t.csv", header=header))
    np.testing.assert_array_equal(batch.X, EXPECTED_X)
    np.testing.assert_array_equal(batch.y, EXPECTED_Y)


def test_columns_in_another_order(tmp_path: Path):
    order = list(reversed(range(len(HEADER))))
    header = [HEADER[i] for i in order]
    rows = [[r[i] for i in order] for r in ROWS]
    batch = load_training_data(write_csv(tmp_path / "t.csv", rows, header=header))
    np.testing.assert_array_equal(batch.X, EXPECTED_X)
    assert batch.ids == EXPECTED_IDS


def test_parquet_gives_same_arrays_as_csv(tmp_path: Path):
    from_csv = load_training_data(write_csv(tmp_path / "t.csv"))
    frame = pd.DataFrame(EXPECTED_X, columns=HEADER[1:10])
    frame.insert(0, "ID", EXPECTED_IDS)
    frame["Sepssis"] = [r[-1] for r in ROWS]
    frame.to_parquet(tmp_path / "t.parquet", index=False)
    from_parquet = load_training_data(tmp_path / "t.parquet")
    np.testing.assert_array_equal(from_parquet.X, from_csv.X)
    assert from_parquet.ids == from_csv.ids
    np.testing.assert_array_equal(from_parquet.y, from_csv.y)
    np.testing.assert_array_equal(from_parquet.rows, from_csv.rows)


def test_parquet_errors_name_the_file(tmp_path: Path):
    frame = pd.DataFrame(EXPECTED_X, columns=HEADER[1:10])
    frame.loc[2, "Age"] = 500.0
    frame.to_parquet(tmp_path / "t.parquet", index=False)
    message = load_error(tmp_path / "t.parquet", want_label=False)
    assert "row 3" in message and "column Age" in message


# --- streaming and frame validation -------------------------------------------------------


def test_iter_batches_streams_rows_in_order(tmp_path: Path):
    batches = list(iter_batches(write_csv(tmp_path / "t.csv"), chunk_rows=2, want_label=True))
    assert [len(b) for b in batches] == [2, 2, 1]
    np.testing.assert_array_equal(np.concatenate([b.rows for b in batches]), [1, 2, 3, 4, 5])
    np.testing.assert_array_equal(np.concatenate([b.X for b in batches]), EXPECTED_X)
    assert [i for b in batches for i in b.ids] == EXPECTED_IDS
    assert all(not b.errors for b in batches)


def test_iter_batches_detects_duplicate_id_across_chunks(tmp_path: Path):
    # Row 4 repeats row 1's ID; with chunk_rows=2 they are in different chunks.
    path = write_csv(tmp_path / "t.csv", with_value("ID", "ICU200010", row=3))
    batches = list(iter_batches(path, chunk_rows=2))
    errors = [e for b in batches for e in b.errors]
    assert errors == [RowError(4, "ID", "ICU200010", "duplicate ID")]
    np.testing.assert_array_equal(np.concatenate([b.rows for b in batches]), [1, 2, 3, 5])


def test_validate_frame_keeps_valid_rows_and_lists_invalid_ones():
    rows = with_value("Age", "500", row=1)
    rows[3][HEADER.index("PL")] = "abc"
    frame = pd.read_csv(
        io.StringIO("\n".join(",".join(r) for r in [HEADER, *rows])),
        dtype=str,
        keep_default_na=False,
    )
    batch = validate_frame(frame, want_label=True)
    np.testing.assert_array_equal(batch.rows, [1, 3, 5])
    np.testing.assert_array_equal(batch.X, EXPECTED_X[[0, 2, 4]])
    assert batch.ids == [EXPECTED_IDS[i] for i in (0, 2, 4)]
    np.testing.assert_array_equal(batch.y, EXPECTED_Y[[0, 2, 4]])
    assert [(e.row, e.column, e.value) for e in batch.errors] == [
        (2, "Age", "500"),
        (4, "PL", "abc"),
    ]
    assert str(batch.errors[0]).startswith("row 2, column Age, value '500': out of range")

    offset = validate_frame(frame, first_row=11, want_label=True)
    np.testing.assert_array_equal(offset.rows, [11, 13, 15])
    assert [e.row for e in offset.errors] == [12, 14]


def test_validate_matrix_applies_validate_frames_rules_without_a_table():
    from sepsis_api.ml.data import validate_matrix
    from sepsis_api.schema import FEATURE_CODES

    X = np.array(
        [
            [6, 148, 72, 35, 0, 33.6, 0.627, 50, 0],
            [6, 700, 72, 35, 0, 33.6, 0.627, 50, 0],  # PL out of range
            [np.nan, 148, 72, 35, 0, 33.6, 0.627, 50, 0],  # PRG required
            [6, 148, 72, np.nan, 0, 33.6, 0.627, 50, 1],  # SK not measured: fine
            [6, 148, 72, 35, 0, 33.6, 0.627, np.inf, 2],  # Age infinite, Insurance 2
        ]
    )
    fast = validate_matrix(X, ["a", "b", "c", "d", "e"])
    table = validate_frame(pd.DataFrame(X, columns=list(FEATURE_CODES)))
    assert fast.errors == table.errors and len(fast.errors) == 3
    assert np.array_equal(fast.X, table.X, equal_nan=True) and fast.ids == ["a", "d"]
    assert fast.rows.tolist() == table.rows.tolist() == [1, 4]
