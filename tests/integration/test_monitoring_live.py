"""Monitoring on a real server: `sepsis-api traffic` makes the drift alarm go off, the gauges
are right with two worker processes, and every metric the dashboard and the alerting rules
name is one the server exports."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from factories import PATIENT
from server import ServerProcess, wait_for

REPO = Path(__file__).resolve().parents[2]
N = 600


def traffic(url: str, data: Path, *args: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "sepsis_api.cli", "traffic", "--url", url, "--data", str(data)]
    return subprocess.run([*cmd, *args], capture_output=True, text=True, timeout=300, check=False)


@pytest.fixture(scope="module")
def two_workers(tmp_path_factory: pytest.TempPathFactory):
    env = {"SEPSIS_API_WORKERS": "2", "SEPSIS_API_MONITORING_INTERVAL_SECONDS": "0.2"}
    with ServerProcess(tmp_path_factory.mktemp("monitoring"), env) as srv:
        yield srv


def test_traffic_sets_off_the_drift_alarm_only_when_shifted(tmp_path, train_csv):
    env = {"SEPSIS_API_MONITORING_INTERVAL_SECONDS": "0"}
    with ServerProcess(tmp_path, env) as srv:
        plain = traffic(srv.url, train_csv, "--count", str(N), "--seed", "1")
        assert plain.returncode == 0, plain.stderr
        assert f"sent {N} patients" in plain.stdout
        report = httpx.get(srv.url + "/v1/monitoring/drift").json()
        assert report["n"] == N
        assert report["status"] == "ok", report
        assert {f["status"] for f in report["features"]} == {"ok"}

        shifted = traffic(
            srv.url,
            train_csv,
            *("--count", str(N), "--seed", "2", "--shift", "PL=+30", "--batch", "250"),
            *("--outcomes-from", "logistic_regression", "--rate", "100000"),
        )
        assert shifted.returncode == 0, shifted.stderr
        assert f"recorded {N} outcomes" in shifted.stdout
        later = httpx.get(
            srv.url + "/v1/monitoring/drift", params={"since": report["until"]}
        ).json()
        assert later["n"] == N
        status = {f["feature"]: f["status"] for f in later["features"]}
        assert status.pop("PL") == "alert"
        assert set(status.values()) == {"ok"}
        assert later["status"] == "alert"
        # The outcomes went to the shifted run's estimates, through the outcome routes.
        newest = httpx.get(srv.url + "/v1/predictions", params={"limit": 5}).json()["items"]
        assert all(r["outcome"]["source"] == "sepsis-api traffic" for r in newest)
        assert all(r["inputs"]["PL"] in (0, None) or r["inputs"]["PL"] > 30 for r in newest)


def test_traffic_refuses_a_remote_url_and_a_bad_shift(train_csv):
    far = traffic("http://192.0.2.1:8000", train_csv, "--count", "1")
    assert far.returncode == 2
    assert "not a loopback address" in far.stderr and "--allow-remote" in far.stderr
    bad = traffic("http://127.0.0.1:9", train_csv, "--shift", "XX=+1")
    assert bad.returncode == 2 and "--shift 'XX=+1'" in bad.stderr and "PL=+30" in bad.stderr


def samples(text: str) -> dict[str, list[tuple[str, float]]]:
    """Exposition lines by metric name: (labels, value) pairs."""
    out: dict[str, list[tuple[str, float]]] = {}
    for line in text.splitlines():
        m = re.match(r"^([a-zA-Z_:][\w:]*)(\{[^}]*\})? (\S+)$", line)
        if m:
            out.setdefault(m[1], []).append((m[2] or "", float(m[3])))
    return out


def test_gauges_with_two_workers_show_the_drift_routes_figures(two_workers, train_csv):
    srv = two_workers
    ok = traffic(
        srv.url,
        train_csv,
        *("--count", str(N), "--seed", "3", "--shift", "PL=+30"),
        *("--outcomes-from", "logistic_regression"),
    )
    assert ok.returncode == 0, ok.stderr
    report = httpx.get(srv.url + "/v1/monitoring/drift").json()
    performance = httpx.get(srv.url + "/v1/monitoring/performance").json()
    assert performance["status"] == "ok", performance
    model = report["model"]

    def current() -> dict[str, list[tuple[str, float]]]:
        s = samples(httpx.get(srv.url + "/metrics").text)
        counted = s.get("sepsis_api_monitoring_window_estimates", [])
        judged = s.get("sepsis_api_performance_outcomes", [])
        label = f'{{model="{model}"}}'
        return s if (label, float(N)) in counted and (label, float(N)) in judged else {}

    wait_for(current, "the gauges to count the traffic", timeout=60)
    for _ in range(6):  # new connections: the kernel spreads them over both workers
        s = current()
        assert s, "a worker's scrape lost the figures"
        for name, series in s.items():
            labels = [lab for lab, _ in series]
            assert len(labels) == len(set(labels)), (name, labels)  # one series per label set
            assert all("pid" not in lab for lab in labels), name
        psi = {lab: v for lab, v in s["sepsis_api_drift_feature_psi"]}
        for f in report["features"]:
            got = psi[f'{{feature="{f["feature"]}",model="{model}"}}']
            assert got == pytest.approx(f["psi"], rel=1e-9), f["feature"]
        risk = dict(s["sepsis_api_drift_predicted_risk_psi"])[f'{{model="{model}"}}']
        assert risk == pytest.approx(report["predicted_risk"]["psi"], rel=1e-9)
        rate = dict(s["sepsis_api_alert_rate_ratio"])[f'{{model="{model}"}}']
        assert rate == pytest.approx(report["alert_rate"]["estimate"], rel=1e-9)
        card = report["alert_rate"]["reference"]
        low = dict(s["sepsis_api_alert_rate_card_low_ratio"])[f'{{model="{model}"}}']
        assert low == pytest.approx(card["low"])
        for metric, key in (
            ("sepsis_api_performance_roc_auc_ratio", "roc_auc"),
            ("sepsis_api_performance_brier_ratio", "brier"),
            ("sepsis_api_performance_calibration_slope", "calibration_slope"),
            ("sepsis_api_performance_calibration_intercept", "calibration_intercept"),
        ):
            got = dict(s[metric])[f'{{model="{model}"}}']
            assert got == pytest.approx(performance[key]["estimate"], rel=1e-9), metric
        outcomes = dict(s["sepsis_api_performance_outcomes"])[f'{{model="{model}"}}']
        assert outcomes == N
        (stamp,) = [v for _, v in s["sepsis_api_monitoring_last_computed_timestamp_seconds"]]
        assert stamp > 0
        # Models without estimates in the window: not estimable, not zero.
        others = [v for lab, v in s["sepsis_api_alert_rate_ratio"] if model not in lab]
        assert others and all(math.isnan(v) for v in others)


def metric_names_used() -> dict[str, set[str]]:
    """Every sepsis_api_* name in the alerting rules and the dashboard."""
    rules = (REPO / "deploy/prometheus/rules/sepsis-api.yml").read_text()
    dashboard = json.loads((REPO / "deploy/grafana/dashboards/sepsis-api.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    exprs += [v["definition"] for v in dashboard["templating"]["list"]]
    pattern = re.compile(r"\bsepsis_api_\w+")
    return {
        "rules": set(pattern.findall(rules)),
        "dashboard": set(pattern.findall("\n".join(exprs))),
    }


def test_every_metric_named_in_the_dashboard_and_rules_is_exported(two_workers):
    used = metric_names_used()
    assert len(used["rules"]) >= 5 and len(used["dashboard"]) >= 8
    assert httpx.post(two_workers.url + "/v1/predict", json=PATIENT).status_code == 200
    exported = set(samples(httpx.get(two_workers.url + "/metrics").text))
    for where, names in used.items():
        assert names <= exported, (where, sorted(names - exported))
