"""``read_tables`` holds memory bounded by its chunk, not by the file: Arrow's bytes in use while
a file is streamed stay far below the file's own size (a CSV's read-ahead of blocks, a Parquet
file's row group of a million rows)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest

from sepsis_api.ml.data import read_tables

ROWS = 1_200_000
CHUNK_ROWS = 25_000
BOUND = 40 << 20  # bytes of Arrow memory in use at most while reading


@pytest.fixture(scope="module")
def patients() -> pa.Table:
    rng = np.random.default_rng(7)
    columns = ["PRG", "PL", "PR", "SK", "TS", "M11", "BD2", "Age", "Insurance"]
    table = {"ID": pa.array([f"ICU{i:012d}" for i in range(ROWS)])}
    table.update({c: pa.array(rng.uniform(0, 200, ROWS).round(3)) for c in columns})
    return pa.table(table)


def peak_while_reading(path: Path) -> int:
    before = pa.total_allocated_bytes()
    peak, rows = 0, 0
    for table in read_tables(path, chunk_rows=CHUNK_ROWS):
        peak = max(peak, pa.total_allocated_bytes() - before)
        rows += table.num_rows
    assert rows == ROWS
    return peak


def test_a_csv_is_read_in_memory_bounded_by_its_blocks(patients: pa.Table, tmp_path: Path) -> None:
    path = tmp_path / "patients.csv"
    pcsv.write_csv(patients, path)
    assert path.stat().st_size > 2 * BOUND
    assert peak_while_reading(path) < BOUND


def test_a_parquet_row_group_is_not_read_whole(patients: pa.Table, tmp_path: Path) -> None:
    path = tmp_path / "patients.parquet"
    pq.write_table(patients, path, row_group_size=ROWS)
    assert patients.nbytes > 2 * BOUND
    assert peak_while_reading(path) < BOUND
