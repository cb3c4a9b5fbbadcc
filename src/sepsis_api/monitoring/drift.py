"""Drift without outcomes: recent audited estimates against the reference bins in the card.

Per feature, the population stability index (PSI) of the live values against the training
data's decile bins (plus a "not measured" bin, so a change in how often a value is missing
counts as drift); the same for the predicted risk against the out-of-fold probabilities; the
alert rate with its Wilson interval against the card's; and the alerts per day. The window
is counted one UTC day at a time (memory bounded by a day's estimates): the day's feature
values, probabilities and alerts are read into numpy from one snapshot (one query on
PostgreSQL, two on SQLite), where one function counts them against the bins. A whole day
that is over is counted once: its counts are written to the ``drift_days`` table
(db/drift_days.py), where every worker process and every later run finds them, and kept in
memory (``ClosedDays``); so a window of many days costs a read of today's estimates once its
past days have been counted, by a call or by the monitoring task (api/monitor.py), which counts
the recent past days off the request path. Most of a day's cost is reading the values out of
the JSON inputs and handing them to numpy (on PostgreSQL packed into one binary value, on
SQLite as one text of the values as written); counting them in numpy is a small part.

Thresholds are the usual ones of credit scoring, where PSI comes from: below 0.1 stable,
0.1 to 0.25 a moderate shift worth a look (``warn``), 0.25 and above a shift (``alert``).

Minimum sample sizes, because PSI on a small window is noise. For two samples of n and N rows
from one distribution in B bins, PSI is close to a chi-square statistic with B - 1 degrees of
freedom scaled by (1/n + 1/N): its expected value is (B - 1)(1/n + 1/N). With 11 bins and the
599 training rows, a window of 100 unshifted estimates would average ~0.12 and be flagged for
nothing; at 500 it averages ~0.04 with a standard deviation of ~0.017, so an unshifted window
stays below 0.1 with a wide margin. Hence ``MIN_PSI_ROWS`` = 500 estimates in the window;
below it the PSI is not given and the status is ``insufficient_data``. The alert rate needs
``MIN_ALERT_ROWS`` = 100 estimates: below that its Wilson interval is wider than +-0.1 around
rates near the card's, too wide to tell.
"""

from __future__ import annotations

import hashlib
import json
import math
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from itertools import pairwise
from typing import Any

import numpy as np
from sqlalchemy import (
    ColumnElement,
    Connection,
    Double,
    Engine,
    Integer,
    and_,
    case,
    cast,
    column,
    func,
    join,
    select,
    true,
)

from sepsis_api.db.drift_days import DriftDays
from sepsis_api.db.models import Prediction
from sepsis_api.db.session import stored_time
from sepsis_api.monitoring import arrays
from sepsis_api.monitoring.stats import Interval, wilson
from sepsis_api.schema import FEATURES, LABEL_POSITIVE

PSI_WARN = 0.1
PSI_ALERT = 0.25
MIN_PSI_ROWS = 500
MIN_ALERT_ROWS = 100
# A bin empty on one side would make the log ratio infinite; its share is floored here (the
# customary 1e-4: one bin's term can then reach ~0.0009 * ln(1/1e-4) ~ 0.01 per missing 0.1%).
PSI_FLOOR = 1e-4
DEFAULT_WINDOW = timedelta(days=7)

OK, WARN, ALERT = "ok", "warn", "alert"
INSUFFICIENT = "insufficient_data"
NO_REFERENCE = "no_reference"
_SEVERITY = {INSUFFICIENT: 0, OK: 1, WARN: 2, ALERT: 3}


