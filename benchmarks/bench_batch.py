"""Batch scoring speed: the model call and `sepsis-api predict` end to end on 1,000,000 rows.

The 768 rows of the data set (train + test) are replicated to the requested size. Printed
figures are rows per second (best of several runs) and the ratio to scikit-learn's own
``predict_proba`` on the same rows with the same fitted pipeline. This is not a test: it
asserts nothing.

    python benchmarks/bench_batch.py --data ../shared/data [--rows 1000000] [--model-call-only]

The model call section also prints each model's single-patient ``predict_proba`` time (best of
several timeit runs, microseconds): one patient is the HTTP hot path.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
import timeit
from pathlib import Path

import numpy as np
import pandas as pd

from sepsis_api.ml.data import load_table
from sepsis_api.ml.store import PACKAGED_ROOT, Registry


def best_of(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument(
        "--model-call-only", action="store_true", help="skip the end-to-end CLI section"
    )
    args = ap.parse_args()

    X768 = np.vstack(
        [load_table(args.data / f"Paitients_Files_{s}.csv").X for s in ("Train", "Test")]
    )
    X = np.tile(X768, (args.rows // len(X768) + 1, 1))[: args.rows]
    version = Registry([PACKAGED_ROOT]).open()
    models = [version.default_model] + [m for m in ("random_forest",) if m != version.default_model]
    called = models + [m for m in version.model_names if m not in models]
    print(f"model version {version.version}; {args.rows:,} rows; best of {args.repeats}")

    print("\n== model call (prepared float64 array in, probabilities out) ==")
    print(
        f"{'model':22} {'sepsis-api rows/s':>18} {'scikit-learn rows/s':>20} {'ratio':>7}"
        f" {'one row us':>11}"
    )
    for name in called:
        fast = version.load_compiled(name)
        fast.warm_up()
        ref = version.load_sklearn(name)
        t_fast = best_of(lambda f=fast: f.predict_proba(X), args.repeats)
        t_ref = best_of(lambda r=ref: r.predict_proba(X), 1)
        one = X[:1].copy()
        calls = timeit.repeat(lambda f=fast, x=one: f.predict_proba(x), number=2000, repeat=7)
        t_one = min(calls) / 2000
        print(
            f"{name:22} {args.rows / t_fast:18,.0f} {args.rows / t_ref:20,.0f} "
            f"{t_ref / t_fast:6.1f}x {t_one * 1e6:11.1f}"
        )
    if args.model_call_only:
        return

    print("\n== `sepsis-api predict` end to end (read CSV, validate, score, write CSV) ==")
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "patients.csv"
        ids = [f"P{i:07d}" for i in range(args.rows)]
        frame = pd.DataFrame(X, columns=version.card["features"])
        frame = frame.fillna(0)
        frame.insert(0, "ID", ids)
        frame.to_csv(src, index=False)
        size_mb = src.stat().st_size / 1e6
        print(f"input {size_mb:.0f} MB")
        for name in models:
            out = Path(tmp) / f"out-{name}.csv"
            cmd = [
                sys.executable,
                "-m",
                "sepsis_api.cli",
                "predict",
                "--input",
                str(src),
                "--output",
                str(out),
                "--model",
                name,
            ]
            t = best_of(lambda c=cmd: subprocess.run(c, check=True, capture_output=True), 1)
            print(f"{name:22} {args.rows / t:12,.0f} rows/s  ({t:.1f} s incl. start-up)")


if __name__ == "__main__":
    main()
