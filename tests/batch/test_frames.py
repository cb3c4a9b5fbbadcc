"""The batch function (``batch.frames``): Arrow record batches in, scores out, as every engine
calls it per partition; and the per-process model loader."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pcsv
import pytest

from sepsis_api.batch import (
    OUTPUT_SCHEMA,
    ModelSource,
    model_source,
    rejected_batch,
    score_batch,
    score_pandas,
    score_rows,
    served_model,
)
from sepsis_api.ml.data import DataError, load_table, validate_frame
from sepsis_api.ml.scoring import ServedModel, open_model, score
from sepsis_api.ml.store import PACKAGED_ROOT, ArtifactError, Registry
from sepsis_api.schema import FEATURES

ROWS = 169


@pytest.fixture(scope="module")
def served() -> ServedModel:
    return open_model(None, Registry([PACKAGED_ROOT]))


@pytest.fixture(scope="module")
def as_text(test_csv: Path) -> pa.Table:
    """The test file as pyarrow reads it with every column typed as text."""
    names = pcsv.read_csv(test_csv).schema.names
    types = {n: pa.string() for n in names}
    return pcsv.read_csv(test_csv, convert_options=pcsv.ConvertOptions(column_types=types))


def assert_is_score_of(out: pa.RecordBatch, served: ServedModel, X: np.ndarray) -> None:
    expected = score(served, X)
    assert out.schema == OUTPUT_SCHEMA
    assert np.array_equal(out.column("probability").to_numpy(), expected.probability)
    assert out.column("label").to_pylist() == list(expected.label)
    assert out.column("risk_band").to_pylist() == list(expected.band)
    assert set(out.column("model").to_pylist()) == {served.name}
    assert set(out.column("model_version").to_pylist()) == {served.version}


@pytest.mark.parametrize("model", ["logistic_regression", "random_forest", "gradient_boosting"])
def test_score_batch_is_the_scoring_function_row_by_row(
    test_csv: Path, as_text: pa.Table, model: str
) -> None:
    served = open_model(model, Registry([PACKAGED_ROOT]))
    table = load_table(test_csv)
    for batch in (as_text.to_batches()[0], as_text):  # a record batch or a table
        out = score_batch(batch, served)
        assert out.num_rows == ROWS
        assert out.column("ID").to_pylist() == table.ids  # input order
        assert_is_score_of(out, served, table.X)


def test_numbers_and_case_study_names_and_row_numbers_as_ids(
    test_csv: Path, served: ServedModel
) -> None:
    df = pd.read_csv(test_csv, encoding="utf-8-sig").drop(columns=["ID"])
    df = df.rename(columns={f.code: f.name.upper() for f in FEATURES})
    out = score_batch(pa.RecordBatch.from_pandas(df), served, first_row=1001)
    assert out.column("ID").to_pylist() == [str(n) for n in range(1001, 1001 + ROWS)]
    assert_is_score_of(out, served, load_table(test_csv).X)


def test_an_invalid_row_is_named_by_its_row_number_in_the_file(
    as_text: pa.Table, served: ServedModel
) -> None:
    ages = as_text.column("Age").to_pylist()
    ages[4] = "five hundred"
    bad = as_text.set_column(as_text.schema.get_field_index("Age"), "Age", pa.array(ages))
    with pytest.raises(DataError, match=r"row 205, column Age, value 'five hundred': not a"):
        score_batch(bad, served, first_row=201)
    out = score_batch(bad, served, first_row=201, skip_invalid=True)
    assert out.num_rows == ROWS - 1 and "ICU200613" not in out.column("ID").to_pylist()
    result = score_rows(bad, served, first_row=201)
    expected = validate_frame(bad.to_pandas(), first_row=201).errors
    assert result.rejected == expected and len(expected) == 1
    assert rejected_batch(result.rejected).to_pylist() == [
        {"row": 205, "column": "Age", "value": "five hundred", "reason": expected[0].reason}
    ]


def test_duplicate_ids_across_batches_with_seen_ids(as_text: pa.Table, served: ServedModel) -> None:
    seen: set[str] = set()
    assert score_batch(as_text.slice(0, 3), served, seen_ids=seen).num_rows == 3
    score_batch(as_text.slice(0, 3), served)  # without seen_ids: this batch alone
    with pytest.raises(DataError, match="row 3, column ID, value 'ICU200611': duplicate ID"):
        score_batch(as_text.slice(2, 10), served, first_row=3, seen_ids=seen)


def test_score_pandas_equals_score_batch(
    test_csv: Path, as_text: pa.Table, served: ServedModel
) -> None:
    df = pd.read_csv(test_csv, encoding="utf-8-sig")
    frame = score_pandas(df, served)
    assert list(frame.columns) == OUTPUT_SCHEMA.names
    assert pa.Table.from_pandas(frame, schema=OUTPUT_SCHEMA, preserve_index=False).equals(
        pa.Table.from_batches([score_batch(as_text, served)])
    )
    mixed = df.astype(object)
    mixed.loc[3, "PL"] = "high"  # strings among numbers: pandas' own rules
    with pytest.raises(DataError, match="row 4, column PL, value 'high'"):
        score_pandas(mixed, served)
    assert len(score_pandas(mixed, served, skip_invalid=True)) == ROWS - 1


def test_served_model_loads_and_compiles_once_per_process(tmp_path: Path) -> None:
    registry = Registry([PACKAGED_ROOT])
    source = model_source("random_forest", registry)
    assert source.model == "random_forest"
    assert served_model(source) is served_model(source)
    copy = Path(shutil.copytree(source.path, tmp_path / Path(source.path).name))
    by_dir = served_model(copy, "random_forest")
    assert by_dir is served_model(str(copy), "random_forest")
    assert by_dir.version == source.version
    assert served_model(copy).name == registry.open(source.version).default_model


def test_served_model_refuses_altered_artifacts(tmp_path: Path) -> None:
    source = model_source(None, Registry([PACKAGED_ROOT]))
    copy = Path(shutil.copytree(source.path, tmp_path / "v"))
    other = next(p for p in copy.glob("*.npz") if source.model not in p.name)
    other.write_bytes(other.read_bytes() + b"\0")  # a file the key does not cover
    with pytest.raises(ArtifactError, match="SHA-256 does not match"):
        served_model(copy)
    moved = ModelSource(str(copy), source.model, source.version, "0" * 64)
    with pytest.raises(ArtifactError, match=r"not the .* this job was started with"):
        served_model(moved)


def test_a_worker_loads_and_scores_without_unpickling_an_artifact(test_csv: Path) -> None:
    """In a fresh process, every class pickle looks up (the ``pickle.find_class`` audit event)
    is numba's own compiled-code cache; nothing of scikit-learn, skops or the project's models
    is unpickled or even imported."""
    source = model_source("gradient_boosting", Registry([PACKAGED_ROOT]))
    script = textwrap.dedent(
        f"""
        import json, sys

        found = set()
        sys.addaudithook(lambda e, a: found.add(a[0]) if e == "pickle.find_class" else None)
        import pyarrow.csv
        from sepsis_api.batch import ModelSource, score_batch, served_model

        served = served_model(ModelSource(*{list(vars(source).values())!r}))
        out = score_batch(pyarrow.csv.read_csv({str(test_csv)!r}), served)
        heavy = [m for m in sys.modules if m.split(".")[0] in ("sklearn", "skops", "joblib")]
        print(json.dumps([out.num_rows, sorted(found), heavy]))
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300, check=True
    )
    rows, classes_from, heavy = json.loads(proc.stdout)
    assert rows == ROWS and heavy == []
    assert all(m.split(".")[0] in ("numba", "builtins", "copyreg") for m in classes_from)
