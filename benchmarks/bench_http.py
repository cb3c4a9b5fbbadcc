"""HTTP throughput and latency of the API against the bare HTTP stack, driven by wrk.

Seven targets, each a real server process on 127.0.0.1 (a free port), started and stopped here:

  (a) baseline   benchmarks/baseline_app.py: FastAPI + uvicorn, validates the body as the
                 project's Patient model and returns a constant JSON object (the ceiling;
                 start-up objects frozen out of full GC passes, as in the real server)
  (b) predict    `sepsis-api serve --workers 1`, POST /v1/predict (default model, audit log on:
                 SQLite in a temporary directory), twice: a server with the default
                 SEPSIS_API_SQLITE_SYNCHRONOUS, and a second one (its own database) with the
                 other level (NORMAL: sync at checkpoints; FULL: sync every commit)
  (c) all        the first server, POST /v1/predict?model=all
  (d) v2         the first server, POST /v2/models/default/infer (Open Inference V2, one
                 FP64 tensor [1, 9], JSON), at concurrency 16 only
  (e) mlflow     the first server, POST /invocations (dataframe_split, one patient), at
                 concurrency 16 only
  (f) fhir       the first server, POST /fhir/RiskAssessment/$predict (a Bundle of the
                 Patient and one Observation per feature, coded by the shipped mapping), at
                 concurrency 16 only
  (g) cds-hooks  the first server, POST /cds-services/sepsis-risk (the documented patient-view
                 request, full prefetch of FHIR resources, no JWT: no issuers configured), at
                 concurrency 16 only

Each of (a) to (c) runs at concurrency 1, 16 and 64 for --duration seconds after a 1 s warm-up. The
table gives requests/s, p50 and p99 latency, errors, and ratios against (a) at the same
concurrency. Then one JSON call to POST /v1/predict/batch with 10,000 patients is timed on each
sepsis-api server. This is not a test: it asserts nothing. Needs `wrk`
(scripts/ensure-test-tools.sh installs it).

    python benchmarks/bench_http.py [--duration 10]
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import http.client
import importlib.metadata
import json
import os
import platform
import re
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
LUA = HERE / "post_json.lua"
HOST = "127.0.0.1"
CONCURRENCY = (1, 16, 64)
WARMUP_S = 1
READY_TIMEOUT_S = 120.0
BATCH_ROWS = 10_000
BATCH_CALLS = 5
SYNCHRONOUS = ("NORMAL", "FULL")  # SEPSIS_API_SQLITE_SYNCHRONOUS levels, one (b) run each
PATIENT = {
    "ID": "B1",
    "PRG": 6,
    "PL": 148,
    "PR": 72,
    "SK": 35,
    "TS": 0,
    "M11": 33.6,
    "BD2": 0.627,
    "Age": 50,
    "Insurance": 0,
}
_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}
_DURATION = r"([\d.]+)(us|ms|s|m|h)"
# Called after each warm-up (before=None) and each measured run; returns the audit row count.
OnRun = Callable[["WrkResult", int, "int | None"], int]


# -- wrk ---------------------------------------------------------------------------------------
@dataclass
class WrkResult:
    """The figures of one wrk run, parsed from its text output."""

    requests: int
    seconds: float
    rps: float
    p50_ms: float
    p99_ms: float
    non2xx: int
    socket_errors: dict[str, int] = field(default_factory=dict)

    @property
    def errors(self) -> int:
        return self.non2xx + sum(self.socket_errors.values())

    @property
    def ok(self) -> int:
        """Responses wrk counted as successful (it counts status >= 400 as non-2xx)."""
        return self.requests - self.non2xx


def _ms(number: str, unit: str) -> float:
    return float(number) * _UNITS[unit]


def parse_wrk(text: str) -> WrkResult:
    """Parse ``wrk --latency`` output; raise ValueError when a figure is missing."""

    def need(pattern: str) -> re.Match[str]:
        m = re.search(pattern, text, re.MULTILINE)
        if m is None:
            raise ValueError(f"no match for {pattern!r} in wrk output:\n{text}")
        return m

    total = need(r"^\s*(\d+) requests in " + _DURATION)
    p50 = need(r"^\s*50(?:\.0+)?%\s+" + _DURATION)
    p99 = need(r"^\s*99(?:\.0+)?%\s+" + _DURATION)
    non2xx = re.search(r"Non-2xx or 3xx responses:\s*(\d+)", text)
    sock = re.search(r"Socket errors:(.*)$", text, re.MULTILINE)
    socket_errors = (
        {k: int(v) for k, v in re.findall(r"(\w+) (\d+)", sock.group(1))} if sock else {}
    )
    return WrkResult(
        requests=int(total.group(1)),
        seconds=_ms(total.group(2), total.group(3)) / 1e3,
        rps=float(need(r"^Requests/sec:\s*([\d.]+)").group(1)),
        p50_ms=_ms(p50.group(1), p50.group(2)),
        p99_ms=_ms(p99.group(1), p99.group(2)),
        non2xx=int(non2xx.group(1)) if non2xx else 0,
        socket_errors=socket_errors,
    )


def run_wrk(url: str, body_file: Path, connections: int, seconds: int) -> WrkResult:
    """One wrk run; -t1 at one connection, -t2 otherwise (threads never exceed connections)."""
    threads = 1 if connections == 1 else 2
    cmd = [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{seconds}s",
        "--latency",
        "--timeout",
        "30s",
        "-s",
        str(LUA),
        url,
    ]
    env = {**os.environ, "BENCH_BODY_FILE": str(body_file)}
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=seconds + 60)
    if proc.returncode != 0:
        raise RuntimeError(f"wrk failed ({proc.returncode}): {proc.stderr or proc.stdout}")
    return parse_wrk(proc.stdout)


def wrk_version() -> str:
    proc = subprocess.run(["wrk", "-v"], capture_output=True, text=True, timeout=10)
    first = (proc.stdout or proc.stderr).splitlines()
    return first[0].split(" Copyright")[0] if first else "unknown"


# -- servers -----------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def _die_with_parent() -> None:
    """In the child: get SIGTERM if the benchmark dies without cleaning up (Linux only)."""
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def request(
    port: int,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 120.0,
) -> tuple[int, bytes]:
    """One HTTP request on loopback (http.client: no proxy settings apply)."""
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


class Server:
    """A server process on loopback, ready once ``ready_path`` answers 200."""

    def __init__(
        self, name: str, cmd: list[str], port: int, env: dict[str, str], cwd: Path, ready_path: str
    ) -> None:
        self.name, self.cmd, self.port, self.env, self.cwd = name, cmd, port, env, cwd
        self.ready_path = ready_path
        self.log_path = cwd / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                self.cmd,
                env=self.env,
                cwd=self.cwd,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited ({self.proc.returncode}) before it was "
                    f"ready:\n{self.log_tail()}"
                )
            with contextlib.suppress(OSError, http.client.HTTPException):
                if request(self.port, "GET", self.ready_path, timeout=2)[0] == 200:
                    return
            time.sleep(0.1)
        raise RuntimeError(
            f"{self.name} not ready after {READY_TIMEOUT_S:.0f} s:\n{self.log_tail()}"
        )

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=35)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def log_tail(self, lines: int = 30) -> str:
        text = self.log_path.read_text(encoding="utf-8", errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def loaded(self) -> str:
        """Which event loop / HTTP parser extensions the process has actually loaded."""
        assert self.proc is not None
        try:
            maps = Path(f"/proc/{self.proc.pid}/maps").read_text()
        except OSError:
            return "unknown (no /proc)"
        found = [
            name
            for name, mark in (("uvloop", "/uvloop/"), ("httptools", "/httptools/"))
            if mark in maps
        ]
        return " + ".join(found) or "asyncio + h11 (neither uvloop nor httptools loaded)"

    def __enter__(self) -> Server:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


# -- audit database ----------------------------------------------------------------------------
def audit_rows(db: Path) -> int:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        return int(conn.execute("SELECT count(*) FROM predictions").fetchone()[0])
    finally:
        conn.close()


def settled_rows(db: Path, max_wait: float = 5.0) -> int:
    """Row count once requests still in flight when wrk stopped have committed."""
    last = audit_rows(db)
    deadline = time.monotonic() + max_wait
    while time.monotonic() < deadline:
        time.sleep(0.25)
        now = audit_rows(db)
        if now == last:
            return now
        last = now
    return last


# -- figures -----------------------------------------------------------------------------------
@dataclass
class Row:
    target: str
    concurrency: int
    result: WrkResult


@dataclass
class BatchRow:
    target: str
    client_ms: float  # median over the timed calls
    server_ms: float  # median from /metrics; NaN when it was not available


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _git() -> str:
    try:
        rev = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
        dirty = subprocess.run(
            [
                "git",
                "--no-optional-locks",
                "-C",
                str(ROOT),
                "status",
                "--porcelain",
                "--untracked-files=no",
            ],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return "not available"
    return rev.stdout.strip() + (" (with uncommitted changes)" if dirty.stdout.strip() else "")


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def print_facts() -> None:
    print("== machine ==")
    print(f"CPUs: {os.cpu_count()} ({len(os.sched_getaffinity(0))} usable), {_cpu_model()}")
    print(f"OS: {platform.platform()}")
    print(f"Python {platform.python_version()} ({sys.executable})")
    libs = ", ".join(
        f"{d} {_version(d)}"
        for d in ("uvicorn", "fastapi", "starlette", "pydantic", "uvloop", "httptools")
    )
    print(f"libraries: {libs}")
    print(f"load generator: {wrk_version()} (runs on the same CPUs as the server)")
    print(f"git commit: {_git()}")
    print(f"load average before: {_load()} (other work on the machine skews the figures)")


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def _ratio(x: float, base: float) -> str:
    return f"{x / base:.2f}x" if base > 0 else "n/a"


def print_table(rows: list[Row], batches: list[BatchRow]) -> None:
    base = {r.concurrency: r.result for r in rows if r.target.startswith("(a)")}
    head = (
        f"{'target':<32} {'conc':>4} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} "
        f"{'errors':>6} {'req/s vs (a)':>12} {'p99 vs (a)':>10}"
    )
    print(head)
    print("-" * len(head))
    for r in sorted(rows, key=lambda r: r.target[:3]):  # (a), (b)s, (c); stable within each
        w, b = r.result, base.get(r.concurrency)
        print(
            f"{r.target:<32} {r.concurrency:>4} {w.rps:>9,.0f} {w.p50_ms:>8.2f} "
            f"{w.p99_ms:>8.2f} {w.errors:>6} "
            f"{_ratio(w.rps, b.rps) if b else 'n/a':>12} "
            f"{_ratio(w.p99_ms, b.p99_ms) if b else 'n/a':>10}"
        )
    for r in rows:
        if r.result.errors:
            print(
                f"  {r.target} c={r.concurrency}: non-2xx {r.result.non2xx}, socket errors "
                f"{r.result.socket_errors}"
            )
    print(f"\n{BATCH_ROWS:,} patients in one JSON batch call (median of {BATCH_CALLS} calls):")
    for b in batches:
        server = "n/a" if b.server_ms != b.server_ms else f"{b.server_ms:,.0f} ms"
        print(f"  {b.target:<30} server {server:>8}, client {b.client_ms:,.0f} ms")


# -- the runs ----------------------------------------------------------------------------------
def measure(
    label: str,
    port: int,
    path: str,
    body_file: Path,
    seconds: int,
    rows: list[Row],
    on_run: OnRun | None = None,
    concurrencies: tuple[int, ...] = CONCURRENCY,
) -> None:
    """Warm up, then measure one target at each concurrency."""
    url = f"http://{HOST}:{port}{path}"
    for c in concurrencies:
        warm = run_wrk(url, body_file, c, WARMUP_S)
        before = on_run(warm, c, None) if on_run else None
        result = run_wrk(url, body_file, c, seconds)
        rows.append(Row(label, c, result))
        print(
            f"{label} c={c}: {result.rps:,.0f} req/s, p50 {result.p50_ms:.2f} ms, "
            f"p99 {result.p99_ms:.2f} ms, {result.requests:,} requests, "
            f"{result.errors} errors",
            flush=True,
        )
        if on_run:
            on_run(result, c, before)


def batch_body(n: int) -> bytes:
    """``n`` valid patients that differ a little from each other."""
    patients = [
        {
            "ID": f"B{i}",
            "PRG": i % 15,
            "PL": 80 + (i * 7) % 120,
            "PR": 60 + i % 40,
            "SK": 20 + i % 30,
            "TS": (i * 13) % 300,
            "M11": round(20 + (i % 200) / 10, 1),
            "BD2": round(0.1 + (i % 90) / 100, 3),
            "Age": 21 + i % 60,
            "Insurance": i % 2,
        }
        for i in range(n)
    ]
    return json.dumps({"patients": patients}, separators=(",", ":")).encode()


def server_seconds(port: int, route: str) -> tuple[float, float]:
    """(sum, count) of the API's own request-duration histogram for POST ``route``."""
    status, text = request(port, "GET", "/metrics")
    if status != 200:
        return float("nan"), float("nan")
    found = {}
    for kind in ("sum", "count"):
        m = re.search(
            rf"^sepsis_api_request_duration_seconds_{kind}\{{[^}}]*"
            rf'route="{re.escape(route)}"[^}}]*\}} (\S+)$',
            text.decode(),
            re.MULTILINE,
        )
        found[kind] = float(m.group(1)) if m else float("nan")
    return found["sum"], found["count"]


