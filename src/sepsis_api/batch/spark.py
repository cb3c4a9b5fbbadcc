"""The Spark engine: ``DataFrame.mapInArrow`` over THE batch function.

``score(df, model=...)`` is the helper for Spark users (a notebook, a Databricks job): it
returns ``df``'s columns with the scores appended. ``score_file`` is ``sepsis-api predict
--engine spark``: Spark reads the file, its tasks score it, the driver writes one output file
exactly as the local engine does.

Every task gets the model as a ``ModelBundle`` (the version directory's bytes, shipped with the
job) and loads it through the hash-verifying store loader, once per Python worker process
(Spark reuses its Python workers between tasks: ``spark.python.worker.reuse``, on by default).
Needs the ``spark`` extra (``pip install 'sepsis-api[spark]'``) and Java 17 or later; nothing
else in the package imports this module.
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa

from sepsis_api.batch.assemble import assemble, parts_dir, read_parts
from sepsis_api.batch.bundle import ModelBundle, bundle_for
from sepsis_api.batch.offline import OfflineResult, check_writable
from sepsis_api.batch.partitions import (
    ROW_RESULT_SCHEMA,
    SCORE_FIELDS,
    load,
    object_store_env,
    read_part,
    row_results,
    url_parts,
    with_scores,
)
from sepsis_api.ml.locations import is_parquet, is_url
from sepsis_api.ml.store import Registry

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession


def local_session(master: str = "local[2]", *, app_name: str = "sepsis-api") -> SparkSession:
    """A Spark session for ``master`` (or the running one), quiet, on loopback when local.

    With a ``local[...]`` master the Python workers run this interpreter (so they import this
    package from the same environment) and the driver binds to 127.0.0.1 with no web UI.
    """
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.master(master).appName(app_name)
    if master.startswith("local"):
        # Read by PySpark when the session starts (its default is "python3" on PATH).
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        builder = (
            builder.config("spark.driver.host", "127.0.0.1")
            .config("spark.driver.bindAddress", "127.0.0.1")
            .config("spark.ui.enabled", "false")
            .config("spark.ui.showConsoleProgress", "false")
        )
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("ERROR")
    # PySpark warns about pandas 3 wherever it checks pandas, mapInArrow included; these tasks
    # exchange Arrow batches only and never go through PySpark's pandas conversion.
    warnings.filterwarnings(
        "ignore", message="PySpark does not yet fully support pandas", category=FutureWarning
    )
    return session


def score(
    df: DataFrame,
    model: str | ModelBundle | None = None,
    *,
    registry: Registry | None = None,
) -> DataFrame:
    """``df`` with ``probability``, ``label``, ``risk_band``, ``model`` and ``model_version``
    appended, row for row.

    ``df`` has the feature columns by code (``PRG``...) or case-study name, as numbers or
    text; other columns are carried through unchanged. ``model`` is a model reference (default:
    the registry's default model) or a bundle made with ``bundle_for``. An invalid row fails
    the job with the ``DataError`` of the batch function, naming the partition, the row within
    it, the column and the value.
    """
    from pyspark.sql.types import DoubleType, StringType, StructField, StructType

    bundle = model if isinstance(model, ModelBundle) else bundle_for(model, registry)
    clash = [f.name for f in SCORE_FIELDS if f.name in df.columns]
    if clash:
        raise ValueError(
            f"the input already has column(s) {', '.join(clash)}; rename or drop them first"
        )
    spark_type = {pa.float64(): DoubleType(), pa.string(): StringType()}
    schema = StructType(
        [*df.schema.fields, *(StructField(f.name, spark_type[f.type]) for f in SCORE_FIELDS)]
    )
    return df.mapInArrow(partial(_scores_task, bundle), schema)


def _scores_task(
    bundle: ModelBundle, batches: Iterator[pa.RecordBatch]
) -> Iterator[pa.RecordBatch]:
    from pyspark import TaskContext

    served = load(bundle)
    context = TaskContext.get()
    where = f"Spark partition {context.partitionId() if context else '?'}"
    first = 1
    for batch in batches:
        yield with_scores(batch, served, first_row=first, where=where)
        first += batch.num_rows


def _row_results_task(
    bundle: ModelBundle, batches: Iterator[pa.RecordBatch]
) -> Iterator[pa.RecordBatch]:
    served = load(bundle)
    for batch in batches:
        yield row_results(batch, served)


def _url_task(
    bundle: ModelBundle,
    location: str,
    parts: list[int],
    env: dict[str, str],
    ids: Iterator[pa.RecordBatch],
) -> Iterator[pa.RecordBatch]:
    served = load(bundle)
    for batch in ids:
        for i in batch.column(0).to_numpy().tolist():
            for part in read_part(location, parts[i], env):
                yield row_results(part, served)


def read_file(session: SparkSession, path: str | Path) -> DataFrame:
    """A CSV (header row, every column as text: the batch function validates and parses) or
    Parquet file as a DataFrame, its partitions in file order."""
    path = str(path)
    if is_parquet(path):
        return session.read.parquet(path)
    df = (
        session.read.option("header", True)
        .option("inferSchema", False)
        .option("mode", "FAILFAST")  # a row with too many or too few fields fails the job
        .option("escape", '"')  # "" inside quotes, as in the local reader
        .option("encoding", "UTF-8")
        .csv(path)
    )
    # Spark's CSV reader keeps a byte-order mark in the first header name.
    return df.toDF(*(c.lstrip("\ufeff") for c in df.columns))


def score_file(
    input_path: str | Path,
    output: str | Path,
    bundle: ModelBundle,
    *,
    master: str = "local[2]",
    skip_invalid: bool = False,
    progress: Callable[[int], None] | None = None,
) -> OfflineResult:
    """``sepsis-api predict --engine spark``: the local engine's contract (one output file in
    input order, written whole or not at all; errors and ``OUTPUT.rejected.csv`` naming file
    rows) with Spark reading and scoring the file. The scored partitions are written by the
    tasks as Parquet parts to a temporary directory beside the output (it must be reachable by
    the executors: local, or a shared file system), then joined in order by the driver.

    An ``s3://`` input is read by the tasks themselves through pyarrow's S3 filesystem (Spark's
    own ``s3a://`` needs the hadoop-aws jars): one task per Parquet row group, one for a whole
    CSV. An ``s3://`` output is uploaded by the driver once complete."""
    check_writable(output)
    session = local_session(master)
    schema = _spark_schema(ROW_RESULT_SCHEMA)
    if is_url(input_path):
        location = str(input_path)
        pieces = url_parts(location)
        ids = session.range(len(pieces), numPartitions=len(pieces))
        results = ids.mapInArrow(
            partial(_url_task, bundle, location, pieces, object_store_env()), schema
        )
    else:
        df = read_file(session, input_path)
        results = df.mapInArrow(partial(_row_results_task, bundle), schema)
    with parts_dir(output) as parts:
        results.write.mode("overwrite").parquet(str(parts))
        return assemble(
            read_parts(parts), input_path, output, skip_invalid=skip_invalid, progress=progress
        )


def _spark_schema(schema: pa.Schema) -> str:
    names = {pa.int64(): "bigint", pa.float64(): "double", pa.string(): "string"}
    return ", ".join(f"`{f.name}` {names[f.type]}" for f in schema)
