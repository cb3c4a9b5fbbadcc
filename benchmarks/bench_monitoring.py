"""Monitoring endpoints over a large audit log: GET /v1/monitoring/performance.

An audit database is filled with --rows prediction rows of the shipped version's default model
(default 1,000,000), every one with an outcome (one in twenty with a second, superseding
revision), spread over 26 weeks; then a real `sepsis-api serve` process on 127.0.0.1 answers
each endpoint --repeat times and the wall time of each call is printed. SQLite (a file) and
PostgreSQL (a throwaway cluster started with tests/pg.py; skipped when its binaries are
missing) are filled the fast way: one transaction of multi-row INSERTs, and COPY.

Probabilities are drawn independently per row (as distinct patients give), so nothing is
cheaper because values repeat. This is not a test: it asserts nothing.

    python benchmarks/bench_monitoring.py [--rows 1000000] [--repeat 3]

One function per endpoint (ENDPOINTS): another endpoint is timed by adding its function.
"""

from __future__ import annotations

import argparse
import io
import os
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import httpx
import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "tests"))  # tests/pg.py and tests/server.py: the same set-up

from pg import PostgresCluster, missing_reason  # noqa: E402
from sepsis_api.config import Settings  # noqa: E402
from sepsis_api.db.audit import open_audit  # noqa: E402
from sepsis_api.ml.store import PACKAGED_ROOT, Registry  # noqa: E402
from server import ServerProcess  # noqa: E402

WEEKS = 26
SECOND_REVISION = 0.05  # share of predictions whose outcome was corrected once
CHUNK = 50_000


def _rows(n: int, seed: int = 0) -> dict[str, np.ndarray | list[str] | str]:
    """Column values of ``n`` audit rows with outcomes, shared by both databases."""
    version = Registry([PACKAGED_ROOT]).open()
    model = version.default_model
    card = version.model_card(model)
    threshold = float(card["threshold"])
    bands = card["risk_bands"]
    rng = np.random.default_rng(seed)
    p = 1.0 / (1.0 + np.exp(-rng.normal(-0.8, 1.4, n)))
    outcome = rng.random(n) < 1.0 / (1.0 + np.exp(-(0.2 + 0.9 * np.log(p / (1 - p)))))
    start = datetime(2026, 6, 1, tzinfo=UTC).timestamp()
    created = np.sort(start + rng.random(n) * WEEKS * 7 * 86_400)
    band = np.searchsorted([bands["moderate_from"], bands["high_from"]], p, side="right")
    return {
        "version": version.version,
        "model": model,
        "threshold": str(threshold),
        "p": p,
        "outcome": outcome,
        "created": created,
        "band": band,
        "ids": [f"{i:08x}-0000-7000-8000-{i:012x}" for i in range(n)],  # sorted like UUIDv7
        "revised": rng.random(n) < SECOND_REVISION,
    }


def _sqlite_time(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


BAND_NAMES = np.array(["low", "moderate", "high"])


def _outcome_id(i: int, revision: int) -> str:
    return f"{i:08x}-{revision:04x}-7000-9000-{i:012x}"


def _outcome(true: bool, revision: int, revised: bool) -> str:
    """A revised outcome was first recorded wrong: only the latest revision is the truth."""
    wrong = revised and revision == 1
    return "Positive" if true != wrong else "Negative"


def fill_sqlite(path: Path, n: int) -> None:
    open_audit(Settings(_env_file=None, database_url=f"sqlite:///{path}")).engine.dispose()
    r = _rows(n)
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=OFF")
    recorded = _sqlite_time(time.time())
    with conn:
        for lo in range(0, n, CHUNK):
            hi = min(lo + CHUNK, n)
            conn.executemany(
                "INSERT INTO predictions VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    (
                        r["ids"][i],
                        _sqlite_time(r["created"][i]),
                        "bench",
                        "bench",
                        "predict",
                        None,
                        '{"PL": 148}',
                        r["model"],
                        r["version"],
                        float(r["p"][i]),
                        float(r["threshold"]),
                        "Positive" if r["p"][i] >= float(r["threshold"]) else "Negative",
                        BAND_NAMES[r["band"][i]],
                        None,
                        "Positive" if r["outcome"][i] else "Negative",  # the current outcome
                    )
                    for i in range(lo, hi)
                ),
            )
            conn.executemany(
                "INSERT INTO outcomes VALUES (?,?,?,?,?,?,?,?,?)",
                (
                    (
                        _outcome_id(i, rev),
                        r["ids"][i],
                        rev,
                        _outcome(bool(r["outcome"][i]), rev, bool(r["revised"][i])),
                        None,
                        "bench",
                        None,
                        recorded,
                        "bench",
                    )
                    for i in range(lo, hi)
                    for rev in ((1, 2) if r["revised"][i] else (1,))
                ),
            )
    conn.close()


