"""The Dask engine: ``dask.dataframe`` ``map_partitions`` over THE batch function's pandas
wrapper.

``score(ddf, model=...)`` returns ``ddf``'s columns with the scores appended, lazily, as any
Dask operation. ``score_file`` is ``sepsis-api predict --engine dask --scheduler ADDRESS|local``:
Dask reads the file, its workers score it, the driver writes one output file exactly as the
local engine does.

The model travels as one ``ModelBundle`` (the version directory's bytes) in the task graph,
shared by every partition's task; each worker process loads it through the hash-verifying store
loader once. Needs the ``dask`` extra (``pip install 'sepsis-api[dask]'``); nothing else in the
package imports this module.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import pyarrow as pa

from sepsis_api.batch.assemble import assemble, parts_dir, read_parts
from sepsis_api.batch.bundle import ModelBundle, bundle_for
from sepsis_api.batch.frames import score_pandas
from sepsis_api.batch.offline import OfflineResult, check_writable
from sepsis_api.batch.partitions import (
    ROW_RESULT_SCHEMA,
    SCORE_FIELDS,
    load,
    object_store_env,
    read_part,
    row_results,
    url_parts,
)
from sepsis_api.ml.data import DataError
from sepsis_api.ml.locations import is_parquet, is_url
from sepsis_api.ml.store import Registry

if TYPE_CHECKING:
    import dask.dataframe as dd
    from distributed import Client

BLOCKSIZE = "16MB"  # bytes of input per partition: several partitions for each worker
LOCAL_WORKERS = 2  # --scheduler local: a LocalCluster of this many single-threaded processes


@contextmanager
def client_for(scheduler: str) -> Iterator[Client]:
    """A client of the scheduler at ``scheduler`` (``tcp://HOST:PORT``), or of a new
    ``LocalCluster`` on 127.0.0.1 with ``LOCAL_WORKERS`` worker processes for ``local``."""
    from distributed import Client, LocalCluster

    if scheduler != "local":
        with Client(scheduler, timeout=30) as client:
            yield client
        return
    with (
        LocalCluster(
            n_workers=LOCAL_WORKERS,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
            silence_logs=logging.ERROR,  # not the workers' start and stop chatter
        ) as cluster,
        Client(cluster, timeout=30) as client,
    ):
        yield client


def score(
    ddf: dd.DataFrame,
    model: str | ModelBundle | None = None,
    *,
    registry: Registry | None = None,
) -> dd.DataFrame:
    """``ddf`` with ``probability``, ``label``, ``risk_band``, ``model`` and ``model_version``
    appended, row for row (lazy; ``.compute()``, ``.to_parquet()``... run it).

    ``ddf`` has the feature columns by code or case-study name, as numbers or text; other
    columns are carried through. ``model`` is a model reference (default: the registry's
    default model) or a bundle from ``bundle_for``. An invalid row fails the computation with
    the batch function's ``DataError``, naming the partition, the row within it, the column and
    the value.
    """
    from dask.delayed import delayed

    bundle = model if isinstance(model, ModelBundle) else bundle_for(model, registry)
    clash = [f.name for f in SCORE_FIELDS if f.name in ddf.columns]
    if clash:
        raise ValueError(
            f"the input already has column(s) {', '.join(clash)}; rename or drop them first"
        )
    meta = ddf._meta.assign(**{f.name: _empty(f.type) for f in SCORE_FIELDS})
    shipped = delayed(bundle, pure=True)  # one copy in the graph, not one per partition
    return ddf.map_partitions(_scores_partition, shipped, meta=meta)


def _scores_partition(
    pdf: pd.DataFrame, bundle: ModelBundle, partition_info: dict[str, Any] | None = None
) -> pd.DataFrame:
    served = load(bundle)
    number = partition_info["number"] if partition_info else "?"
    ids = [c for c in pdf.columns if str(c).strip().lower() == "id"]
    try:
        scores = score_pandas(pdf.drop(columns=ids), served)
    except DataError as e:
        raise DataError(f"Dask partition {number} (rows counted within it), {e}") from None
    scores.index = pdf.index
    return pdf.assign(**{f.name: scores[f.name] for f in SCORE_FIELDS})


def _row_results_partition(pdf: pd.DataFrame, bundle: ModelBundle) -> pd.DataFrame:
    # A partition read from a large CSV holds its text as chunked Arrow arrays: one batch.
    table = pa.Table.from_pandas(pdf, preserve_index=False).combine_chunks()
    served = load(bundle)
    results = [row_results(batch, served) for batch in table.to_batches()]
    return pa.Table.from_batches(results, schema=ROW_RESULT_SCHEMA).to_pandas()


def _empty(t: pa.DataType) -> pd.Series:
    return pd.Series([], dtype="float64" if t == pa.float64() else "string")


def _url_partition(
    part: int, location: str, bundle: ModelBundle, env: dict[str, str]
) -> pd.DataFrame:
    served = load(bundle)
    results = [row_results(batch, served) for batch in read_part(location, part, env)]
    return pa.Table.from_batches(results, schema=ROW_RESULT_SCHEMA).to_pandas()


def read_file(path: str | Path, *, blocksize: str | int = BLOCKSIZE) -> dd.DataFrame:
    """A CSV (every column as text: the batch function validates and parses) or Parquet file as
    a Dask DataFrame of partitions of about ``blocksize`` bytes, in file order."""
    import dask.dataframe as dd

    if is_parquet(path):
        return dd.read_parquet(str(path), split_row_groups="adaptive", blocksize=blocksize)
    return dd.read_csv(
        str(path),
        dtype=str,
        keep_default_na=False,
        skipinitialspace=True,
        encoding="utf-8-sig",
        blocksize=blocksize,
    )


def score_file(
    input_path: str | Path,
    output: str | Path,
    bundle: ModelBundle,
    *,
    scheduler: str = "local",
    skip_invalid: bool = False,
    progress: Callable[[int], None] | None = None,
    blocksize: str | int = BLOCKSIZE,
) -> OfflineResult:
    """``sepsis-api predict --engine dask``: the local engine's contract (one output file in
    input order, written whole or not at all; errors and ``OUTPUT.rejected.csv`` naming file
    rows) with Dask reading and scoring the file. The workers write their results as Parquet
    parts to a temporary directory beside the output (reachable by every worker: local, or a
    shared file system), which the driver joins in order.

    An ``s3://`` input is read by the tasks through pyarrow's S3 filesystem, one task per
    Parquet row group or one for a whole CSV (``dd.from_map``); an ``s3://`` output is uploaded
    by the driver once complete."""
    import dask.dataframe as dd

    check_writable(output)
    from dask.delayed import delayed

    with parts_dir(output) as parts:
        with client_for(scheduler):
            meta = ROW_RESULT_SCHEMA.empty_table().to_pandas()
            if is_url(input_path):
                location = str(input_path)
                results = dd.from_map(
                    _url_partition, url_parts(location), location=location, bundle=bundle,
                    env=object_store_env(),
                    meta=meta, enforce_metadata=False,
                )  # fmt: skip
            else:
                ddf = read_file(input_path, blocksize=blocksize)
                shipped = delayed(bundle, pure=True)
                results = ddf.map_partitions(_row_results_partition, shipped, meta=meta)
            results.to_parquet(
                str(parts),
                write_index=False,
                schema=ROW_RESULT_SCHEMA,
                name_function=lambda i: f"part-{i:06d}.parquet",
            )
        return assemble(
            read_parts(parts), input_path, output, skip_invalid=skip_invalid, progress=progress
        )
