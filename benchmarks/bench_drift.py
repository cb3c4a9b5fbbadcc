"""GET /v1/monitoring/drift over a large audit log, on SQLite and on PostgreSQL.

Fills an audit database with ``--rows`` estimates of the shipped default model (the data set's
768 patients resampled over 30 days, scored by ``score``), starts a real server on it and times
the drift route over a window of whole days holding them all (the first call, which counts every
day, and the best of ``--repeats`` later ones, which count today's estimates and take the past
days' counts kept by the first), then the first call of a new server process on the same
database (the past days' counts are read from the database). This is not a test: it asserts
nothing.

    python benchmarks/bench_drift.py --data ../shared/data [--rows 1000000] [--only sqlite]

PostgreSQL runs in a throwaway cluster (tests/pg.py) when its server binaries are installed
(scripts/ensure-test-tools.sh).
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from pg import PostgresCluster, missing_reason
from sepsis_api.config import Settings
from sepsis_api.db.audit import open_audit
from sepsis_api.ids import new_ids
from sepsis_api.ml.data import load_table
from sepsis_api.ml.scoring import Predictor, score
from sepsis_api.ml.store import PACKAGED_ROOT, Registry
from sepsis_api.schema import FEATURES
from server import ServerProcess

CHUNK = 50_000
DAYS = 30


def fill(database_url: str, data: Path, rows: int) -> tuple[str, str, datetime]:
    """``rows`` audit rows over the last DAYS days; returns the version, model and start."""
    audit = open_audit(Settings(_env_file=None, database_url=database_url))
    predictor = Predictor(Registry([PACKAGED_ROOT]).open())
    model = predictor.default
    X768 = np.vstack([load_table(data / f"Paitients_Files_{s}.csv").X for s in ("Train", "Test")])
    rng = np.random.default_rng(0)
    start = datetime.now(UTC) - timedelta(days=DAYS)
    codes = [f.code for f in FEATURES]
    same = {
        "request_id": "bench",
        "caller": "bench",
        "source": "batch",
        "model_name": model.name,
        "model_version": model.version,
        "threshold": model.threshold,
        "contributions": None,
    }
    t0 = time.perf_counter()
    for done in range(0, rows, CHUNK):
        n = min(CHUNK, rows - done)
        X = X768[rng.integers(0, len(X768), n)]
        s = score(model, X)
        offsets = np.sort(rng.uniform(0, DAYS * 86400, n))
        each = {
            "id": new_ids(n),
            "created_at": [start + timedelta(seconds=float(o)) for o in offsets],
            "patient_id": [None] * n,
            "inputs": [dict(zip(codes, row, strict=True)) for row in X.tolist()],
            "probability": s.probability.tolist(),
            "label": s.label.tolist(),
            "risk_band": s.band.tolist(),
        }
        audit.record(audit.insert.params(n, each, same))
    print(f"  filled {rows:,} rows in {time.perf_counter() - t0:.0f} s")
    audit.engine.dispose()
    return model.version, model.name, start


def time_route(url: str, since: datetime, repeats: int) -> tuple[float, float, int]:
    query = {"since": since.isoformat().replace("+00:00", "Z")}
    times = []
    n = 0
    with httpx.Client(base_url=url, timeout=120) as client:
        for _ in range(repeats + 1):
            t0 = time.perf_counter()
            r = client.get("/v1/monitoring/drift", params=query)
            times.append(time.perf_counter() - t0)
            r.raise_for_status()
            n = r.json()["n"]
    return times[0], min(times[1:], default=math.nan), n


def run(name: str, database_url: str, args: argparse.Namespace, tmp: Path) -> None:
    print(f"== {name} ==")
    _, _, start = fill(database_url, args.data, args.rows)
    env = {"SEPSIS_API_DATABASE_URL": database_url, "SEPSIS_API_ACCESS_LOG": "false"}
    # No background monitoring in the timed server: only the route's own query runs.
    env["SEPSIS_API_MONITORING_INTERVAL_SECONDS"] = "0"
    # From the midnight before the first estimate: whole days, as the default window is.
    since = datetime.combine(start.date(), datetime.min.time(), tzinfo=UTC)
    with ServerProcess(tmp / name, env) as srv:
        cold, best, n = time_route(srv.url, since, args.repeats)
    print(f"  GET /v1/monitoring/drift over {n:,} estimates: first {cold:.3f} s, best {best:.3f} s")
    # A new server process on the same database: the past days' counts are in the database.
    with ServerProcess(tmp / f"{name}-restarted", env) as srv:
        restarted, _, _ = time_route(srv.url, since, 0)
    print(f"  after a restart: first call {restarted:.3f} s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--only", choices=["sqlite", "postgresql"])
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-drift-") as d:
        tmp = Path(d)
        if args.only != "postgresql":
            run("SQLite", f"sqlite:///{tmp / 'audit.db'}", args, tmp)
        if args.only != "sqlite":
            reason = missing_reason()
            if reason:
                print(f"== PostgreSQL == skipped: {reason}")
                return
            with PostgresCluster() as pg:
                run("PostgreSQL", pg.url, args, tmp)


if __name__ == "__main__":
    main()