def psi(reference: Sequence[float], live: Sequence[float]) -> float:
    """Population stability index of two count vectors over the same bins:
    sum over bins of (live share - reference share) * ln(live share / reference share), each
    share floored at ``PSI_FLOOR``; a bin empty on both sides adds nothing."""
    ref = np.asarray(reference, dtype=np.float64)
    obs = np.asarray(live, dtype=np.float64)
    if ref.shape != obs.shape or ref.sum() <= 0 or obs.sum() <= 0:
        raise ValueError("psi needs two non-empty count vectors of the same length")
    both_empty = (ref == 0) & (obs == 0)
    e = np.maximum(ref / ref.sum(), PSI_FLOOR)[~both_empty]
    a = np.maximum(obs / obs.sum(), PSI_FLOOR)[~both_empty]
    return float(np.sum((a - e) * np.log(a / e)))


def psi_status(value: float | None) -> str:
    if value is None:
        return INSUFFICIENT
    return ALERT if value >= PSI_ALERT else WARN if value >= PSI_WARN else OK


@dataclass(frozen=True)
class Window:
    """The estimates looked at: one model of one version, created in [since, until)."""

    model_version: str
    model_name: str
    since: datetime
    until: datetime

    @classmethod
    def recent(
        cls,
        model_version: str,
        model_name: str,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> Window:
        """``until`` defaults to now, ``since`` to the UTC midnight ``DEFAULT_WINDOW`` before
        ``until``'s day: the 7 whole days before it and that day up to ``until``."""
        end = (until or datetime.now(UTC)).astimezone(UTC)
        if since is not None:
            start = since.astimezone(UTC)
        else:
            # From a midnight: whole days, whose counts are kept once over (ClosedDays).
            midnight = datetime.combine(end.date(), datetime.min.time(), tzinfo=UTC)
            try:
                start = midnight - DEFAULT_WINDOW
            except OverflowError:  # an ``until`` in the first week of year 1
                start = datetime.min.replace(tzinfo=UTC)
        return cls(model_version, model_name, start, end)


@dataclass
class FeatureDrift:
    feature: str
    n: int  # estimates in the window
    observed: int  # of which with a value (not "not measured")
    psi: float | None
    status: str
    missing_fraction: float | None
    reference_missing_fraction: float
    out_of_range_fraction: float | None  # of observed values, outside the training range
    mean: float | None
    reference_mean: float

    def as_dict(self) -> dict[str, Any]:
        return {
            "feature": self.feature,
            "n": self.n,
            "observed": self.observed,
            "psi": self.psi,
            "status": self.status,
            "missing_fraction": self.missing_fraction,
            "reference_missing_fraction": self.reference_missing_fraction,
            "out_of_range_fraction": self.out_of_range_fraction,
            "mean": self.mean,
            "reference_mean": self.reference_mean,
        }


@dataclass
class DriftReport:
    window: Window
    n: int
    status: str
    detail: str | None
    features: list[FeatureDrift]
    risk_psi: float | None
    risk_status: str
    alerts: int
    alert_rate: Interval
    reference_alert_rate: dict[str, float] | None  # the card's value, low, high
    alert_rate_status: str
    per_day: list[dict[str, Any]] = field(default_factory=list)
    # The predicted risk's bins (the card's out-of-fold deciles): edges, the out-of-fold
    # counts and the window's counts, so a client can draw the two distributions.
    risk_edges: list[float] = field(default_factory=list)
    risk_reference_counts: list[int] = field(default_factory=list)
    risk_counts: list[int] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "model": self.window.model_name,
            "model_version": self.window.model_version,
            "since": self.window.since.isoformat(),
            "until": self.window.until.isoformat(),
            "n": self.n,
            "status": self.status,
            "detail": self.detail,
            "thresholds": THRESHOLDS,
            "features": [f.as_dict() for f in self.features],
            "predicted_risk": {
                "n": self.n,
                "psi": self.risk_psi,
                "status": self.risk_status,
                "edges": self.risk_edges,
                "reference_counts": self.risk_reference_counts,
                "counts": self.risk_counts,
            },
            "alert_rate": {
                "n": self.n,
                "alerts": self.alerts,
                **self.alert_rate.as_dict(),
                "reference": self.reference_alert_rate,
                "status": self.alert_rate_status,
            },
            "alerts_per_day": self.per_day,
        }


