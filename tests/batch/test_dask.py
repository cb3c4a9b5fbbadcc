"""``sepsis_api.dask.score`` on a real LocalCluster of two worker processes: the caller's columns
and index kept, the local engine's scores row for row, the model loaded once per worker process,
a tampered bundle refused by the workers, invalid rows named."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import dask.dataframe as dd
import pandas as pd
import pytest
from distributed import Client

from sepsis_api.batch import score_file as local_score_file
from sepsis_api.batch.bundle import ModelBundle
from sepsis_api.batch.partitions import load
from sepsis_api.dask import bundle_for, score
from sepsis_api.ml.scoring import open_model
from sepsis_api.ml.store import PACKAGED_ROOT, Registry


@pytest.fixture(scope="module")
def bundle() -> ModelBundle:
    return bundle_for("random_forest")


def test_score_keeps_the_callers_columns_and_gives_the_local_scores(
    dask_client: Client, test_csv: Path, tmp_path: Path, bundle: ModelBundle
) -> None:
    patients = pd.read_csv(test_csv, encoding="utf-8-sig", dtype={"ID": str})
    patients["ward"] = [f"W{i % 3}" for i in range(len(patients))]
    scored = score(dd.from_pandas(patients, npartitions=5), bundle).compute()
    assert list(scored.columns) == [
        *patients.columns,
        "probability",
        "label",
        "risk_band",
        "model",
        "model_version",
    ]
    pd.testing.assert_frame_equal(scored[patients.columns], patients, check_dtype=False)
    local = tmp_path / "local.parquet"
    local_score_file(test_csv, local, open_model("random_forest", Registry([PACKAGED_ROOT])))
    expected = pd.read_parquet(local)
    for column in ("ID", "probability", "label", "risk_band", "model", "model_version"):
        assert list(scored[column]) == list(expected[column]), column


def _probe(part: pd.DataFrame, bundle: ModelBundle) -> pd.DataFrame:
    served = load(bundle)  # what every scoring task calls first
    return pd.DataFrame(
        {"pid": [os.getpid()], "model_object": [id(served)], "compiled": [id(served.compiled)]}
    )


def test_model_is_loaded_and_compiled_once_per_worker_process_not_per_partition(
    dask_client: Client, bundle: ModelBundle
) -> None:
    import dask

    parts = dd.from_pandas(pd.DataFrame({"x": range(16)}), npartitions=16)
    meta = pd.DataFrame({"pid": [0], "model_object": [0], "compiled": [0]}).iloc[:0]
    seen = parts.map_partitions(_probe, dask.delayed(bundle, pure=True), meta=meta).compute()
    assert len(seen) == 16
    per_process = seen.groupby("pid")[["model_object", "compiled"]].nunique()
    assert (per_process == 1).all().all()  # one load per process, whichever partitions it ran
    assert len(per_process) <= 2  # the two worker processes ran all 16 partitions


def test_a_bundle_altered_on_the_way_is_refused_by_the_workers(
    dask_client: Client, test_csv: Path, bundle: ModelBundle
) -> None:
    files = tuple(
        (rel, data[:-1] + bytes([data[-1] ^ 1]) if rel == "random_forest.npz" else data)
        for rel, data in bundle.files
    )
    # Same card (it still lists the original file's hash), one byte of the forest changed; a
    # version name of its own so that no worker finds the genuine files unpacked already.
    altered = dataclasses.replace(bundle, files=files, version=f"{bundle.version}-altered")
    ddf = dd.from_pandas(pd.read_csv(test_csv, encoding="utf-8-sig"), npartitions=2)
    with pytest.raises(Exception, match="SHA-256 does not match the card"):
        score(ddf, altered).compute()


def test_an_invalid_row_fails_naming_partition_row_column_and_value(
    dask_client: Client, test_csv: Path, bundle: ModelBundle
) -> None:
    patients = pd.read_csv(test_csv, encoding="utf-8-sig", dtype=str)
    patients.loc[100, "M11"] = "900"
    ddf = dd.from_pandas(patients, npartitions=2)  # rows 0-84 and 85-168
    with pytest.raises(Exception) as failure:
        score(ddf, bundle).compute()
    assert (
        "Dask partition 1 (rows counted within it), row 16, column M11, value '900': "
        "out of range" in str(failure.value)
    )
