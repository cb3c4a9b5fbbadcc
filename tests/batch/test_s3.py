"""``sepsis-api predict`` with ``s3://`` input and output against an S3 server on loopback
(moto's server mode, tests/s3.py): CSV and Parquet both ways, whole-or-nothing output."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from s3 import S3Server

CLI = [sys.executable, "-m", "sepsis_api.cli", "predict"]


def predict(s3: S3Server, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args], capture_output=True, text=True, timeout=300, env=s3.env_all
    )


def local_scores(test_csv: Path, tmp_path: Path, name: str, *args: str) -> bytes:
    out = tmp_path / name
    subprocess.run(
        [*CLI, "--input", str(test_csv), "--output", str(out), *args], check=True, timeout=300
    )
    return out.read_bytes()


def bad_copy(test_csv: Path) -> bytes:
    text = test_csv.read_text(encoding="utf-8-sig").replace("\r", "\n").splitlines()
    cells = text[5].split(",")
    cells[text[0].split(",").index("Age")] = "five hundred"
    text[5] = ",".join(cells)
    return "\n".join(text).encode()


def test_csv_from_s3_to_s3_is_the_local_output(
    s3: S3Server, test_csv: Path, tmp_path: Path
) -> None:
    bucket = s3.new_bucket()
    url = s3.put(bucket, "ward/in.csv", test_csv.read_bytes())
    proc = predict(s3, "--input", url, "--output", f"s3://{bucket}/scores/out.csv")
    assert proc.returncode == 0, proc.stderr
    assert s3.keys(bucket) == ["scores/out.csv", "ward/in.csv"]  # no temporary left behind
    assert s3.get(bucket, "scores/out.csv") == local_scores(test_csv, tmp_path, "local.csv")


def test_parquet_from_s3_to_s3(s3: S3Server, test_csv: Path, tmp_path: Path) -> None:
    bucket = s3.new_bucket()
    buffer = io.BytesIO()
    pd.read_csv(test_csv, encoding="utf-8-sig").to_parquet(buffer, index=False)
    url = s3.put(bucket, "in.parquet", buffer.getvalue())
    out = f"s3://{bucket}/out.parquet"
    proc = predict(s3, "--input", url, "--output", out, "--model", "random_forest")
    assert proc.returncode == 0, proc.stderr
    remote = pd.read_parquet(io.BytesIO(s3.get(bucket, "out.parquet")))
    local = local_scores(test_csv, tmp_path, "local.parquet", "--model", "random_forest")
    pd.testing.assert_frame_equal(remote, pd.read_parquet(io.BytesIO(local)))


def test_a_failed_run_leaves_no_object_and_an_existing_one_as_it_was(
    s3: S3Server, test_csv: Path
) -> None:
    bucket = s3.new_bucket()
    url = s3.put(bucket, "bad.csv", bad_copy(test_csv))
    proc = predict(s3, "--input", url, "--output", f"s3://{bucket}/new.csv", "--chunk-rows", "2")
    assert proc.returncode == 2
    assert "row 5, column Age, value 'five hundred'" in proc.stderr
    assert "nothing was written" in proc.stderr
    s3.put(bucket, "old.csv", b"earlier scores\n")
    proc = predict(s3, "--input", url, "--output", f"s3://{bucket}/old.csv")
    assert proc.returncode == 2
    assert s3.keys(bucket) == ["bad.csv", "old.csv"]
    assert s3.get(bucket, "old.csv") == b"earlier scores\n"


def test_skip_invalid_writes_the_side_file_beside_the_output(s3: S3Server, test_csv: Path) -> None:
    bucket = s3.new_bucket()
    url = s3.put(bucket, "bad.csv", bad_copy(test_csv))
    proc = predict(s3, "--input", url, "--output", f"s3://{bucket}/out/s.csv", "--skip-invalid")
    assert proc.returncode == 0, proc.stderr
    assert f"1 invalid rows written to s3://{bucket}/out/s.rejected.csv" in proc.stderr
    rejected = pd.read_csv(io.BytesIO(s3.get(bucket, "out/s.rejected.csv")))
    assert list(rejected["row"]) == [5] and list(rejected["column"]) == ["Age"]
    assert len(pd.read_csv(io.BytesIO(s3.get(bucket, "out/s.csv")))) == 168


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        ("input", "cannot read as a table"),
        ("output", "cannot write: no bucket 'no-such-bucket'"),
    ],
)
def test_a_missing_object_or_bucket_is_named(
    s3: S3Server, test_csv: Path, where: str, expected: str
) -> None:
    bucket = s3.new_bucket()
    present = s3.put(bucket, "in.csv", test_csv.read_bytes())
    missing = "s3://no-such-bucket/x.csv" if where == "output" else f"s3://{bucket}/nope.csv"
    args = ("--input", missing, "--output", f"s3://{bucket}/o.csv")
    if where == "output":
        args = ("--input", present, "--output", missing)
    proc = predict(s3, *args)
    assert proc.returncode == 2
    assert missing in proc.stderr and expected in proc.stderr
    assert s3.keys(bucket) == ["in.csv"]