def measure_batch(port: int, label: str) -> tuple[int, int, BatchRow]:
    """Time POST /v1/predict/batch with BATCH_ROWS patients; return (calls, rows recorded,
    the medians)."""
    body = batch_body(BATCH_ROWS)
    headers = {"Content-Type": "application/json"}
    route = "/v1/predict/batch"
    print(
        f"\n== batch ({label}): POST {route}, {BATCH_ROWS:,} patients in one JSON call "
        f"({len(body) / 1e6:.2f} MB), 1 warm-up + {BATCH_CALLS} timed calls ==",
        flush=True,
    )
    client: list[float] = []
    server: list[float] = []  # per call, only when /metrics gave exactly this call's time
    gap: list[float] = []
    calls = 0
    reply = b""
    for i in range(BATCH_CALLS + 1):
        s0, n0 = server_seconds(port, route)
        t0 = time.perf_counter()
        status, reply = request(port, "POST", route, body, headers, timeout=300)
        elapsed = time.perf_counter() - t0
        s1, n1 = server_seconds(port, route)
        calls += 1
        if status != 200 or json.loads(reply)["count"] != BATCH_ROWS:
            raise RuntimeError(f"batch call failed: {status} {reply[:300]!r}")
        if i == 0:
            continue
        client.append(elapsed)
        if n1 - n0 == 1:
            server.append(s1 - s0)
            gap.append(elapsed - (s1 - s0))
    med = statistics.median(client)
    each = ", ".join(f"{t * 1e3:,.0f}" for t in client)
    print(
        f"client (request sent .. last byte of the {len(reply) / 1e6:.2f} MB reply): median "
        f"{med * 1e3:,.0f} ms = {BATCH_ROWS / med:,.0f} patients/s  (calls: {each} ms)"
    )
    smed = float("nan")
    if len(server) == len(client):
        smed = statistics.median(server)
        each = ", ".join(f"{t * 1e3:,.0f}" for t in server)
        print(
            f"server (the API's own request-duration histogram from /metrics: app entered .. "
            f"reply sent; includes reading the body): median {smed * 1e3:,.0f} ms = "
            f"{BATCH_ROWS / smed:,.0f} patients/s  (calls: {each} ms); outside the app "
            f"(uvicorn + loopback): median {statistics.median(gap) * 1e3:,.0f} ms per call"
        )
    else:
        print(
            "server time: not available from /metrics; the client time above is an upper "
            "bound for it (loopback, so transfer time is small)"
        )
    return calls, calls * BATCH_ROWS, BatchRow(label, med * 1e3, smed * 1e3)


