"""The command line end to end, as a user runs it (a real subprocess)."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest

from sepsis_api.ml.data import load_table

CLI = [sys.executable, "-m", "sepsis_api.cli"]


def run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=300)
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


def test_predict_scores_every_row_of_the_test_file(test_csv, tmp_path, shipped):
    out = tmp_path / "scores.csv"
    run("predict", "--input", str(test_csv), "--output", str(out))
    df = pd.read_csv(out)
    assert list(df.columns) == ["ID", "probability", "label", "risk_band", "model", "model_version"]
    assert len(df) == 169
    assert list(df["ID"]) == load_table(test_csv).ids  # input order kept
    assert df["probability"].between(0, 1).all()
    assert set(df["label"]) <= {"Positive", "Negative"}
    assert set(df["risk_band"]) <= {"low", "moderate", "high"}
    assert set(df["model"]) == {shipped.default_model}
    assert set(df["model_version"]) == {shipped.version}
    threshold = shipped.model_card(shipped.default_model)["threshold"]
    assert ((df["probability"] >= threshold) == (df["label"] == "Positive")).all()


def test_predict_with_a_named_model_and_parquet_both_ways(test_csv, tmp_path):
    src = tmp_path / "in.parquet"
    pd.read_csv(test_csv, encoding="utf-8-sig").to_parquet(src)
    out = tmp_path / "out.parquet"
    run(
        "predict",
        "--input",
        str(src),
        "--output",
        str(out),
        "--model",
        "random_forest",
        "--chunk-rows",
        "50",
    )
    df = pd.read_parquet(out)
    assert len(df) == 169 and set(df["model"]) == {"random_forest"}


def _bad_copy(test_csv: Path, tmp_path: Path) -> Path:
    rows = list(csv.reader(test_csv.read_text(encoding="utf-8-sig").splitlines()))
    rows[5][rows[0].index("Age")] = "five hundred"
    rows[9][rows[0].index("M11")] = "900"
    path = tmp_path / "bad.csv"
    with open(path, "w", newline="") as fh:
        csv.writer(fh).writerows(rows)
    return path


def test_a_bad_row_stops_the_run_and_writes_nothing(test_csv, tmp_path):
    out = tmp_path / "scores.csv"
    proc = run(
        "predict",
        "--input",
        str(_bad_copy(test_csv, tmp_path)),
        "--output",
        str(out),
        "--chunk-rows",
        "7",
        check=False,
    )
    assert proc.returncode == 2
    assert "row 5, column Age, value 'five hundred'" in proc.stderr
    assert not out.exists()
    assert list(tmp_path.glob(".scores.csv*")) == []  # no temporary left behind


def test_skip_invalid_sets_bad_rows_aside(test_csv, tmp_path):
    out = tmp_path / "scores.csv"
    run(
        "predict",
        "--input",
        str(_bad_copy(test_csv, tmp_path)),
        "--output",
        str(out),
        "--skip-invalid",
    )
    assert len(pd.read_csv(out)) == 167
    rejected = pd.read_csv(tmp_path / "scores.rejected.csv")
    assert list(rejected["row"]) == [5, 9]
    assert list(rejected["column"]) == ["Age", "M11"]
    assert "from 0 to 100" in rejected["reason"].iloc[1]


def test_unknown_model_is_a_clear_error(test_csv, tmp_path):
    proc = run(
        "predict",
        "--input",
        str(test_csv),
        "--output",
        str(tmp_path / "x.csv"),
        "--model",
        "deep_net",
        check=False,
    )
    assert proc.returncode == 2
    assert "deep_net" in proc.stderr and "logistic_regression" in proc.stderr


def test_models_list_and_show(shipped):
    listing = run("models", "list").stdout
    assert shipped.version in listing
    shown = run("models", "show", shipped.version).stdout
    assert "file hashes OK" in shown and shipped.default_model in shown
    card = json.loads(run("models", "show", "--json").stdout)
    assert card["version"] == shipped.version


def test_models_show_refuses_a_tampered_version(shipped, tmp_path):
    dst = tmp_path / shipped.version
    shutil.copytree(shipped.path, dst)
    with open(dst / "logistic_regression.npz", "ab") as fh:
        fh.write(b"\0")
    proc = run("models", "show", shipped.version, "--registry", str(tmp_path), check=False)
    assert proc.returncode == 2 and "SHA-256 does not match" in proc.stderr


@pytest.mark.slow
def test_train_writes_a_complete_version(train_csv, tmp_path):
    proc = run(
        "train",
        "--data",
        str(train_csv),
        "--out",
        str(tmp_path),
        "--repeats",
        "1",
        "--seed",
        "3",
        "--set-default",
    )
    assert "Logistic regression" in proc.stdout and "Random forest" in proc.stdout
    version = (tmp_path / "DEFAULT").read_text().strip()
    vdir = tmp_path / version
    for f in ("card.json", "MODEL_CARD.md", "report.html", "logistic_regression.npz"):
        assert (vdir / f).is_file(), f
    assert "not a validated clinical device" in (vdir / "MODEL_CARD.md").read_text().lower()
    shown = run("models", "show", version, "--registry", str(tmp_path)).stdout
    assert version in shown


def test_train_on_a_bad_file_names_the_problem(tmp_path):
    bad = tmp_path / "t.csv"
    bad.write_text(
        "ID,PRG,PL,PR,SK,TS,M11,BD2,Age,Insurance,Sepssis\nA,1,2,3,4,5,6,0.1,30,1,Maybe\n"
    )
    proc = run("train", "--data", str(bad), "--out", str(tmp_path / "out"), check=False)
    assert proc.returncode == 2
    assert "row 1, column Sepssis, value 'Maybe'" in proc.stderr


def test_train_without_the_train_extra_says_what_to_install(train_csv, tmp_path):
    script = textwrap.dedent(f"""
        import sys
        from importlib.abc import MetaPathFinder

        class NoScikitLearn(MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] == "sklearn":
                    raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)

        sys.meta_path.insert(0, NoScikitLearn())
        from sepsis_api.cli import app
        app(["train", "--data", {str(train_csv)!r}, "--out", {str(tmp_path / "out")!r}])
    """)
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 2, proc.stderr
    assert "pip install 'sepsis-api[train]'" in proc.stderr
    assert "sklearn is not installed" in proc.stderr
    assert not (tmp_path / "out").exists()


def test_db_current_on_a_missing_sqlite_file_says_so_and_creates_nothing(tmp_path):
    db = tmp_path / "nowhere" / "audit.db"
    env = {**os.environ, "SEPSIS_API_DATABASE_URL": f"sqlite:///{db}"}
    proc = subprocess.run(
        [*CLI, "db", "current"], capture_output=True, text=True, timeout=120, env=env
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "no database yet" in proc.stdout and "sepsis-api db upgrade" in proc.stdout
    assert not db.exists() and not db.parent.exists()
    upgraded = subprocess.run(
        [*CLI, "db", "upgrade"], capture_output=True, text=True, timeout=120, env=env
    )
    assert upgraded.returncode == 0, upgraded.stderr
    again = subprocess.run(
        [*CLI, "db", "current"], capture_output=True, text=True, timeout=120, env=env
    )
    assert again.returncode == 0 and "up to date" in again.stdout, again.stdout
