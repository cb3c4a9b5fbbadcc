"""Prometheus metrics, one registry per app (several apps may live in one test process).

The monitoring gauges (``MonitoringGauges``) are set by a background task (api/monitor.py),
never on the request path.

With several worker processes (`sepsis-api serve --workers N` calls ``share_between_workers``,
which sets PROMETHEUS_MULTIPROC_DIR), prometheus-client keeps every process's values in files
there and ``exposition`` sums them, so a scrape shows the whole server whichever worker answers.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)
BATCH_BUCKETS = (1, 10, 100, 1_000, 10_000, 100_000)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def share_between_workers() -> Path:
    """Make the worker processes started after this call keep their values in files in one
    folder, so /metrics shows the whole server; returns the folder.

    The folder reaches the workers through PROMETHEUS_MULTIPROC_DIR, which prometheus-client
    reads when a process imports it (an environment variable by its design): the one already
    set, emptied of an earlier run's values, else a fresh temporary folder.
    """
    folder = os.environ.get(MULTIPROC_ENV)
    if folder is None:
        path = Path(tempfile.mkdtemp(prefix="sepsis-api-metrics-"))
        os.environ[MULTIPROC_ENV] = str(path)
        return path
    path = Path(folder)
    path.mkdir(parents=True, exist_ok=True)
    for stale in path.glob("*.db"):
        stale.unlink()
    return path


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "sepsis_api_requests_total", "HTTP requests.", ["method", "route", "status"], registry=r
        )
        self.latency = Histogram(
            "sepsis_api_request_duration_seconds",
            "HTTP request latency.",
            ["method", "route"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.predictions = Counter(
            "sepsis_api_predictions_total",
            "Estimates returned.",
            ["model", "version", "label"],
            registry=r,
        )
        self.bands = Counter(
            "sepsis_api_risk_band_total", "Estimates per risk band.", ["model", "band"], registry=r
        )
        self.batch_size = Histogram(
            "sepsis_api_batch_size", "Patients per batch call.", buckets=BATCH_BUCKETS, registry=r
        )
        self.model_load = Gauge(
            "sepsis_api_model_load_seconds",
            "Time to load and verify the served model version.",
            registry=r,
            multiprocess_mode="max",
        )
        self.audit_failures = Counter(
            "sepsis_api_audit_failures_total",
            "Estimates refused because the audit log was unreachable.",
            registry=r,
        )

        self.monitoring = MonitoringGauges(r)

    def exposition(self) -> bytes:
        """The text format for /metrics."""
        if MULTIPROC_ENV not in os.environ:
            return generate_latest(self.registry)
        merged = CollectorRegistry()
        MultiProcessCollector(merged)  # type: ignore[no-untyped-call]  # its __init__ has no annotations
        return generate_latest(merged)

    def count(self, model: str, version: str, labels: list[str], bands: list[str]) -> None:
        for label in ("Positive", "Negative"):
            n = labels.count(label)
            if n:
                self.predictions.labels(model, version, label).inc(n)
        for band in ("low", "moderate", "high"):
            n = bands.count(band)
            if n:
                self.bands.labels(model, band).inc(n)


class MonitoringGauges:
    """The monitoring figures of the served version, per model (and per feature for drift).

    Labels are the model's name and the feature code only: no version (a new activation
    overwrites the same series), patient, caller or id. Figures that are not estimable (too few
    estimates in the window) are NaN, which Prometheus rules compare false.

    Multiprocess mode: one worker at a time computes these (api/monitor.py), so the labelled
    gauges take the most recently written value over all workers' files ("mostrecent"; the
    others never write them, and a worker that took over from one that died writes newer
    values than its predecessor's left-over file). The last-computed time takes the maximum,
    since a worker that never computed reports 0 there.
    """

    def __init__(self, r: CollectorRegistry) -> None:
        def gauge(name: str, doc: str, labels: list[str]) -> Gauge:
            return Gauge(name, doc, labels, registry=r, multiprocess_mode="mostrecent")

        model, feature = ["model"], ["model", "feature"]
        self.feature_psi = gauge(
            "sepsis_api_drift_feature_psi",
            "Population stability index of a feature over the monitoring window against the "
            "training data's bins.",
            feature,
        )
        self.feature_missing = gauge(
            "sepsis_api_drift_feature_missing_ratio",
            "Share of the window's estimates with the feature not measured.",
            feature,
        )
        self.risk_psi = gauge(
            "sepsis_api_drift_predicted_risk_psi",
            "Population stability index of the predicted risk against the out-of-fold "
            "probabilities.",
            model,
        )
        self.estimates = gauge(
            "sepsis_api_monitoring_window_estimates",
            "Estimates in the monitoring window.",
            model,
        )
        self.alert_rate = gauge(
            "sepsis_api_alert_rate_ratio", "Share of the window's estimates flagged.", model
        )
        self.alert_rate_low = gauge(
            "sepsis_api_alert_rate_ci_low_ratio",
            "Lower bound of the alert rate's 95% Wilson interval.",
            model,
        )
        self.alert_rate_high = gauge(
            "sepsis_api_alert_rate_ci_high_ratio",
            "Upper bound of the alert rate's 95% Wilson interval.",
            model,
        )
        self.card_alert_rate_low = gauge(
            "sepsis_api_alert_rate_card_low_ratio",
            "Lower bound of the model card's alert-rate interval (out-of-fold bootstrap).",
            model,
        )
        self.card_alert_rate_high = gauge(
            "sepsis_api_alert_rate_card_high_ratio",
            "Upper bound of the model card's alert-rate interval (out-of-fold bootstrap).",
            model,
        )
        self.outcomes = gauge(
            "sepsis_api_performance_outcomes",
            "Estimates of the performance window (30 days) with a recorded outcome.",
            model,
        )
        self.events = gauge(
            "sepsis_api_performance_events",
            "Of those, outcomes that were Positive.",
            model,
        )
        self.roc_auc = gauge(
            "sepsis_api_performance_roc_auc_ratio",
            "ROC AUC of the estimates against their outcomes (NaN below 100 events and 100 "
            "non-events).",
            model,
        )
        self.brier = gauge(
            "sepsis_api_performance_brier_ratio",
            "Brier score of the estimates against their outcomes (NaN as for the AUC).",
            model,
        )
        self.calibration_slope = gauge(
            "sepsis_api_performance_calibration_slope",
            "Calibration slope (logistic recalibration; 1 is ideal; NaN as for the AUC).",
            model,
        )
        self.calibration_intercept = gauge(
            "sepsis_api_performance_calibration_intercept",
            "Calibration-in-the-large (0 is ideal; NaN as for the AUC).",
            model,
        )
        self.last_computed = Gauge(
            "sepsis_api_monitoring_last_computed_timestamp_seconds",
            "When the monitoring figures were last computed (Unix time; 0 = never).",
            registry=r,
            multiprocess_mode="max",
        )
