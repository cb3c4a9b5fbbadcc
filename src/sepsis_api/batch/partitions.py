"""What a Spark or Dask task does with its part of the patients, over THE batch function.

Two shapes, one per caller:

- ``with_scores``: the input columns with the score columns appended (``SCORE_FIELDS``), for
  the ``score(df)`` helpers; an invalid row raises ``DataError`` (through ``frames.score_batch``)
  naming its row within the task's partition, its column and value.
- ``row_results``: one row per input row, scored or with its reason (``ROW_RESULT_SCHEMA``),
  for ``sepsis-api predict --engine spark|dask``. A task cannot know the file row numbers of its
  partition nor the IDs in other partitions, so it reports every row, in order, and the driver
  (``batch.assemble``), reading the partitions in order, gives them their file row numbers and
  checks IDs across partitions: errors, skipped rows and output then match the
  local engine's row for row.

The model comes from a ``ModelBundle`` (bytes shipped with the job), unpacked and loaded once
per worker process by ``frames.served_model``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from sepsis_api.batch.bundle import ModelBundle
from sepsis_api.batch.frames import OUTPUT_SCHEMA, score_batch, scored_batch, served_model
from sepsis_api.ml.data import DataError, read_tables, validate_arrow_batch
from sepsis_api.ml.locations import is_parquet, locate
from sepsis_api.ml.scoring import ServedModel
from sepsis_api.schema import ID_COLUMN

# The score columns the helpers append to a partition's own columns.
SCORE_FIELDS: list[pa.Field[Any]] = [f for f in OUTPUT_SCHEMA if f.name != ID_COLUMN]
ROW_RESULT_SCHEMA = pa.schema(
    [
        pa.field("given_id", pa.string()),  # the row's ID as written (trimmed), null if none
        *SCORE_FIELDS,  # null for an invalid row
        pa.field("error_column", pa.string()),
        pa.field("error_value", pa.string()),
        pa.field("error_reason", pa.string()),  # null for a scored row
    ]
)


def load(bundle: ModelBundle) -> ServedModel:
    """The bundle's model in this process: unpacked on first use, loaded and compiled once."""
    return served_model(bundle.unpack(), bundle.model)


def with_scores(
    batch: pa.RecordBatch, served: ServedModel, *, first_row: int, where: str
) -> pa.RecordBatch:
    """``batch``'s columns followed by its rows' scores (``SCORE_FIELDS``), in input order.

    The ID column plays no part here (the caller's rows keep their own columns, so no ID is
    invented and none is checked for duplicates). An invalid row raises ``DataError`` naming
    ``where`` (the partition), the row counted from ``first_row`` within it, column and value.
    """
    features = batch
    id_at = _id_index(batch.schema)
    if id_at is not None:
        features = batch.drop_columns([batch.schema.names[id_at]])
    try:
        scores = score_batch(features, served, first_row=first_row)
    except DataError as e:
        raise DataError(f"{where} (rows counted within it), {e}") from None
    columns = [*batch.columns, *(scores.column(f.name) for f in SCORE_FIELDS)]
    return pa.RecordBatch.from_arrays(columns, schema=with_scores_schema(batch.schema))


def with_scores_schema(schema: pa.Schema) -> pa.Schema:
    """The schema ``with_scores`` returns for input of ``schema``."""
    clash = [f.name for f in SCORE_FIELDS if f.name in schema.names]
    if clash:
        raise ValueError(
            f"the input already has column(s) {', '.join(clash)}; rename or drop them first"
        )
    return pa.schema([*schema, *SCORE_FIELDS])


def row_results(batch: pa.RecordBatch, served: ServedModel) -> pa.RecordBatch:
    """Every row of ``batch`` in order: its scores, or the column, value and reason it was
    refused for (``ROW_RESULT_SCHEMA``)."""
    n = batch.num_rows
    valid = validate_arrow_batch(batch, first_row=1)  # duplicates within the partition
    scores = scored_batch(served, valid)
    # Scatter the valid rows' scores and the errors into one row per input row.
    at = np.full(n, -1, dtype=np.int64)
    at[valid.rows - 1] = np.arange(len(valid))
    take = pa.array(at, type=pa.int64(), mask=at < 0)
    err_col: list[str | None] = [None] * n
    err_val: list[str | None] = [None] * n
    err_why: list[str | None] = [None] * n
    for e in valid.errors:
        err_col[e.row - 1], err_val[e.row - 1], err_why[e.row - 1] = e.column, e.value, e.reason
    return pa.RecordBatch.from_arrays(
        [
            _given_ids(batch),
            *(scores.column(f.name).take(take) for f in SCORE_FIELDS),
            pa.array(err_col, pa.string()),
            pa.array(err_val, pa.string()),
            pa.array(err_why, pa.string()),
        ],
        schema=ROW_RESULT_SCHEMA,
    )


def _given_ids(batch: pa.RecordBatch) -> pa.Array[Any]:
    """Each row's ID as ``ml.data`` reads it (the column named ID in any case and spacing,
    trimmed text; empty = none), null where there is none: the driver checks duplicates
    across partitions with these, invalid rows included, as the local engine does."""
    id_at = _id_index(batch.schema)
    if id_at is None:
        return pa.nulls(batch.num_rows, pa.string())
    col = batch.column(id_at)
    if not (pa.types.is_string(col.type) or pa.types.is_large_string(col.type)):
        col = pa.array(col.to_pandas().astype("string"), pa.string())
    text = pc.utf8_trim_whitespace(col.cast(pa.string()))
    empty = pc.equal(text, pa.scalar("", pa.string()))
    ids: pa.Array[Any] = pc.if_else(empty, pa.scalar(None, pa.string()), text)
    return ids


def url_parts(location: str) -> list[int]:
    """How an input at a URL is shared among tasks that read it themselves: a Parquet file by
    row group, a CSV file as one part (a CSV cannot be split without reading it); -1 = whole."""
    if not is_parquet(location):
        return [-1]
    place = locate(location)
    return list(range(pq.ParquetFile(place.path, filesystem=place.filesystem).num_row_groups))


def object_store_env() -> dict[str, str]:
    """The driver's AWS_* variables (credentials, region, endpoint), for tasks whose workers
    were started without them; a worker's own settings win (``read_part``)."""
    return {k: v for k, v in os.environ.items() if k.startswith("AWS_")}


def read_part(location: str, part: int, env: dict[str, str]) -> Iterator[pa.RecordBatch]:
    """One part of ``url_parts(location)``, read in the task through pyarrow's filesystem
    (for S3: credentials and endpoint from the worker's AWS_* environment, else from ``env``),
    with the local engine's reader for a whole file."""
    for key, value in env.items():
        os.environ.setdefault(key, value)
    if part < 0:
        for table in read_tables(location):
            yield from table.to_batches()
        return
    place = locate(location)
    table = pq.ParquetFile(place.path, filesystem=place.filesystem).read_row_group(part)
    yield from table.to_batches()


def _id_index(schema: pa.Schema) -> int | None:
    """The ID column's place, by ``ml.data``'s rule (name trimmed, any case; the last wins)."""
    names = {str(c).strip().lower(): i for i, c in enumerate(schema.names)}
    return names.get(ID_COLUMN.lower())