def sepsis_api_cmd() -> list[str]:
    script = Path(sys.executable).parent / "sepsis-api"
    return [str(script)] if script.exists() else [sys.executable, "-m", "sepsis_api.cli"]


def server_env(data_dir: Path) -> dict[str, str]:
    """The caller's environment without SEPSIS_API_* settings (default model, no API keys)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEPSIS_API_")}
    env["SEPSIS_API_DATA_DIR"] = str(data_dir)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def default_synchronous() -> str:
    """The server's SEPSIS_API_SQLITE_SYNCHRONOUS when it is not set."""
    from sepsis_api.config import Settings

    return str(Settings.model_fields["sqlite_synchronous"].default)


def protocol_bodies() -> list[tuple[str, str, dict[str, object]]]:
    """(label, path, JSON body) of the protocol targets: the same patient as (b)."""
    codes = [k for k in PATIENT if k != "ID"]
    row = [PATIENT[c] for c in codes]
    v2 = {"inputs": [{"name": "features", "datatype": "FP64", "shape": [1, 9], "data": row}]}
    mlflow = {"dataframe_split": {"columns": codes, "data": [row]}}
    from sepsis_api.api.protocols.cds_hooks import example_request

    return [
        ("(d) v2 infer", "/v2/models/default/infer", v2),
        ("(e) mlflow invocations", "/invocations", mlflow),
        ("(f) fhir RiskAssessment/$predict", "/fhir/RiskAssessment/$predict", fhir_bundle()),
        ("(g) cds-hooks patient-view", "/cds-services/sepsis-risk", example_request()),
    ]


