"""The offline engine (``batch.offline.score_file``) called directly on the test file."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sepsis_api.batch import OUTPUT_COLUMNS, rejected_path_for, score_file
from sepsis_api.ml.data import DataError, load_table
from sepsis_api.ml.scoring import ServedModel, open_model, score
from sepsis_api.ml.store import PACKAGED_ROOT, Registry

ROWS = 169


@pytest.fixture(scope="module")
def served() -> ServedModel:
    return open_model(None, Registry([PACKAGED_ROOT]))


@pytest.fixture(scope="module")
def forest() -> ServedModel:
    return open_model("random_forest", Registry([PACKAGED_ROOT]))


def bad_copy(test_csv: Path, folder: Path, **values: tuple[int, str]) -> Path:
    """The test file with ``column=(row, value)`` replaced (rows 1-based, header not counted)."""
    rows = list(csv.reader(test_csv.read_text(encoding="utf-8-sig").splitlines()))
    for column, (row, value) in values.items():
        rows[row][rows[0].index(column)] = value
    path = folder / "bad.csv"
    with open(path, "w", newline="") as fh:
        csv.writer(fh).writerows(rows)
    return path


def bad_rows(test_csv: Path, folder: Path) -> Path:
    return bad_copy(test_csv, folder, Age=(5, "five hundred"), M11=(9, "900"))


def test_csv_output_keeps_order_columns_and_the_scoring_function(
    test_csv: Path, tmp_path: Path, served: ServedModel
) -> None:
    out = tmp_path / "scores.csv"
    seen: list[int] = []
    result = score_file(test_csv, out, served, chunk_rows=50, progress=seen.append)
    assert (result.scored, result.rejected, result.rejected_path) == (ROWS, [], None)
    assert seen == [50, 100, 150, ROWS]
    df = pd.read_csv(out, dtype={"ID": str})
    assert tuple(df.columns) == OUTPUT_COLUMNS
    table = load_table(test_csv)
    assert list(df["ID"]) == table.ids  # input order
    expected = score(served, table.X)
    np.testing.assert_allclose(df["probability"], expected.probability, rtol=0, atol=5e-7)
    assert list(df["label"]) == list(expected.label)
    assert list(df["risk_band"]) == list(expected.band)
    assert set(df["model"]) == {served.name} and set(df["model_version"]) == {served.version}
    first = out.read_text(encoding="utf-8").splitlines()[1]
    assert first.split(",")[1] == f"{expected.probability[0]:.6f}"  # six decimals
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scores.csv"]


def test_parquet_in_and_out_with_probabilities_equal_to_score(
    test_csv: Path, tmp_path: Path, forest: ServedModel
) -> None:
    src = tmp_path / "in.parquet"
    pd.read_csv(test_csv, encoding="utf-8-sig").to_parquet(src)
    out = tmp_path / "out.parquet"
    result = score_file(src, out, forest, chunk_rows=40)
    assert result.scored == ROWS
    df = pd.read_parquet(out)
    assert tuple(df.columns) == OUTPUT_COLUMNS
    table = load_table(test_csv)
    assert list(df["ID"]) == table.ids
    expected = score(forest, table.X)
    assert np.array_equal(df["probability"].to_numpy(), expected.probability)
    assert list(df["label"]) == list(expected.label)
    assert set(df["model"]) == {"random_forest"}


def test_an_invalid_row_raises_and_writes_nothing(
    test_csv: Path, tmp_path: Path, served: ServedModel
) -> None:
    bad = bad_rows(test_csv, tmp_path)
    out = tmp_path / "scores.csv"
    with pytest.raises(DataError, match=r"row 5, column Age, value 'five hundred'"):
        score_file(bad, out, served, chunk_rows=7)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.csv"]  # no output, no temporary


@pytest.mark.parametrize("name", ["scores.csv", "scores.parquet"])
def test_an_existing_output_is_left_untouched_when_scoring_fails(
    test_csv: Path, tmp_path: Path, served: ServedModel, name: str
) -> None:
    out = tmp_path / name
    out.write_bytes(b"the previous run's scores\n")
    side = rejected_path_for(out)
    side.write_text("row,column,value,reason\n1,Age,x,an earlier run\n")
    bad = bad_copy(test_csv, tmp_path, Age=(150, "old"))  # fails in the last chunk
    with pytest.raises(DataError, match="row 150, column Age"):
        score_file(bad, out, served, chunk_rows=50)
    assert out.read_bytes() == b"the previous run's scores\n"
    assert "an earlier run" in side.read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["bad.csv", name, side.name])


def test_skip_invalid_sets_rows_aside_with_their_reason(
    test_csv: Path, tmp_path: Path, served: ServedModel
) -> None:
    out = tmp_path / "scores.csv"
    result = score_file(bad_rows(test_csv, tmp_path), out, served, skip_invalid=True)
    assert result.scored == ROWS - 2
    assert [(r.row, r.column) for r in result.rejected] == [(5, "Age"), (9, "M11")]
    assert result.rejected_path == tmp_path / "scores.rejected.csv"
    side = pd.read_csv(result.rejected_path, dtype=str)
    assert list(side.columns) == ["row", "column", "value", "reason"]
    assert list(side["row"]) == ["5", "9"]
    assert list(side["column"]) == ["Age", "M11"]
    assert list(side["value"]) == ["five hundred", "900"]
    assert "from 0 to 100" in side["reason"].iloc[1]
    ids = load_table(test_csv).ids
    scored = pd.read_csv(out, dtype={"ID": str})
    assert list(scored["ID"]) == [i for n, i in enumerate(ids, 1) if n not in (5, 9)]


def test_a_stale_side_file_is_removed_when_nothing_is_set_aside(
    test_csv: Path, tmp_path: Path, served: ServedModel
) -> None:
    out = tmp_path / "scores.csv"
    side = rejected_path_for(out)
    side.write_text("row,column,value,reason\n3,PL,x,an earlier run\n")
    result = score_file(test_csv, out, served, skip_invalid=True)
    assert result.rejected_path is None and not side.exists()
    assert len(pd.read_csv(out)) == ROWS


def test_parquet_chunks_whose_rows_were_all_set_aside_keep_one_schema(
    test_csv: Path, tmp_path: Path, served: ServedModel
) -> None:
    out = tmp_path / "scores.parquet"
    bad = bad_copy(test_csv, tmp_path, Age=(1, "x"), M11=(7, "900"))  # whole chunks 1 and 7
    result = score_file(bad, out, served, skip_invalid=True, chunk_rows=1)
    assert result.scored == ROWS - 2
    df = pd.read_parquet(out)
    assert len(df) == ROWS - 2 and tuple(df.columns) == OUTPUT_COLUMNS
    assert all(isinstance(i, str) for i in df["ID"])


def test_rows_without_an_id_column_are_named_by_their_row_number(
    test_csv: Path, tmp_path: Path, served: ServedModel
) -> None:
    src = tmp_path / "no_id.csv"
    pd.read_csv(test_csv, encoding="utf-8-sig").drop(columns=["ID"]).to_csv(src, index=False)
    out = tmp_path / "scores.csv"
    score_file(src, out, served)
    assert list(pd.read_csv(out, dtype={"ID": str})["ID"]) == [str(n) for n in range(1, ROWS + 1)]


def test_an_unreadable_file_is_a_data_error(tmp_path: Path, served: ServedModel) -> None:
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(DataError, match="empty"):
        score_file(empty, tmp_path / "scores.csv", served)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.csv"]
