"""The Arrow data path of ``score_file`` across block boundaries: pyarrow's CSV reader cuts the
file into blocks of bytes, ``score_file`` regroups them into chunks of rows; row numbers, line
endings, quoting and rows set aside must come out as if the file were read whole."""

from __future__ import annotations

import codecs
import csv
import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sepsis_api.batch import score_file
from sepsis_api.ml import data
from sepsis_api.ml.data import DataError, load_table
from sepsis_api.ml.scoring import ServedModel, open_model, score
from sepsis_api.ml.store import PACKAGED_ROOT, Registry
from sepsis_api.schema import FEATURES

BLOCK = 2048  # bytes: the 169-row test file (6.8 kB) is read in four blocks


@pytest.fixture(scope="module")
def served() -> ServedModel:
    return open_model(None, Registry([PACKAGED_ROOT]))


@pytest.fixture
def small_blocks(monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setattr(data, "_MIN_BLOCK", BLOCK)
    return BLOCK


def rows_of(test_csv: Path) -> list[list[str]]:
    return list(csv.reader(test_csv.read_text(encoding="utf-8-sig").splitlines()))


def write(
    path: Path,
    rows: list[list[str]],
    *,
    newline: str = "\n",
    bom: bool = False,
    quote: bool = False,
) -> Path:
    buffer = io.StringIO()
    quoting = csv.QUOTE_ALL if quote else csv.QUOTE_MINIMAL
    csv.writer(buffer, lineterminator=newline, quoting=quoting).writerows(rows)
    path.write_bytes((codecs.BOM_UTF8 if bom else b"") + buffer.getvalue().encode())
    return path


def test_the_file_is_read_in_several_blocks(test_csv: Path, small_blocks: int) -> None:
    assert test_csv.stat().st_size > 2 * small_blocks


def test_a_bad_row_anywhere_is_named_by_its_row_number(
    test_csv: Path, tmp_path: Path, served: ServedModel, small_blocks: int
) -> None:
    rows = rows_of(test_csv)
    age = rows[0].index("Age")
    out = tmp_path / "scores.csv"
    out.write_text("earlier\n")
    for bad in range(1, len(rows)):  # every row, so every block boundary is crossed
        copy = [list(r) for r in rows]
        copy[bad][age] = "five hundred"
        path = write(tmp_path / "bad.csv", copy, newline="\r")
        with pytest.raises(DataError) as info:
            score_file(path, out, served, chunk_rows=7)
        assert f"row {bad}, column Age, value 'five hundred'" in str(info.value)
    assert out.read_text() == "earlier\n"  # left as it was every time
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.csv", "scores.csv"]


@pytest.mark.parametrize("newline", ["\r", "\n", "\r\n"], ids=["CR", "LF", "CRLF"])
@pytest.mark.parametrize("bom", [True, False], ids=["BOM", "no-BOM"])
def test_line_endings_and_bom_across_blocks_give_the_same_scores(
    test_csv: Path, tmp_path: Path, served: ServedModel, newline: str, bom: bool
) -> None:
    rows = rows_of(test_csv)
    rows[100][0] = "ICU, ward 7"  # quoted: a comma in a field
    rows[101][0] = 'ICU "west"'  # quoted: quotes in a field
    rows[102][0] = "ICU\nnorth"  # a line break in a field
    # Every field quoted (numbers too, which read as numbers): Python's writer would not quote
    # a LF in a field when its lines end in CR.
    path = write(tmp_path / "in.csv", rows, newline=newline, bom=bom, quote=True)
    expected_ids = [r[0] for r in rows[1:]]
    table = load_table(test_csv)
    for block in (512, 1031, 2048, 4093):  # boundaries fall in different places
        data._MIN_BLOCK, saved = block, data._MIN_BLOCK
        try:
            score_file(path, tmp_path / "out.csv", served, chunk_rows=13)
        finally:
            data._MIN_BLOCK = saved
        df = pd.read_csv(tmp_path / "out.csv", dtype={"ID": str}, keep_default_na=False)
        assert list(df["ID"]) == expected_ids, block
        expected = score(served, table.X).probability
        np.testing.assert_allclose(df["probability"], expected, rtol=0, atol=5e-7)


def test_skip_invalid_over_blocks_sets_aside_exactly_the_bad_rows(
    test_csv: Path, tmp_path: Path, served: ServedModel, small_blocks: int
) -> None:
    rows = rows_of(test_csv)
    header = rows[0]
    bad = {3: ("PL", "x"), 77: ("Age", "500"), 78: ("M11", ""), 150: ("BD2", "-1"), 169: ("ID", "")}
    copy = [list(r) for r in rows]
    for row, (column, value) in bad.items():
        copy[row][header.index(column)] = value
    copy[169][0] = copy[2][0]  # a duplicate ID, in the last block, of one in the first
    path = write(tmp_path / "in.csv", copy, newline="\r\n", bom=True)
    out = tmp_path / "scores.csv"
    result = score_file(path, out, served, skip_invalid=True, chunk_rows=10)
    assert [r.row for r in result.rejected] == [3, 77, 150, 169]  # 78: M11 may be empty
    assert [r.column for r in result.rejected] == ["PL", "Age", "BD2", "ID"]
    assert result.rejected[-1].reason == "duplicate ID"
    side = pd.read_csv(tmp_path / "scores.rejected.csv", keep_default_na=False)
    assert list(side["row"]) == [3, 77, 150, 169]
    assert list(side["value"]) == ["x", "500", "-1", copy[2][0]]
    df = pd.read_csv(out, dtype={"ID": str})
    kept = [i for i in range(1, len(rows)) if i not in {3, 77, 150, 169}]
    assert list(df["ID"]) == [copy[i][0] for i in kept]
    assert result.scored == len(kept) == len(df)


def test_a_row_with_another_number_of_fields_is_named_in_a_later_block(
    test_csv: Path, tmp_path: Path, served: ServedModel, small_blocks: int
) -> None:
    rows = rows_of(test_csv)
    for row, extra in ((120, ["surplus"]), (121, None)):
        copy = [list(r) for r in rows]
        copy[row] = copy[row] + extra if extra else copy[row][:-1]
        path = write(tmp_path / "in.csv", copy)
        with pytest.raises(DataError, match=f"row {row} has (more|fewer) fields than the header"):
            score_file(path, tmp_path / "o.csv", served, skip_invalid=True, chunk_rows=50)
        assert not (tmp_path / "o.csv").exists()


def test_fifty_thousand_patients_row_by_row_as_the_scoring_function(
    tmp_path: Path, served: ServedModel
) -> None:
    """The real block size (three blocks here): every written probability is the scoring
    function's, to the six decimals written."""
    rng = np.random.default_rng(13)
    n = 50_000
    frame = pd.DataFrame(
        {
            "ID": [f"G{i:06d}" for i in range(n)],
            "PRG": rng.integers(0, 18, n),
            "PL": rng.uniform(40, 200, n).round(0),
            "PR": rng.uniform(0, 120, n).round(0),
            "SK": rng.uniform(0, 60, n).round(0),
            "TS": rng.uniform(0, 800, n).round(0),
            "M11": rng.uniform(0, 60, n).round(1),
            "BD2": rng.uniform(0.05, 2.4, n).round(3),
            "Age": rng.integers(21, 81, n),
            "Insurance": rng.integers(0, 2, n),
        }
    )
    src = tmp_path / "patients.csv"
    frame.to_csv(src, index=False)
    assert src.stat().st_size > 2 * data._MIN_BLOCK
    for model in ("logistic_regression", "random_forest"):
        model_served = open_model(model, Registry([PACKAGED_ROOT]))
        out = tmp_path / f"{model}.csv"
        score_file(src, out, model_served)
        written = pd.read_csv(out, dtype=str)
        expected = score(model_served, frame.iloc[:, 1:].to_numpy(dtype=np.float64))
        assert list(written["ID"]) == list(frame["ID"])
        assert list(written["probability"]) == [f"{p:.6f}" for p in expected.probability]
        assert list(written["label"]) == list(expected.label)
        assert list(written["risk_band"]) == list(expected.band)
        pq_out = tmp_path / f"{model}.parquet"
        score_file(src, pq_out, model_served, chunk_rows=7_000)
        parquet = pd.read_parquet(pq_out)
        assert np.array_equal(parquet["probability"].to_numpy(), expected.probability)
    del served


def test_duplicate_ids_are_found_once_ids_stop_rising(
    test_csv: Path, tmp_path: Path, served: ServedModel, small_blocks: int
) -> None:
    """Rising IDs are checked by the last one alone; at the first ID that does not rise the
    IDs read so far are taken in again, so a repeat of an early ID is still found later."""
    rows = rows_of(test_csv)
    header, body = rows[0], [list(r) for r in rows[1:]]
    rng = np.random.default_rng(7)
    head, tail = body[:40], body[40:]
    head.sort(key=lambda r: r[0])  # rising for four chunks of 10 rows
    rng.shuffle(tail)  # then in no order
    copy = head + tail
    copy[119][0] = copy[6][0]  # row 120 repeats row 7 (read while IDs rose)
    copy[159][0] = copy[99][0]  # row 160 repeats row 100 (read after they stopped)
    path = write(tmp_path / "in.csv", [header, *copy])
    out = tmp_path / "scores.csv"
    result = score_file(path, out, served, skip_invalid=True, chunk_rows=10)
    assert [(r.row, r.value, r.reason) for r in result.rejected] == [
        (120, copy[6][0], "duplicate ID"),
        (160, copy[99][0], "duplicate ID"),
    ]
    df = pd.read_csv(out, dtype={"ID": str})
    assert list(df["ID"]) == [r[0] for i, r in enumerate(copy, 1) if i not in {120, 160}]


def test_numeric_parquet_ids_in_no_order_keep_their_duplicate_check(
    test_csv: Path, tmp_path: Path, served: ServedModel
) -> None:
    X = load_table(test_csv).X
    ids = np.random.default_rng(3).permutation(len(X)) + 1000
    ids[150] = ids[20]
    frame = pd.DataFrame(X, columns=[f.code for f in FEATURES])
    frame.insert(0, "ID", ids)
    path = tmp_path / "in.parquet"
    frame.to_parquet(path)
    with pytest.raises(DataError, match=f"row 151, column ID, value '{ids[20]}': duplicate ID"):
        score_file(path, tmp_path / "out.parquet", served, chunk_rows=16)
    assert not (tmp_path / "out.parquet").exists()