def fhir_bundle() -> dict[str, object]:
    """PATIENT as a FHIR Bundle: a Patient born so that Age is 50 on the observation date, and
    one Observation per other feature with the first code and unit the shipped mapping lists."""
    from sepsis_api.api.protocols.fhir_mapping import PLAIN_NUMBER, UCUM, load_mapping

    entries: list[dict[str, object]] = [
        {"resource": {"resourceType": "Patient", "id": "b1", "birthDate": "1973-11-20"}}
    ]
    for code, rule in load_mapping().features.items():
        unit = next(iter(rule.units))
        value: dict[str, object] = (
            {"valueInteger": PATIENT[code]}
            if unit == PLAIN_NUMBER and float(PATIENT[code]).is_integer()
            else {"valueQuantity": {"value": PATIENT[code], "system": UCUM, "code": unit}}
        )
        entries.append(
            {
                "resource": {
                    "resourceType": "Observation",
                    "id": f"b1-{code.lower()}",
                    "status": "final",
                    "code": {
                        "coding": [{"system": rule.codes[0].system, "code": rule.codes[0].code}]
                    },
                    "subject": {"reference": "Patient/b1"},
                    "effectiveDateTime": "2024-03-01T09:30:00Z",
                    **value,
                }
            }
        )
    return {"resourceType": "Bundle", "type": "collection", "entry": entries}


