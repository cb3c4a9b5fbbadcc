"""``sepsis_api.spark.score`` on a real Spark local[2] session: the caller's columns kept, the
local engine's scores row for row, the model loaded once per Python worker process, a tampered
bundle refused by the workers, invalid rows named."""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest
from pyspark import cloudpickle

from sepsis_api.batch import score_file as local_score_file
from sepsis_api.batch.bundle import ModelBundle
from sepsis_api.batch.partitions import load
from sepsis_api.ml.scoring import open_model
from sepsis_api.ml.store import PACKAGED_ROOT, Registry
from sepsis_api.spark import bundle_for, score

# The probe below runs in Spark's Python workers, which cannot import this test module.
cloudpickle.register_pickle_by_value(sys.modules[__name__])


@pytest.fixture(scope="module")
def bundle() -> ModelBundle:
    return bundle_for("random_forest")


def test_score_keeps_the_callers_columns_and_gives_the_local_scores(
    spark, test_csv: Path, tmp_path: Path, bundle: ModelBundle
) -> None:
    patients = pd.read_csv(test_csv, encoding="utf-8-sig", dtype={"ID": str})
    patients["ward"] = [f"W{i % 3}" for i in range(len(patients))]
    df = spark.createDataFrame(patients).repartition(4)  # rows move between partitions
    scored = score(df, bundle).toArrow().to_pandas().set_index("ID").loc[patients["ID"]]
    assert list(scored.columns) == [
        *[c for c in patients.columns if c != "ID"],
        "probability",
        "label",
        "risk_band",
        "model",
        "model_version",
    ]
    assert list(scored["ward"]) == list(patients["ward"])
    local = tmp_path / "local.parquet"
    local_score_file(test_csv, local, open_model("random_forest", Registry([PACKAGED_ROOT])))
    expected = pd.read_parquet(local).set_index("ID")
    for column in ("probability", "label", "risk_band", "model", "model_version"):
        assert list(scored[column]) == list(expected[column]), column


def _probe(bundle: ModelBundle, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    from pyspark import TaskContext

    served = load(bundle)  # what every scoring task calls first
    context = TaskContext.get()
    for batch in batches:
        n = batch.num_rows
        yield pa.RecordBatch.from_pydict(
            {
                "partition": [context.partitionId()] * n,
                "pid": [os.getpid()] * n,
                "model_object": [id(served)] * n,
                "compiled_object": [id(served.compiled)] * n,
            }
        )


def test_model_is_loaded_and_compiled_once_per_python_worker_not_per_partition(
    spark, bundle: ModelBundle
) -> None:
    schema = "partition bigint, pid bigint, model_object bigint, compiled_object bigint"
    seen = (
        spark.range(0, 16_000, numPartitions=16)
        .mapInArrow(partial(_probe, bundle), schema)
        .toArrow()
        .to_pandas()
        .drop_duplicates()
    )
    assert seen["partition"].nunique() == 16
    per_process = seen.groupby("pid")[["model_object", "compiled_object"]].nunique()
    assert (per_process == 1).all().all()  # one load per process, whichever partitions it ran
    assert len(per_process) < 16  # and processes ran several partitions each


def test_a_bundle_altered_on_the_way_is_refused_by_the_workers(
    spark, test_csv: Path, bundle: ModelBundle
) -> None:
    files = tuple(
        (rel, data[:-1] + bytes([data[-1] ^ 1]) if rel == "random_forest.npz" else data)
        for rel, data in bundle.files
    )
    # Same card (it still lists the original file's hash), one byte of the forest changed; a
    # version name of its own so that no worker finds the genuine files unpacked already.
    altered = dataclasses.replace(bundle, files=files, version=f"{bundle.version}-altered")
    df = spark.createDataFrame(pd.read_csv(test_csv, encoding="utf-8-sig"))
    with pytest.raises(Exception, match="SHA-256 does not match the card"):
        score(df, altered).collect()


def test_an_invalid_row_fails_the_job_naming_partition_row_column_and_value(
    spark, test_csv: Path, bundle: ModelBundle
) -> None:
    patients = pd.read_csv(test_csv, encoding="utf-8-sig", dtype=str)
    patients.loc[6, "Age"] = "five hundred"
    df = spark.createDataFrame(patients).coalesce(1)
    with pytest.raises(Exception) as failure:
        score(df, bundle).collect()
    assert (
        "Spark partition 0 (rows counted within it), row 7, column Age, value 'five hundred': "
        "not a number" in str(failure.value)
    )


def test_a_score_column_already_in_the_input_is_refused_before_any_job(
    spark, bundle: ModelBundle
) -> None:
    df = spark.createDataFrame(pd.DataFrame({"PRG": [1.0], "probability": [0.5]}))
    with pytest.raises(ValueError, match="already has column"):
        score(df, bundle)
