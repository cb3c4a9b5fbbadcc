"""Batch scoring speed: the model call and `sepsis-api predict` end to end, 1 M and 10 M rows.

The 768 rows of the data set (train + test) are replicated to the requested sizes
(benchmarks/bench_files.py; the files are generated here, a slice at a time, and deleted after).
The model call section prints rows per second (best of ``--repeats``) and the ratio to
scikit-learn's own ``predict_proba`` on the same rows with the same fitted pipeline. This is not
a test: it asserts nothing.

    python benchmarks/bench_batch.py --data ../shared/data [--rows 1000000 10000000]
        [--repeats 3] [--model-call-only | --end-to-end-only]

The end-to-end section runs whole processes (start-up, model load, read, score, write), median
of ``--repeats``, for each size: the naive script a data scientist would write
(benchmarks/naive_predict.py: pandas.read_csv, the scikit-learn pipeline's predict_proba,
to_csv), then ``sepsis-api predict`` CSV -> CSV and Parquet -> Parquet, with the peak RSS of
the runs (GNU time) and the ratio to the naive script. The aims on a 2-core machine: logistic
regression CSV -> CSV >= 2 M rows/s, Parquet -> Parquet >= 5 M rows/s, random forest
CSV -> CSV >= 1 M rows/s, peak memory under 300 MiB at 10 M rows.

The model call section also prints each model's single-patient ``predict_proba`` time (best of
several timeit runs, microseconds): one patient is the HTTP hot path.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import timeit
from pathlib import Path

import numpy as np

from bench_files import patients, write_files
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
    ap.add_argument(
        "--rows",
        type=int,
        nargs="+",
        default=[1_000_000, 10_000_000],
        help="file sizes of the end-to-end section (the model call uses the first)",
    )
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument(
        "--model-call-only", action="store_true", help="skip the end-to-end CLI section"
    )
    ap.add_argument("--end-to-end-only", action="store_true", help="skip the model-call section")
    args = ap.parse_args()

    call_rows = args.rows[0]
    X768 = patients(args.data)
    X = np.tile(X768, (call_rows // len(X768) + 1, 1))[:call_rows]
    version = Registry([PACKAGED_ROOT]).open()
    models = [version.default_model] + [m for m in ("random_forest",) if m != version.default_model]
    called = models + [m for m in version.model_names if m not in models]
    print(f"model version {version.version}; model call on {call_rows:,} rows")

    print(
        f"\n== model call (prepared float64 array in, probabilities out), best of {args.repeats} =="
    )
    print(
        f"{'model':22} {'sepsis-api rows/s':>18} {'scikit-learn rows/s':>20} {'ratio':>7}"
        f" {'one row us':>11}"
    )
    for name in [] if args.end_to_end_only else called:
        fast = version.load_compiled(name)
        fast.warm_up()
        ref = version.load_sklearn(name)
        t_fast = best_of(lambda f=fast: f.predict_proba(X), args.repeats)
        t_ref = best_of(lambda r=ref: r.predict_proba(X), 1)
        one = X[:1].copy()
        calls = timeit.repeat(lambda f=fast, x=one: f.predict_proba(x), number=2000, repeat=7)
        t_one = min(calls) / 2000
        print(
            f"{name:22} {call_rows / t_fast:18,.0f} {call_rows / t_ref:20,.0f} "
            f"{t_ref / t_fast:6.1f}x {t_one * 1e6:11.1f}"
        )
    if args.model_call_only:
        return

    for rows in args.rows:
        end_to_end(args.data, rows, models, version.card["features"], args.repeats)


def end_to_end(data: Path, rows: int, models: list[str], features: list[str], repeats: int) -> None:
    print(
        f"\n== whole process, {rows:,} rows, median of {repeats}: `sepsis-api predict` (Arrow "
        "data path) against a naive pandas + scikit-learn script =="
    )
    with tempfile.TemporaryDirectory() as tmp:
        src, pq_src = write_files(data, rows, Path(tmp), features)
        print(
            f"input {src.stat().st_size / 1e6:.0f} MB CSV, {pq_src.stat().st_size / 1e6:.0f} MB "
            "Parquet"
        )
        print(f"{'run':46} {'median s':>9} {'rows/s':>11} {'peak RSS MiB':>13} {'vs naive':>9}")
        naive_s = None
        for name in models:
            naive = [sys.executable, str(NAIVE), str(src), str(Path(tmp) / "naive.csv"), name]
            runs = [
                ("naive pandas + scikit-learn, CSV -> CSV", naive),
                *[
                    (f"sepsis-api predict, {kind}", _predict(path, Path(tmp) / f"out.{ext}", name))
                    for kind, path, ext in (
                        ("CSV -> CSV", src, "csv"),
                        ("Parquet -> Parquet", pq_src, "parquet"),
                    )
                ],
            ]
            print(f"-- {name}")
            for label, cmd in runs:
                seconds, rss = median_run(cmd, repeats)
                if label.startswith("naive"):
                    naive_s = seconds
                ratio = f"{naive_s / seconds:8.1f}x" if naive_s else ""
                peak = f"{rss:13.0f}" if rss is not None else f"{'n/a':>13}"
                print(f"{label:46} {seconds:9.2f} {rows / seconds:11,.0f} {peak} {ratio:>9}")


NAIVE = Path(__file__).with_name("naive_predict.py")


def _predict(src: Path, out: Path, model: str) -> list[str]:
    return [
        sys.executable, "-m", "sepsis_api.cli", "predict",
        "--input", str(src), "--output", str(out), "--model", model,
    ]  # fmt: skip


def median_run(cmd: list[str], repeats: int) -> tuple[float, float | None]:
    """Median wall time of ``repeats`` whole-process runs and the largest peak RSS (MiB) of
    them. The peak comes from GNU time, whose own small child is the command: a child forked
    from this (large) process would count this process's pages in its own peak."""
    gnu_time = shutil.which("time", path="/usr/bin:/bin")
    times, peaks = [], []
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "rss"
        for _ in range(repeats):
            wrapped = [gnu_time, "-f", "%M", "-o", str(report), *cmd] if gnu_time else cmd
            t0 = time.perf_counter()
            proc = subprocess.run(wrapped, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            times.append(time.perf_counter() - t0)
            if proc.returncode != 0:
                raise SystemExit(f"{' '.join(cmd)} failed: {proc.stderr.decode()}")
            if gnu_time:
                peaks.append(int(report.read_text().split()[-1]) / 1024)  # KiB
    return statistics.median(times), max(peaks) if peaks else None


if __name__ == "__main__":
    main()
