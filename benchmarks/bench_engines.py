"""The three engines of `sepsis-api predict` on the same file: local, Spark local[2], Dask
LocalCluster (two worker processes), CSV -> CSV and Parquet -> Parquet.

The 768 rows of the data set (train + test) are replicated to the requested size under new IDs.
Each figure is a whole `sepsis-api predict` process (median of --repeats runs): for Spark and
Dask that includes starting the JVM or the cluster, which a long-running session pays once.
Every engine's output is checked to be the same file as the local engine's. This is not a
test: it asserts nothing about speed.

    python benchmarks/bench_engines.py --data ../shared/data [--rows 1000000] [--repeats 1]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from sepsis_api.ml.data import load_table
from sepsis_api.ml.store import PACKAGED_ROOT, Registry

ENGINES = {
    "local": [],
    "spark local[2]": ["--engine", "spark", "--master", "local[2]"],
    "dask LocalCluster(2)": ["--engine", "dask", "--scheduler", "local"],
}


def timed(cmd: list[str], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--model", default="logistic_regression")
    args = ap.parse_args()

    X768 = np.vstack(
        [load_table(args.data / f"Paitients_Files_{s}.csv").X for s in ("Train", "Test")]
    )
    X = np.tile(X768, (args.rows // len(X768) + 1, 1))[: args.rows]
    version = Registry([PACKAGED_ROOT]).open()
    print(f"model {args.model} {version.version}; {args.rows:,} rows; median of {args.repeats}")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        frame = pd.DataFrame(X, columns=version.card["features"]).fillna(0)
        frame.insert(0, "ID", [f"P{i:07d}" for i in range(args.rows)])
        sources = {"csv": folder / "patients.csv", "parquet": folder / "patients.parquet"}
        frame.to_csv(sources["csv"], index=False)
        frame.to_parquet(sources["parquet"], index=False, row_group_size=131_072)
        print(f"input {sources['csv'].stat().st_size / 1e6:.0f} MB CSV")
        print(f"\n{'engine':22} {'format':18} {'rows/s':>12} {'seconds':>8} {'vs local':>9}")
        for fmt, src in sources.items():
            local_t = None
            for engine, options in ENGINES.items():
                out = folder / f"out-{engine.split()[0]}.{fmt}"
                cmd = [
                    sys.executable, "-m", "sepsis_api.cli", "predict",
                    "--input", str(src), "--output", str(out), "--model", args.model, *options,
                ]  # fmt: skip
                t = timed(cmd, args.repeats)
                local_t = local_t or t
                same = _same(out, folder / f"out-local.{fmt}", fmt)
                print(
                    f"{engine:22} {fmt + ' -> ' + fmt:18} {args.rows / t:12,.0f} {t:8.1f} "
                    f"{local_t / t:8.2f}x{'' if same else '  OUTPUT DIFFERS'}"
                )


def _same(out: Path, local: Path, fmt: str) -> bool:
    if fmt == "csv":
        return out.read_bytes() == local.read_bytes()
    return pq.read_table(out).equals(pq.read_table(local))


if __name__ == "__main__":
    main()