def measure_sepsis_api(
    tmp: Path,
    synchronous: str,
    *,
    default: bool,
    body_file: Path,
    seconds: int,
    rows: list[Row],
) -> BatchRow:
    """(b) and the batch call on one `sepsis-api serve` process with its own SQLite audit log
    at ``synchronous`` (left unset when it is the ``default``); (c) too on the default one.
    Every 2xx is checked against the audit database."""
    name = f"sepsis-api-{synchronous.lower()}"
    env = server_env(tmp / name)
    if not default:
        env["SEPSIS_API_SQLITE_SYNCHRONOUS"] = synchronous
    level = f"synchronous={synchronous}"
    port = free_port()
    cmd = [*sepsis_api_cmd(), "serve", "--host", HOST, "--port", str(port), "--workers", "1"]
    db = tmp / name / "audit.db"
    with Server(name, cmd, port, env, tmp, "/readyz") as srv:
        info = json.loads(request(port, "GET", "/")[1])
        n_models = len(info["models"])
        print(
            f"\n{name} pid {srv.proc.pid if srv.proc else '?'} on port {port}: "
            f"{srv.loaded()}; {level}{' (the default)' if default else ''}; model version "
            f"{info['model_version']}, default {info['default_model']}, models "
            f"{', '.join(info['models'])}; audit log {db}",
            flush=True,
        )
        expected = 0  # audit rows implied by every 2xx that wrk or we counted

        def audit_check(per_request: int) -> OnRun:
            def check(result: WrkResult, c: int, before: int | None) -> int:
                nonlocal expected
                expected += result.ok * per_request
                now = settled_rows(db)
                if before is not None:
                    added, want = now - before, result.ok * per_request
                    verdict = (
                        "OK"
                        if 0 <= added - want <= c * per_request
                        else "MISSING ROWS"
                        if added < want
                        else "more than in flight"
                    )
                    print(
                        f"    audit: +{added:,} rows for {result.ok:,} 2xx x "
                        f"{per_request} = {want:,}; {added - want:+,} (requests still in "
                        f"flight when wrk stopped, at most {c * per_request}): {verdict}",
                        flush=True,
                    )
                return now

            return check

        measure(
            f"(b) predict, {level}", port, "/v1/predict", body_file, seconds, rows, audit_check(1)
        )
        if default:
            measure(
                "(c) predict?model=all",
                port,
                "/v1/predict?model=all",
                body_file,
                seconds,
                rows,
                audit_check(n_models),
            )
            for label, path, body in protocol_bodies():
                protocol_file = tmp / f"{label[:3].strip('()')}.json"
                protocol_file.write_bytes(json.dumps(body, separators=(",", ":")).encode())
                measure(
                    label,
                    port,
                    path,
                    protocol_file,
                    seconds,
                    rows,
                    audit_check(1),
                    concurrencies=(16,),
                )
        _, batch_rows, batch = measure_batch(port, level)
        expected += batch_rows
        total = settled_rows(db)
        print(
            f"\naudit DB holds {total:,} rows; 2xx responses counted by the clients "
            f"(warm-ups and batch included) imply {expected:,}; the {total - expected:+,} "
            f"are requests that completed after wrk stopped counting"
        )
    return batch


