"""The three engines of `sepsis-api predict` on the same file: local, Spark local[2], Dask
LocalCluster (two worker processes), CSV -> CSV and Parquet -> Parquet.

The 768 rows of the data set (train + test) are replicated to the requested size under new IDs
(benchmarks/bench_files.py), 10,000,000 by default.
Each figure is a whole `sepsis-api predict` process (median of --repeats runs): for Spark and
Dask that includes starting the JVM or the cluster, which a long-running session pays once.
The peak is GNU time's maximum resident set: that of the largest single process of those it
accounts for (the children waited for), not a sum over the driver, the JVM and the workers.
Every engine's output is checked to be the same file as the local engine's. This is not a
test: it asserts nothing about speed.

    python benchmarks/bench_engines.py --data ../shared/data [--rows 10000000] [--repeats 1]
        [--formats parquet csv]
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
from pathlib import Path

import pyarrow.parquet as pq

from bench_batch import median_run
from bench_files import write_files
from sepsis_api.ml.store import PACKAGED_ROOT, Registry

ENGINES = {
    "local": [],
    "spark local[2]": ["--engine", "spark", "--master", "local[2]"],
    "dask LocalCluster(2)": ["--engine", "dask", "--scheduler", "local"],
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--formats", nargs="+", choices=("parquet", "csv"), default=["parquet", "csv"])
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--model", default="logistic_regression")
    args = ap.parse_args()

    version = Registry([PACKAGED_ROOT]).open()
    print(f"model {args.model} {version.version}; {args.rows:,} rows; median of {args.repeats}")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        csv, parquet = write_files(args.data, args.rows, folder, version.card["features"])
        sources = {fmt: {"csv": csv, "parquet": parquet}[fmt] for fmt in args.formats}
        size = {fmt: f"{path.stat().st_size / 1e6:.0f} MB" for fmt, path in sources.items()}
        print(f"input {', '.join(f'{fmt} {mb}' for fmt, mb in size.items())}")
        print(
            f"\n{'engine':22} {'format':18} {'rows/s':>12} {'seconds':>8} {'vs local':>9}"
            f" {'peak MiB':>9}"
        )
        for fmt, src in sources.items():
            local_t = None
            for engine, options in ENGINES.items():
                out = folder / f"out-{engine.split()[0]}.{fmt}"
                cmd = [
                    sys.executable, "-m", "sepsis_api.cli", "predict",
                    "--input", str(src), "--output", str(out), "--model", args.model, *options,
                ]  # fmt: skip
                t, peak = median_run(cmd, args.repeats)
                local_t = local_t or t
                same = _same(out, folder / f"out-local.{fmt}", fmt)
                print(
                    f"{engine:22} {fmt + ' -> ' + fmt:18} {args.rows / t:12,.0f} {t:8.1f} "
                    f"{local_t / t:8.2f}x {peak or math.nan:9.0f}"
                    f"{'' if same else '  OUTPUT DIFFERS'}"
                )


def _same(out: Path, local: Path, fmt: str) -> bool:
    if fmt == "csv":
        return out.read_bytes() == local.read_bytes()
    return pq.read_table(out).equals(pq.read_table(local))


if __name__ == "__main__":
    main()
