"""The monitoring gauges (drift, alert rate and, from outcomes, performance), refreshed by a
background task every SEPSIS_API_MONITORING_INTERVAL_SECONDS, off the request path (the queries
run in a worker thread).

With several worker processes sharing metrics files (api/metrics.py), one worker computes: the
one holding an exclusive lock on a file in that folder. The others try again each interval,
so when the computing worker dies, another takes over within one interval. The computing
worker also counts the drift of past days ahead (monitoring/drift.py ``count_past_days``):
kept in the database, those counts serve every worker's drift calls.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import time
from datetime import timedelta
from pathlib import Path
from typing import IO, Any

from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool

from sepsis_api.api.metrics import MULTIPROC_ENV, MonitoringGauges
from sepsis_api.api.service import Service
from sepsis_api.monitoring import labelled
from sepsis_api.monitoring.drift import (
    DriftReport,
    Window,
    count_past_days,
    drift_report,
    finite_or_nan,
)
from sepsis_api.monitoring.performance import figures

log = logging.getLogger("sepsis_api")
PERFORMANCE_WINDOW = timedelta(days=30)  # outcomes come in later than the estimates
# Past days whose drift counts are made ahead of any call: the UI's longest span (12 weeks)
# with a week to spare. Each day is counted once and kept in the database.
PAST_DAYS = 13 * 7
LOCK_NAME = "monitoring.lock"


class Leadership:
    """Whether this process is the one that computes (always, without shared metrics)."""

    def __init__(self) -> None:
        self._held: IO[bytes] | None = None

    def held(self) -> bool:
        folder = os.environ.get(MULTIPROC_ENV)
        if not folder:
            return True
        if self._held is None:
            fh = open(Path(folder) / LOCK_NAME, "ab")  # noqa: SIM115  # held for the process's life
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                fh.close()
                return False
            self._held = fh
        return True

    def release(self) -> None:
        if self._held is not None:
            self._held.close()  # closing drops the lock
            self._held = None


def publish(gauges: MonitoringGauges, report: DriftReport) -> None:
    model = report.window.model_name
    gauges.estimates.labels(model).set(report.n)
    for f in report.features:
        gauges.feature_psi.labels(model, f.feature).set(finite_or_nan(f.psi))
        gauges.feature_missing.labels(model, f.feature).set(finite_or_nan(f.missing_fraction))
    gauges.risk_psi.labels(model).set(finite_or_nan(report.risk_psi))
    rate = report.alert_rate
    gauges.alert_rate.labels(model).set(finite_or_nan(rate.estimate))
    gauges.alert_rate_low.labels(model).set(finite_or_nan(rate.ci_low))
    gauges.alert_rate_high.labels(model).set(finite_or_nan(rate.ci_high))
    card = report.reference_alert_rate or {}
    gauges.card_alert_rate_low.labels(model).set(finite_or_nan(card.get("low")))
    gauges.card_alert_rate_high.labels(model).set(finite_or_nan(card.get("high")))


def publish_performance(gauges: MonitoringGauges, model: str, figs: dict[str, Any]) -> None:
    gauges.outcomes.labels(model).set(figs["n"])
    gauges.events.labels(model).set(figs["events"])
    verdict = figs["status"] == "ok"  # below the minimum counts the figures are no verdict
    for gauge, key in (
        (gauges.roc_auc, "roc_auc"),
        (gauges.brier, "brier"),
        (gauges.calibration_slope, "calibration_slope"),
        (gauges.calibration_intercept, "calibration_intercept"),
    ):
        gauge.labels(model).set(finite_or_nan(figs[key]["estimate"] if verdict else None))


Computed = tuple[list[DriftReport], dict[str, dict[str, Any]]]


def compute(service: Service) -> Computed:
    """Drift over the default window and performance over PERFORMANCE_WINDOW, for every
    model of the served version, and the drift counts of the last PAST_DAYS days not yet
    counted (runs in a worker thread)."""
    version = service.predictor.version
    engine = service.audit.engine
    drift, performance = [], {}
    for name in version.model_names:
        window = Window.recent(version.version, name)
        drift.append(drift_report(engine, version.card, window))
        since = window.until - PERFORMANCE_WINDOW
        data = labelled.read(engine, labelled.Selection(version.version, name, since))
        performance[name] = figures(data)
        count_past_days(engine, version.card, name, PAST_DAYS)
    return drift, performance


async def refresh_monitoring(service: Service, gauges: MonitoringGauges, interval: float) -> None:
    leader = Leadership()
    try:
        while True:
            if leader.held():
                try:
                    reports, performance = await run_in_threadpool(compute, service)
                except SQLAlchemyError as e:  # the staleness gauge shows it; keep trying
                    log.warning("monitoring figures not computed: %s", type(e).__name__)
                except Exception:  # a bug must not end the task: log it, stay stale, retry
                    log.exception("monitoring figures not computed")
                else:
                    for report in reports:
                        publish(gauges, report)
                    for model, figs in performance.items():
                        publish_performance(gauges, model, figs)
                    gauges.last_computed.set(time.time())
            await asyncio.sleep(interval)
    finally:
        leader.release()