def fill_postgres(url: str, dsn: str, n: int) -> None:
    import psycopg

    open_audit(Settings(_env_file=None, database_url=url)).engine.dispose()
    r = _rows(n)
    recorded = datetime.now(UTC).isoformat()
    with psycopg.connect(dsn) as conn, conn.cursor() as cur:
        buf = io.StringIO()
        for i in range(n):
            p = float(r["p"][i])
            label = "Positive" if p >= float(r["threshold"]) else "Negative"
            current = "Positive" if r["outcome"][i] else "Negative"
            created = datetime.fromtimestamp(r["created"][i], UTC).isoformat()
            buf.write(
                f'{r["ids"][i]}\t{created}\tbench\tbench\tpredict\t\\N\t{{"PL": 148}}\t'
                f"{r['model']}\t{r['version']}\t{p!r}\t{r['threshold']}\t{label}\t"
                f"{BAND_NAMES[r['band'][i]]}\t\\N\t{current}\n"
            )
        with cur.copy("COPY predictions FROM STDIN") as copy:
            copy.write(buf.getvalue())
        buf = io.StringIO()
        for i in range(n):
            for rev in (1, 2) if r["revised"][i] else (1,):
                outcome = _outcome(bool(r["outcome"][i]), rev, bool(r["revised"][i]))
                buf.write(
                    f"{_outcome_id(i, rev)}\t{r['ids'][i]}\t{rev}\t{outcome}\t\\N\tbench\t\\N\t"
                    f"{recorded}\tbench\n"
                )
        with cur.copy("COPY outcomes FROM STDIN") as copy:
            copy.write(buf.getvalue())
        cur.execute("ANALYZE")


# -- endpoints: one function each, (base URL) -> (what was asked, seconds, summary) ----------
def performance(base: str) -> tuple[str, float, str]:
    return _get(base, "/v1/monitoring/performance", lambda b: f"n={b['n']:,}")


def performance_weekly(base: str) -> tuple[str, float, str]:
    return _get(
        base,
        "/v1/monitoring/performance?every=week",
        lambda b: f"n={b['n']:,}, {len(b['windows'])} windows",
    )


ENDPOINTS: list[Callable[[str], tuple[str, float, str]]] = [performance, performance_weekly]


def _get(base: str, path: str, summary: Callable[[dict], str]) -> tuple[str, float, str]:
    start = time.perf_counter()
    reply = httpx.get(base + path, timeout=600)
    elapsed = time.perf_counter() - start
    reply.raise_for_status()
    return path, elapsed, summary(reply.json())


def breakdown(label: str, url: str) -> None:
    """Where the time of one performance call goes, in this process: the query with the
    transfer of its rows, then the figures."""
    from sepsis_api.db.session import make_engine
    from sepsis_api.monitoring import labelled
    from sepsis_api.monitoring.performance import report

    version = Registry([PACKAGED_ROOT]).open()
    engine = make_engine(url)
    sel = labelled.Selection(version.version, version.default_model)
    start = time.perf_counter()
    data = labelled.read(engine, sel)
    read = time.perf_counter() - start
    report(data, model_card=version.model_card(version.default_model))
    figures = time.perf_counter() - start - read
    engine.dispose()
    print(
        f"{label:<11} in process: query and rows {read:.2f} s, figures {figures:.2f} s "
        f"(load average {os.getloadavg()[0]:.1f})",
        flush=True,
    )


def run_endpoints(label: str, env: dict[str, str], repeat: int, data_dir: Path) -> None:
    # No background monitoring in the timed server (it would count drift and performance over
    # the same rows at start-up, beside the calls): only the route's own work is timed.
    env = {**env, "SEPSIS_API_MONITORING_INTERVAL_SECONDS": "0"}
    with ServerProcess(data_dir, env) as srv:
        for endpoint in ENDPOINTS:
            times = []
            for _ in range(repeat):
                path, elapsed, summary = endpoint(srv.url)
                times.append(elapsed)
            print(
                f"{label:<11} GET {path:<45} median {statistics.median(times):6.2f} s "
                f"(min {min(times):.2f}, max {max(times):.2f}; {summary})",
                flush=True,
            )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    print(
        f"{args.rows:,} predictions with outcomes; {os.cpu_count()} CPUs, load average "
        f"{os.getloadavg()[0]:.1f} (1 min)",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="bench-monitoring-") as tmp:
        db = Path(tmp) / "audit.db"
        start = time.perf_counter()
        fill_sqlite(db, args.rows)
        print(f"SQLite filled in {time.perf_counter() - start:.1f} s", flush=True)
        run_endpoints(
            "SQLite", {"SEPSIS_API_DATABASE_URL": f"sqlite:///{db}"}, args.repeat, Path(tmp)
        )
        breakdown("SQLite", f"sqlite:///{db}")
        reason = missing_reason()
        if reason is not None:
            print(f"PostgreSQL skipped: {reason}")
            return
        with PostgresCluster() as cluster:
            start = time.perf_counter()
            fill_postgres(cluster.url, cluster.dsn, args.rows)
            print(f"PostgreSQL filled in {time.perf_counter() - start:.1f} s", flush=True)
            run_endpoints(
                "PostgreSQL", {"SEPSIS_API_DATABASE_URL": cluster.url}, args.repeat, Path(tmp)
            )
            breakdown("PostgreSQL", cluster.url)


if __name__ == "__main__":
    main()
