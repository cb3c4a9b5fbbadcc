"""The Monitoring page, run by AppTest against real API processes on loopback: one with an
empty audit log, one filled by `sepsis-api traffic` (PL shifted by +30, outcomes drawn from the
logistic regression), so the page has drift to flag and outcomes to judge the model by."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from test_pages import charts, metric, texts

from server import ServerProcess

TRAFFIC = 1200  # >= 500 estimates in the week (PSI) and >= 100 events and non-events
DECIMAL = re.compile(r"\d\.\d")


def send_traffic(url: str, data: Path, count: int, *shift: str) -> str:
    """`sepsis-api traffic` against ``url``, bounded in count and time; its summary line."""
    args = [sys.executable, "-m", "sepsis_api.cli", "traffic", "--data", str(data)]
    args += ["--url", url, "--count", str(count), "--batch", "200", "--max-seconds", "300"]
    args += ["--outcomes-from", "logistic_regression", "--seed", "11"]
    for s in shift:
        args += ["--shift", s]
    done = subprocess.run(args, capture_output=True, text=True, timeout=420, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture(scope="module")
def empty_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with ServerProcess(tmp_path_factory.mktemp("mon-empty")) as srv:
        yield srv


@pytest.fixture(scope="module")
def busy_server(
    tmp_path_factory: pytest.TempPathFactory, train_csv: Path
) -> Iterator[ServerProcess]:
    with ServerProcess(tmp_path_factory.mktemp("mon-busy")) as srv:
        summary = send_traffic(srv.url, train_csv, TRAFFIC, "PL=+30")
        assert f"sent {TRAFFIC} patients" in summary and f"recorded {TRAFFIC} outcomes" in summary
        yield srv


def test_no_data_says_not_enough_and_shows_no_numbers(empty_server, open_page) -> None:
    at = open_page(empty_server.url, "monitoring")
    infos = " ".join(texts(at, "info"))
    assert "Not enough outcomes yet" in infos
    assert "0 estimates have an outcome recorded" in infos
    assert "Not enough estimates yet" in infos  # the heatmap
    assert infos.count("No estimates in the span yet") == 2  # alert rate, predicted risk
    assert not at.metric and not at.dataframe and not charts(at)
    assert not texts(at, "error")
    # nothing that looks like a figure: the only decimals are the documented thresholds
    figures = [t for t in texts(at, "markdown") if DECIMAL.search(t)]
    assert not figures, figures


def test_traffic_with_outcomes_shows_drift_alarm_figures_and_charts(busy_server, open_page) -> None:
    at = open_page(busy_server.url, "monitoring")
    api = httpx.get(
        f"{busy_server.url}/v1/monitoring/performance", params={"every": "week"}, timeout=30
    ).json()
    assert api["status"] == "ok"

    # drift: PL + 30 is flagged in this week's column
    alarm = " ".join(texts(at, "error"))
    assert "Drift alert" in alarm and "(PL)" in alarm
    assert f"**{TRAFFIC}** estimates" in " ".join(texts(at, "markdown"))

    # the headline figures are the API's, with their intervals
    assert metric(at, "ROC AUC") == [f"{api['roc_auc']['estimate']:.3f}"]
    assert metric(at, "Calibration slope") == [f"{api['calibration_slope']['estimate']:.2f}"]
    assert metric(at, "Brier") == [f"{api['brier']['estimate']:.3f}"]
    low, high = api["roc_auc"]["ci_low"], api["roc_auc"]["ci_high"]
    assert any(f"95% interval {low:.3f}–{high:.3f}" in c for c in texts(at, "caption"))
    assert not any("Not enough outcomes yet" in i for i in texts(at, "info"))

    # heatmap, alert rate, predicted risk, three figures by week, reliability diagram
    assert len(charts(at)) == 7
    weeks, bands = (d.value for d in at.dataframe)
    assert weeks["Events"].sum() == api["events"] and weeks["With outcome"].sum() == TRAFFIC
    assert weeks["ROC AUC"].iloc[-1].startswith(f"{api['windows'][-1]['roc_auc']['estimate']:.3f}")
    assert bands["Band"].tolist() == ["Low risk", "Moderate risk", "High risk"]
    assert bands["Estimates"].sum() == TRAFFIC
    assert all(
        re.fullmatch(r"\d{1,3}\.\d% \(\d{1,3}\.\d–\d{1,3}\.\d%\)", r) for r in bands["Event rate"]
    )


def test_model_selection_and_api_errors(busy_server, open_page) -> None:
    at = open_page(busy_server.url, "monitoring")
    # another model: its own estimates, of which there are none (traffic used the default)
    at.selectbox(key="mon_model").set_value("random_forest").run()
    assert not at.exception
    assert "Not enough outcomes yet" in " ".join(texts(at, "info"))
    assert "Random forest" in " ".join(texts(at, "markdown"))
    # an unknown version: the API's 422, shown the way the other pages show errors
    at.text_input(key="mon_version").input("19990101-nope").run()
    assert not at.exception
    error = " ".join(texts(at, "error"))
    assert "The API could not do this (422)" in error and "19990101-nope" in error
    assert "model_version" in error