THRESHOLDS: dict[str, float | int] = {
    "psi_warn": PSI_WARN,
    "psi_alert": PSI_ALERT,
    "min_rows_psi": MIN_PSI_ROWS,
    "min_rows_alert_rate": MIN_ALERT_ROWS,
}


def alert_rate_status(live: Interval, n: int, reference: dict[str, float] | None) -> str:
    """``above`` / ``below`` when the live Wilson interval lies wholly outside the card's
    interval, ``ok`` when they overlap."""
    if reference is None or n < MIN_ALERT_ROWS or live.ci_low is None or live.ci_high is None:
        return INSUFFICIENT
    if live.ci_low > reference["high"]:
        return "above"
    if live.ci_high < reference["low"]:
        return "below"
    return OK


# -- SQL --------------------------------------------------------------------------------------


def _where(window: Window, engine: Engine) -> ColumnElement[bool]:
    p = Prediction
    return and_(
        p.model_version == window.model_version,
        p.model_name == window.model_name,
        p.created_at >= stored_time(engine, window.since),
        p.created_at < stored_time(engine, window.until),
    )


def _read(engine: Engine, window: Window, codes: list[str]) -> dict[str, np.ndarray]:
    """The window's rows as arrays: each feature's value in ``codes``' order (``v0``, ``v1``,
    ...; NaN when absent), the probability and whether the estimate alerted (``alert``)."""
    alert = cast(case((Prediction.label == LABEL_POSITIVE, 1), else_=0), Integer).label("alert")
    probability = cast(Prediction.probability, Double).label("probability")
    columns = [(f"v{i}", arrays.F8) for i in range(len(codes))]
    columns += [("probability", arrays.F8), ("alert", arrays.I4)]
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            # json_to_record parses each row's JSON once; ->> would parse it once per feature.
            record = (
                func.json_to_record(Prediction.inputs)
                .table_valued(*(column(c, Double) for c in codes))
                .render_derived(with_types=True)
            )
            values = [record.c[c].label(f"v{i}") for i, c in enumerate(codes)]
            q = select(*values, probability, alert).select_from(join(Prediction, record, true()))
            return arrays.read(conn, q.where(_where(window, engine)), columns, nullable=True)
        # Two reads of one snapshot: rows committed in between would make them disagree (the
        # driver starts no transaction for a SELECT by itself; the rollback at the end ends it).
        conn.exec_driver_sql("BEGIN")
        q = select(probability, alert).where(_where(window, engine))
        got = arrays.read(conn, q, columns[len(codes) :])
        got.update(_sqlite_values(conn, window, codes, len(got["alert"])))
    return got


def _sqlite_values(
    conn: Connection, window: Window, codes: list[str], n: int
) -> dict[str, np.ndarray]:
    """The ``n`` rows' feature values on SQLite, where a Python float per value would cost more
    than the rest: one json_extract of all the paths gives a row's values as a JSON array of
    their text as written (null when absent), SQLite joins the arrays into one text and numpy
    parses it. The rows' order is SQLite's: each feature is counted on its own."""
    if not codes:
        return {}
    paths = [f'$."{c}"' for c in codes]
    paths += paths[:1] if len(paths) == 1 else []  # one path would give the value, no array
    rows = func.json_extract(Prediction.inputs, *paths)
    q = select(func.group_concat(rows, ",")).where(_where(window, conn.engine))
    text = conn.execute(q).scalar() or ""
    text = text.replace("[", "").replace("]", "").replace("null", "nan")
    flat = np.fromstring(text, sep=",") if text else np.empty(0)
    if flat.size != n * len(paths):  # a value that is not a number
        raise ValueError(f"unreadable feature values between {window.since} and {window.until}")
    table = flat.reshape(n, len(paths))
    return {f"v{i}": np.ascontiguousarray(table[:, i]) for i in range(len(codes))}


