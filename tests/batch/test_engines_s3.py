"""``s3://`` input and output for the Spark and Dask engines, against moto's S3 server on
loopback (tests/s3.py): the tasks read the object through pyarrow's S3 filesystem (a Parquet
object one row group a task), the driver uploads the finished output; the files are the local
engine's."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from patients import write_patients

from s3 import S3Server
from sepsis_api.batch import score_file as local_score_file
from sepsis_api.batch.bundle import bundle_for
from sepsis_api.ml.data import DataError
from sepsis_api.ml.scoring import open_model
from sepsis_api.ml.store import PACKAGED_ROOT, Registry

MODEL = "random_forest"


@pytest.fixture(params=["spark", "dask"])
def engine(request: pytest.FixtureRequest) -> Any:
    if request.param == "spark":
        from sepsis_api.batch.spark import score_file

        request.getfixturevalue("spark")
        return partial(score_file, master="local[2]")
    from sepsis_api.batch.dask import score_file

    return partial(score_file, scheduler=request.getfixturevalue("dask_client").scheduler.address)


def test_parquet_row_groups_and_a_csv_from_s3_to_s3_give_the_local_files(
    engine: Any, s3: S3Server, train_csv: Path, test_csv: Path, tmp_path: Path
) -> None:
    bucket = s3.new_bucket()
    src = write_patients(tmp_path / "patients.csv", [train_csv, test_csv], 20_000)
    parquet = tmp_path / "patients.parquet"
    pq.write_table(pacsv.read_csv(src), parquet, row_group_size=3_000)  # 7 row groups
    served = open_model(MODEL, Registry([PACKAGED_ROOT]))
    with s3.environment():
        for name, path in (("in.parquet", parquet), ("in.csv", test_csv)):
            url = s3.put(bucket, name, path.read_bytes())
            suffix = path.suffix
            local = tmp_path / f"local{suffix}"
            expected = local_score_file(path, local, served)
            result = engine(url, f"s3://{bucket}/out{suffix}", bundle_for(MODEL))
            assert (result.scored, result.rejected) == (expected.scored, expected.rejected)
            remote = s3.get(bucket, f"out{suffix}")
            if suffix == ".csv":
                assert remote == local.read_bytes()
            else:
                (tmp_path / "remote.parquet").write_bytes(remote)
                assert pq.read_table(tmp_path / "remote.parquet").equals(pq.read_table(local))
    assert s3.keys(bucket) == ["in.csv", "in.parquet", "out.csv", "out.parquet"]


def test_an_invalid_row_in_an_s3_object_is_named_and_no_object_is_written(
    engine: Any, s3: S3Server, train_csv: Path, test_csv: Path, tmp_path: Path
) -> None:
    bucket = s3.new_bucket()
    src = write_patients(
        tmp_path / "bad.csv", [train_csv, test_csv], 9_000, changes={7_777: {"Age": "-4"}}
    )
    parquet = tmp_path / "bad.parquet"
    pq.write_table(pacsv.read_csv(src, convert_options=_text()), parquet, row_group_size=2_000)
    with s3.environment():
        url = s3.put(bucket, "bad.parquet", parquet.read_bytes())
        with pytest.raises(DataError, match=r"row 7777, column Age, value '-4'"):
            engine(url, f"s3://{bucket}/out.csv", bundle_for(MODEL))
    assert s3.keys(bucket) == ["bad.parquet"]


def _text() -> pacsv.ConvertOptions:
    return pacsv.ConvertOptions(column_types={"Age": "string"})