def _terminate(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)  # unwinds, so every started server is stopped


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--duration",
        type=int,
        default=10,
        help="Seconds per measured run (default 10); each has a 1 s warm-up.",
    )
    args = ap.parse_args()
    if args.duration < 1:
        ap.error("--duration must be at least 1 second")
    if shutil.which("wrk") is None:
        print(
            "bench_http: wrk is not installed. Install it with `scripts/ensure-test-tools.sh` "
            "(as root) or `apt-get install wrk`.",
            file=sys.stderr,
        )
        return 2
    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGHUP, _terminate)

    print_facts()
    print(
        f"\nruns: {args.duration} s each after a {WARMUP_S} s warm-up, concurrency "
        f"{', '.join(map(str, CONCURRENCY))} (wrk -t1 at c=1, -t2 otherwise), keep-alive"
    )
    print(f"body: {json.dumps(PATIENT, separators=(',', ':'))}\n", flush=True)
    rows: list[Row] = []
    batches: list[BatchRow] = []
    with tempfile.TemporaryDirectory(prefix="bench-http-") as tmp_name:
        tmp = Path(tmp_name)
        body_file = tmp / "patient.json"
        body_file.write_bytes(json.dumps(PATIENT, separators=(",", ":")).encode())
        env = server_env(tmp / "data-baseline")

        # (a) the ceiling
        base_cmd = [sys.executable, str(HERE / "baseline_app.py"), "--host", HOST, "--port"]
        port = free_port()
        with Server("baseline", [*base_cmd, str(port)], port, env, tmp, "/healthz") as srv:
            print(
                f"(a) baseline pid {srv.proc.pid if srv.proc else '?'} on port {port}: "
                f"{srv.loaded()}",
                flush=True,
            )
            measure("(a) baseline", port, "/v1/predict", body_file, args.duration, rows)

        # (b), (c) and the batch call on a server with the default synchronous level; then
        # (b) and the batch call again on a second server with the other level.
        default = default_synchronous()
        for level in sorted(SYNCHRONOUS, key=lambda level: level != default):
            batches.append(
                measure_sepsis_api(
                    tmp,
                    level,
                    default=level == default,
                    body_file=body_file,
                    seconds=args.duration,
                    rows=rows,
                )
            )

    print("\n== results (higher req/s ratio is better, lower p99 ratio is better) ==")
    print_table(rows, batches)
    print(f"load average after: {_load()}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("\nbench_http: interrupted; the servers it started are stopped", file=sys.stderr)
        sys.exit(130)