def _window_counts(
    engine: Engine, window: Window, features: dict[str, dict[str, Any]], risk_edges: list[float]
) -> dict[str, Any]:
    """The window's values read into numpy, then counted: per feature the observed count, the
    count below each edge, the count outside the training range and the sum; the number of
    estimates and of alerts; the count below each risk edge."""
    codes = [f.code for f in FEATURES if f.code in features]
    got = _read(engine, window, codes)
    zero_missing = {f.code for f in FEATURES if f.zero_means_missing}
    counts: dict[str, Any] = {"n": len(got["alert"]), "alerts": int(got["alert"].sum())}
    for i, code in enumerate(codes):
        v = got[f"v{i}"]
        v = v[~np.isnan(v) & ((v != 0) if code in zero_missing else True)]
        ref = features[code]
        lo, hi = ref["valid_range"]
        counts[f"{code}:observed"] = len(v)
        counts[f"{code}:sum"] = float(v.sum()) if len(v) else None
        counts[f"{code}:out"] = int(np.count_nonzero((v < lo) | (v > hi)))
        counts.update(_below(code, np.sort(v), ref["edges"]))
    counts.update(_below("risk", np.sort(got["probability"]), risk_edges))
    return counts


def _below(name: str, ordered: np.ndarray, edges: list[float]) -> dict[str, int]:
    """``name:<i``: how many of the sorted values (NaN last, never counted) are below edge i."""
    below = np.searchsorted(ordered, np.asarray(edges, dtype=np.float64), side="left")
    return {f"{name}:<{i}": int(b) for i, b in enumerate(below)}


def _data_range(engine: Engine, window: Window) -> tuple[datetime, datetime] | None:
    """The first and last creation time of any estimate in the window's time range (None when
    there is none): two look-ups in the created_at index (no other filter, which would make
    them scans)."""
    created = Prediction.created_at
    in_range = and_(
        created >= stored_time(engine, window.since), created < stored_time(engine, window.until)
    )
    with engine.connect() as conn:
        first = conn.execute(select(func.min(created)).where(in_range)).scalar()
        last = conn.execute(select(func.max(created)).where(in_range)).scalar()
    if first is None or last is None:
        return None
    return (_aware(first), _aware(last))


def _aware(t: datetime) -> datetime:
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


class ClosedDays:
    """Counts of whole UTC days that are over, kept per process in front of the ``drift_days``
    table (bounded, least recently used dropped first). The audit log is append-only and
    stamps rows with the time of the request, so a day's counts stop changing once it is over;
    a day is taken as over ``SETTLE`` after its end, longer than any audit commit may wait
    (SEPSIS_API_AUDIT_WAIT_SECONDS)."""

    SETTLE = timedelta(minutes=5)

    def __init__(self, max_days: int = 4096) -> None:
        self.max_days = max_days
        self._days: OrderedDict[tuple[Any, ...], dict[str, Any]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[Any, ...]) -> dict[str, Any] | None:
        with self._lock:
            found = self._days.get(key)
            if found is not None:
                self._days.move_to_end(key)
            return found

    def put(self, key: tuple[Any, ...], counts: dict[str, Any]) -> None:
        with self._lock:
            self._days[key] = counts
            self._days.move_to_end(key)
            while len(self._days) > self.max_days:
                self._days.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._days.clear()


CLOSED_DAYS = ClosedDays()


def _day_pieces(window: Window, first: datetime, last: datetime) -> list[tuple[Window, bool]]:
    """The window cut at UTC midnights, from the day of its first estimate to that of its
    last: (piece, whether it is a whole day that is over)."""
    over_before = datetime.now(UTC) - ClosedDays.SETTLE
    day = datetime.combine(first.date(), datetime.min.time(), tzinfo=UTC)
    pieces = []
    while day <= last:
        try:
            end = day + timedelta(days=1)
        except OverflowError:  # the last day of year 9999
            end = datetime.max.replace(tzinfo=UTC)
        start, stop = max(window.since, day), min(window.until, end)
        whole = start == day and stop == end and end <= over_before
        pieces.append((replace(window, since=start, until=stop), whole))
        day = end
        if end == datetime.max.replace(tzinfo=UTC):
            break
    return pieces


