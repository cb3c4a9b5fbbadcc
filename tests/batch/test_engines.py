"""``sepsis-api predict --engine spark|dask`` against the local engine: the same output file,
the same errors and the same rows set aside, on the test file and on 50,000 generated patients
spread over several partitions (Spark local[2], a Dask LocalCluster of two worker processes)."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from patients import write_patients

from sepsis_api.batch import rejected_path_for
from sepsis_api.batch import score_file as local_score_file
from sepsis_api.batch.bundle import ModelBundle, bundle_for
from sepsis_api.ml.data import DataError
from sepsis_api.ml.scoring import ServedModel, open_model
from sepsis_api.ml.store import PACKAGED_ROOT, Registry

BIG = 50_000
# Rows of the big file made invalid: past the first partitions, a duplicate of an ID from
# another partition (row 12 is valid; row 20,000 is invalid for its value, and its ID counts).
BAD = {
    31_001: {"Age": "five hundred"},
    33_333: {"M11": "900"},
    40_000: {"ID": "G0000012"},
    20_000: {"Insurance": "2"},
    45_000: {"ID": "G0020000"},
}

EngineRun = Callable[..., Any]


@pytest.fixture(scope="module")
def bundles() -> dict[str, ModelBundle]:
    registry = Registry([PACKAGED_ROOT])
    return {name: bundle_for(name, registry) for name in ("logistic_regression", "random_forest")}


@pytest.fixture(scope="module")
def served() -> dict[str, ServedModel]:
    registry = Registry([PACKAGED_ROOT])
    return {name: open_model(name, registry) for name in ("logistic_regression", "random_forest")}


@pytest.fixture(params=["spark", "dask"])
def engine(request: pytest.FixtureRequest) -> EngineRun:
    if request.param == "spark":
        from sepsis_api.batch.spark import score_file

        request.getfixturevalue("spark")  # the session the engine's getOrCreate finds
        return partial(score_file, master="local[2]")
    from sepsis_api.batch.dask import score_file

    client = request.getfixturevalue("dask_client")
    # Small blocks: the test files span several partitions.
    return partial(score_file, scheduler=client.scheduler.address, blocksize="256KB")


@pytest.fixture(scope="module")
def big_csv(train_csv: Path, test_csv: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("big")
    return write_patients(folder / "patients.csv", [train_csv, test_csv], BIG)


@pytest.fixture(scope="module")
def bad_big_csv(train_csv: Path, test_csv: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("bad")
    return write_patients(folder / "patients.csv", [train_csv, test_csv], BIG, changes=BAD)


def both(
    engine: EngineRun,
    src: Path,
    folder: Path,
    bundle: ModelBundle,
    served: ServedModel,
    suffix: str = ".csv",
    **options: Any,
) -> tuple[Path, Path]:
    local, distributed = folder / f"local{suffix}", folder / f"engine{suffix}"
    expected = local_score_file(src, local, served, **options)
    result = engine(src, distributed, bundle, **options)
    assert (result.scored, result.rejected) == (expected.scored, expected.rejected)
    return local, distributed


def test_test_file_gives_the_local_engines_bytes(
    engine: EngineRun, test_csv: Path, tmp_path: Path, bundles: dict, served: dict
) -> None:
    # The shipped file: BOM, CR-only line endings, IDs.
    local, distributed = both(
        engine, test_csv, tmp_path, bundles["logistic_regression"], served["logistic_regression"]
    )
    assert distributed.read_bytes() == local.read_bytes()
    assert len(pd.read_csv(distributed)) == 169
    assert sorted(p.name for p in tmp_path.iterdir()) == ["engine.csv", "local.csv"]


def test_fifty_thousand_patients_parquet_both_ways_row_for_row(
    engine: EngineRun, big_csv: Path, tmp_path: Path, bundles: dict, served: dict
) -> None:
    src = tmp_path / "in.parquet"
    # Small row groups: several partitions for both engines.
    pq.write_table(pacsv.read_csv(big_csv), src, row_group_size=7_000)
    local, distributed = both(
        engine, src, tmp_path, bundles["random_forest"], served["random_forest"], ".parquet"
    )
    assert pq.read_table(distributed).equals(pq.read_table(local))
    assert pq.read_table(local).num_rows == BIG


def test_fifty_thousand_patients_csv_byte_for_byte(
    engine: EngineRun, big_csv: Path, tmp_path: Path, bundles: dict, served: dict
) -> None:
    local, distributed = both(
        engine, big_csv, tmp_path, bundles["random_forest"], served["random_forest"]
    )
    assert distributed.read_bytes() == local.read_bytes()


def test_first_invalid_row_is_named_by_its_file_row_and_nothing_is_written(
    engine: EngineRun, bad_big_csv: Path, tmp_path: Path, bundles: dict, served: dict
) -> None:
    out = tmp_path / "scores.csv"
    out.write_text("kept\n")
    with pytest.raises(DataError) as local_error:
        local_score_file(bad_big_csv, tmp_path / "local.csv", served["logistic_regression"])
    with pytest.raises(DataError) as engine_error:
        engine(bad_big_csv, out, bundles["logistic_regression"])
    assert str(engine_error.value) == str(local_error.value)
    assert "row 20000, column Insurance" in str(engine_error.value)
    assert out.read_text() == "kept\n"  # left as it was
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scores.csv"]


def test_skip_invalid_sets_aside_the_same_rows_with_file_row_numbers(
    engine: EngineRun, bad_big_csv: Path, tmp_path: Path, bundles: dict, served: dict
) -> None:
    local, distributed = both(
        engine,
        bad_big_csv,
        tmp_path,
        bundles["logistic_regression"],
        served["logistic_regression"],
        skip_invalid=True,
    )
    assert distributed.read_bytes() == local.read_bytes()
    rejected = rejected_path_for(distributed).read_text()
    assert rejected == rejected_path_for(local).read_text()
    rows = pd.read_csv(rejected_path_for(distributed))
    assert list(rows["row"]) == sorted(BAD)
    assert list(rows.loc[rows["row"] >= 40_000, "reason"]) == ["duplicate ID", "duplicate ID"]


def test_a_line_with_an_extra_field_fails_the_dask_job_with_a_message_not_a_traceback(
    dask_client: Any, test_csv: Path, tmp_path: Path
) -> None:
    import subprocess
    import sys

    lines = test_csv.read_text(encoding="utf-8-sig").splitlines()
    lines[5] += ",1"
    src = tmp_path / "extra.csv"
    src.write_text("\n".join(lines) + "\n")
    out = tmp_path / "scores.csv"
    proc = subprocess.run(
        [
            sys.executable, "-m", "sepsis_api.cli", "predict", "--input", str(src),
            "--output", str(out), "--engine", "dask",
            "--scheduler", dask_client.scheduler.address,
        ],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert f"{src}: the dask job failed: " in proc.stderr
    assert "nothing was written" in proc.stderr and "Traceback" not in proc.stderr
    assert not out.exists()
