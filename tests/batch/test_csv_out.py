"""The scores' CSV writer (``batch.csv_out``) writes the bytes pyarrow's CSV writer writes for
the same batches, with the probability cast to ``decimal128(7, 6)``."""

from __future__ import annotations

import io

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv

from sepsis_api.batch import OUTPUT_SCHEMA
from sepsis_api.batch.csv_out import PROBABILITY, ScoresCsv


def pyarrows(batches: list[pa.RecordBatch]) -> bytes:
    out = io.BytesIO()
    i = OUTPUT_SCHEMA.get_field_index("probability")
    schema = OUTPUT_SCHEMA.set(i, pa.field("probability", PROBABILITY))
    with pcsv.CSVWriter(out, schema) as writer:
        for b in batches:
            six = pc.cast(b.column(i), PROBABILITY, safe=False)
            writer.write(b.set_column(i, "probability", six))
    return out.getvalue()


def ours(batches: list[pa.RecordBatch]) -> bytes:
    out = io.BytesIO()
    writer = ScoresCsv(out)
    for b in batches:
        writer.write(b)
    return out.getvalue()


def batch(ids: list[str], p: np.ndarray, model: str = "m", version: str = "v1") -> pa.RecordBatch:
    n = len(ids)
    return pa.RecordBatch.from_arrays(
        [
            pa.array(ids, pa.string()),
            pa.array(p, pa.float64()),
            pa.array(np.where(p >= 0.5, "Positive", "Negative"), pa.string()),
            pa.array(np.where(p >= 0.7, "high", "low"), pa.string()),
            pa.array([model] * n, pa.string()),
            pa.array([version] * n, pa.string()),
        ],
        schema=OUTPUT_SCHEMA,
    )


def test_every_probability_and_awkward_text_as_pyarrow_writes_them() -> None:
    rng = np.random.default_rng(5)
    p = np.concatenate(
        [
            rng.random(20_000),
            np.array([0.0, 1.0, 0.5, 1e-7, 5e-7, 4.9999999e-7, 0.9999995, 0.1234565, 1 - 1e-12]),
            np.round(rng.random(2_000), 7),  # halfway cases at the seventh decimal
        ]
    )
    ids = [f"P{i}" for i in range(len(p))]
    ids[:6] = ['a"b', "c,d", "e\nf", "é ü", "", '""']
    whole = batch(ids, p, model='odd "model", name', version="2026-01\n")
    parts = [whole.slice(0, 7), whole.slice(7, 0), whole.slice(7, 12_000), whole.slice(12_007)]
    assert ours(parts) == pyarrows(parts)
    assert ours([whole]) == pyarrows([whole])


def test_no_rows_is_the_header_alone() -> None:
    empty = pa.RecordBatch.from_pylist([], schema=OUTPUT_SCHEMA)
    assert ours([empty]) == pyarrows([empty]) == pyarrows([])


def test_a_batch_with_nulls_goes_through_pyarrows_writer() -> None:
    b = batch(["a", "b"], np.array([0.25, 0.75]))
    b = b.set_column(3, "risk_band", pa.array([None, "high"], pa.string()))
    assert ours([b]) == pyarrows([b])