def reference_key(features: dict[str, dict[str, Any]], risk_edges: list[float]) -> str:
    """SHA-256 of what a day is counted against: its counts hold only for these bins."""
    bins = json.dumps({"features": features, "risk_edges": risk_edges}, sort_keys=True)
    return hashlib.sha256(bins.encode()).hexdigest()


def _plain(counts: dict[str, Any]) -> dict[str, Any]:
    """Counts as JSON keeps them (a driver may give Decimal sums), so a day's counts are the
    same whether just counted, kept in memory or read back from ``drift_days``."""
    return {k: v if v is None or isinstance(v, int) else float(v) for k, v in counts.items()}


def _counts(
    engine: Engine, window: Window, features: dict[str, dict[str, Any]], risk_edges: list[float]
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The window's counts, summed over its days, and the estimates and alerts of each day.
    A whole day that is over is counted once: then kept in ``CLOSED_DAYS`` and in the
    ``drift_days`` table, where other processes and later runs find it."""
    span = _data_range(engine, window)
    total: dict[str, Any] = {"n": 0, "alerts": 0}
    per_day: list[dict[str, Any]] = []
    if span is None:
        return total, per_day
    reference = reference_key(features, risk_edges)
    version, name = window.model_version, window.model_name
    fingerprint = (str(engine.url), version, name, reference)
    pieces = _day_pieces(window, *span)
    stored = DriftDays(engine)
    unknown = [p.since.date() for p, whole in pieces if whole]
    unknown = [day for day in unknown if CLOSED_DAYS.get((*fingerprint, day)) is None]
    if unknown:
        found = stored.load(version, name, reference, unknown[0], unknown[-1])
        for known_day, known in found.items():
            CLOSED_DAYS.put((*fingerprint, known_day), known)
    counted: dict[date, dict[str, Any]] = {}
    for piece, whole in pieces:
        key = (*fingerprint, piece.since.date())
        counts = CLOSED_DAYS.get(key) if whole else None
        if counts is None:
            counts = _plain(_window_counts(engine, piece, features, risk_edges))
            if whole:
                counted[piece.since.date()] = counts
        for k, v in counts.items():
            total[k] = total.get(k, 0) + (v or 0)
        if counts["n"]:
            n, alerts = int(counts["n"]), int(counts["alerts"])
            per_day.append(
                {
                    "date": piece.since.date().isoformat(),
                    "n": n,
                    "alerts": alerts,
                    "alert_rate": alerts / n,
                }
            )
    stored.store(version, name, reference, counted)  # one commit for all the new days
    for day, counts in counted.items():
        CLOSED_DAYS.put((*fingerprint, day), counts)
    return total, per_day


def count_past_days(engine: Engine, card: dict[str, Any], model_name: str, days: int) -> None:
    """Count (and keep) the whole past days of the last ``days`` before today that are not
    counted yet, for one model of the version of ``card``: the work of later drift calls over
    them, done ahead (the monitoring task runs this off the request path)."""
    reference = _reference(card, model_name)
    if reference is None:
        return
    features, risk_ref = reference
    today = datetime.combine(datetime.now(UTC).date(), datetime.min.time(), tzinfo=UTC)
    window = Window(card["version"], model_name, today - timedelta(days=days), today)
    _counts(engine, window, features, risk_ref["edges"])


def _reference(
    card: dict[str, Any], model_name: str
) -> tuple[dict[str, dict[str, Any]], dict[str, Any]] | None:
    """The card's reference bins for ``model_name``: the features' and the predicted risk's;
    None for a card from before they were stored."""
    ref = card.get("drift_reference")
    risk_ref = ref["predicted_risk"].get(model_name) if ref else None
    return None if ref is None or risk_ref is None else (ref["features"], risk_ref)


def _bin_counts(below: list[int], total: int) -> list[int]:
    """Per-bin counts from the counts below each ascending edge."""
    cumulative = [*below, total]
    return [cumulative[0], *(b - a for a, b in pairwise(cumulative))]


# -- the report -------------------------------------------------------------------------------


def drift_report(engine: Engine, card: dict[str, Any], window: Window) -> DriftReport:
    """The drift of ``window``'s estimates against ``card`` (the version's card.json)."""
    model = card["models"][window.model_name]
    alert_ref = model.get("operating_point", {}).get("alert_rate")
    reference_rate = (
        {k: float(alert_ref[k]) for k in ("value", "low", "high")} if alert_ref else None
    )
    reference = _reference(card, window.model_name)
    features, risk_ref = reference if reference is not None else ({}, None)
    counts, per_day = _counts(engine, window, features, risk_ref["edges"] if risk_ref else [])
    n, alerts = int(counts["n"]), int(counts["alerts"])
    rate = wilson(alerts, n)
    report = DriftReport(
        window=window,
        n=n,
        status=NO_REFERENCE,
        detail=None,
        features=[],
        risk_psi=None,
        risk_status=NO_REFERENCE,
        alerts=alerts,
        alert_rate=rate,
        reference_alert_rate=reference_rate,
        alert_rate_status=alert_rate_status(rate, n, reference_rate),
        per_day=per_day,
    )
    if risk_ref is None:
        report.detail = (
            f"model version {window.model_version} has no drift reference bins in its card "
            "(trained before they were stored); retrain it to monitor drift. The alert rate "
            "is still compared with the card's."
        )
        return report
    for code, fref in features.items():
        report.features.append(_feature(code, fref, counts, n))
    below = [int(counts.get(f"risk:<{i}", 0)) for i in range(len(risk_ref["edges"]))]
    report.risk_edges = [float(e) for e in risk_ref["edges"]]
    report.risk_reference_counts = [int(c) for c in risk_ref["counts"]]
    report.risk_counts = _bin_counts(below, n)
    if n >= MIN_PSI_ROWS:
        report.risk_psi = psi(risk_ref["counts"], report.risk_counts)
    report.risk_status = psi_status(report.risk_psi)
    statuses = [f.status for f in report.features] + [report.risk_status]
    report.status = max(statuses, key=_SEVERITY.__getitem__)
    if report.status == INSUFFICIENT:
        report.detail = (
            f"{n} estimates in the window; PSI needs at least {MIN_PSI_ROWS} (on fewer it is "
            "mostly noise)"
        )
    return report


def _feature(code: str, ref: dict[str, Any], counts: dict[str, Any], n: int) -> FeatureDrift:
    observed = int(counts.get(f"{code}:observed", 0))  # absent: no estimates at all
    missing = n - observed
    value: float | None = None
    if n >= MIN_PSI_ROWS:  # the missing bin counts too: n, not only the observed values
        below = [int(counts.get(f"{code}:<{i}", 0)) for i in range(len(ref["edges"]))]
        value = psi([*ref["counts"], ref["missing"]], [*_bin_counts(below, observed), missing])
    total = counts.get(f"{code}:sum")
    return FeatureDrift(
        feature=code,
        n=n,
        observed=observed,
        psi=value,
        status=psi_status(value),
        missing_fraction=missing / n if n else None,
        reference_missing_fraction=float(ref["missing_fraction"]),
        out_of_range_fraction=int(counts.get(f"{code}:out", 0)) / observed if observed else None,
        mean=float(total) / observed if observed and total is not None else None,
        reference_mean=float(ref["mean"]),
    )


def finite_or_nan(x: float | None) -> float:
    """A figure for a gauge: NaN when there is none (Prometheus rules compare false on NaN)."""
    return math.nan if x is None else float(x)
