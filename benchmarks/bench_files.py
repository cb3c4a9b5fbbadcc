"""The benchmarks' input files: the data set's 768 patients (train + test) replicated to any
number of rows under new rising IDs, written as CSV and Parquet a slice at a time, so a
10,000,000-row file costs the benchmark no more memory than a 1,000,000-row one. Missing values
are written as the data set writes them (0), and the Parquet row groups are 131,072 rows.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from sepsis_api.ml.data import load_table

SLICE = 1_000_000
# Header and IDs unquoted, as the data set writes them (pyarrow quotes text by default).
_PLAIN = pacsv.WriteOptions(quoting_style="none", include_header=False)


def patients(data: Path) -> np.ndarray:
    """The data set's feature rows (train then test), as ``load_table`` reads them."""
    return np.vstack([load_table(data / f"Paitients_Files_{s}.csv").X for s in ("Train", "Test")])


def write_files(data: Path, rows: int, folder: Path, features: list[str]) -> tuple[Path, Path]:
    """``folder/patients.csv`` and ``folder/patients.parquet`` with ``rows`` rows: ID, then the
    features in ``features`` order."""
    base = np.nan_to_num(patients(data), nan=0.0)
    csv_path, parquet_path = folder / "patients.csv", folder / "patients.parquet"
    schema = pa.schema([("ID", pa.string()), *((f, pa.float64()) for f in features)])
    with (
        csv_path.open("wb") as csv_file,
        pacsv.CSVWriter(csv_file, schema, write_options=_PLAIN) as csv_out,
        pq.ParquetWriter(parquet_path, schema) as parquet_out,
    ):
        csv_file.write((",".join(schema.names) + "\n").encode())
        for start in range(0, rows, SLICE):
            stop = min(rows, start + SLICE)
            index = np.arange(start, stop) % len(base)
            ids = pa.array([f"P{i:08d}" for i in range(start, stop)], pa.string())
            table = pa.Table.from_arrays(
                [ids, *(pa.array(base[index, j]) for j in range(len(features)))], schema=schema
            )
            csv_out.write_table(table)
            parquet_out.write_table(table, row_group_size=131_072)
    return csv_path, parquet_path
