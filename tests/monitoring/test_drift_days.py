"""Whole past days' drift counts kept in ``drift_days``: equal to a direct count of each day's
rows, read back by a process that did not count them, written once by racing processes; on
SQLite and on PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from sqlalchemy import func, select, update

from factories import record_scored
from sepsis_api.db.drift_days import DriftDays
from sepsis_api.db.models import DriftDay, Prediction
from sepsis_api.ml.data import load_table
from sepsis_api.ml.scoring import Predictor
from sepsis_api.monitoring import drift as d
from sepsis_api.schema import FEATURES

N = 600


def sample(train_csv, seed):
    X = load_table(train_csv).X
    return X[np.random.default_rng(seed).integers(0, len(X), N)]


def _direct(card, name, X, probability, alerts):
    """A day's counts computed from its rows with numpy, under drift.py's keys."""
    ref = card["drift_reference"]
    out = {"n": len(X), "alerts": int(alerts)}
    for j, f in enumerate(FEATURES):
        fref = ref["features"][f.code]
        col = X[:, j]
        seen = col[~(np.isnan(col) | ((col == 0) if f.zero_means_missing else False))]
        lo, hi = fref["valid_range"]
        out[f"{f.code}:observed"] = len(seen)
        out[f"{f.code}:out"] = int(((seen < lo) | (seen > hi)).sum())
        for i, e in enumerate(fref["edges"]):
            out[f"{f.code}:<{i}"] = int((seen < e).sum())
    for i, e in enumerate(ref["predicted_risk"][name]["edges"]):
        out[f"risk:<{i}"] = int((probability < e).sum())
    return out


def counting_days(monkeypatch) -> list[d.Window]:
    """The pieces of windows counted from the estimates from now on (the count still runs)."""
    counted: list[d.Window] = []
    count = d._window_counts

    def spy(engine, window, *args):
        counted.append(window)
        return count(engine, window, *args)

    monkeypatch.setattr(d, "_window_counts", spy)
    return counted


def test_past_days_are_stored_equal_to_a_direct_count_and_read_back(
    audit, shipped, train_csv, monkeypatch
):
    model = Predictor(shipped).default
    X = sample(train_csv, 7)
    now = datetime.now(UTC)
    # 600 estimates: 150 on each of three whole past days, 150 today
    stamps = [now - timedelta(days=3 - i // 150, minutes=i % 150) for i in range(N)]
    s = record_scored(audit, model, X, stamps)
    window = d.Window.recent(shipped.version, model.name)
    d.CLOSED_DAYS.clear()
    first = d.drift_report(audit.engine, shipped.card, window).as_dict()

    days = np.array([t.date() for t in stamps])
    with audit.engine.connect() as conn:
        stored = dict(conn.execute(select(DriftDay.day, DriftDay.counts)).all())
    over = _over(days, now)
    assert set(stored) == over and len(over) >= 2
    for day, counts in stored.items():
        rows = days == day
        want = _direct(
            shipped.card, model.name, X[rows], s.probability[rows], s.positive[rows].sum()
        )
        assert {k: counts[k] for k in want} == want, day

    # Another process (nothing in memory) reads the past days back: it counts today only.
    d.CLOSED_DAYS.clear()
    counted = counting_days(monkeypatch)
    again = d.drift_report(audit.engine, shipped.card, window).as_dict()
    assert again == first
    # only the days not over yet (today) are counted again
    assert len(counted) == len(first["alerts_per_day"]) - len(over) >= 1


def _over(days, now):
    """The whole days that are over (SETTLE after their end) among ``days``."""
    return {
        day
        for day in set(days)
        if datetime.combine(day, datetime.min.time(), tzinfo=UTC) + timedelta(days=1)
        <= now - d.ClosedDays.SETTLE
    }


def test_the_monitoring_task_counts_past_days_ahead_once(audit, shipped, train_csv, monkeypatch):
    model = Predictor(shipped).default
    now = datetime.now(UTC)
    stamps = [now - timedelta(days=5 - i // 100, minutes=i % 100) for i in range(N)]
    record_scored(audit, model, sample(train_csv, 8), stamps)
    counted = counting_days(monkeypatch)
    d.CLOSED_DAYS.clear()
    d.count_past_days(audit.engine, shipped.card, model.name, 7)
    first = len(counted)
    d.CLOSED_DAYS.clear()  # a restart: the days are read back, not counted again
    d.count_past_days(audit.engine, shipped.card, model.name, 7)
    with audit.engine.connect() as conn:
        stored = set(conn.scalars(select(DriftDay.day)))
    past = {t.date() for t in stamps} - {now.date()}
    assert stored == _over(past, now) and len(stored) >= 4
    # each past day counted once; again only a day not over yet (just after midnight)
    assert first == len(past) and len(counted) - first == len(past) - len(stored)


def test_a_day_stored_twice_keeps_the_first(audit):
    days = DriftDays(audit.engine)
    day = datetime(2026, 1, 5, tzinfo=UTC).date()
    days.store("v", "m", "r" * 64, {day: {"n": 3}})
    days.store("v", "m", "r" * 64, {day: {"n": 4}})  # a second worker's (never differs)
    assert days.load("v", "m", "r" * 64, day, day) == {day: {"n": 3}}
    assert days.load("v", "m", "s" * 64, day, day) == {}  # other bins: not these counts
    with audit.engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(DriftDay)) == 1


def test_a_value_absent_or_null_counts_as_not_measured(audit, shipped, train_csv):
    model = Predictor(shipped).default
    X = sample(train_csv, 9)
    start = datetime.now(UTC) - timedelta(days=2)
    s = record_scored(audit, model, X, [start + timedelta(seconds=i) for i in range(N)])
    j = [f.code for f in FEATURES].index("BD2")
    with audit.engine.begin() as conn:
        rows = conn.execute(
            select(Prediction.id, Prediction.inputs).order_by(Prediction.created_at).limit(20)
        ).all()
        for k, (pid, inputs) in enumerate(rows):
            changed = {c: v for c, v in inputs.items() if c != "BD2"}  # absent
            if k % 2:
                changed["BD2"] = None  # null
            conn.execute(update(Prediction).where(Prediction.id == pid).values(inputs=changed))
    X = X.copy()
    X[:20, j] = np.nan
    ref = shipped.card["drift_reference"]
    window = d.Window(shipped.version, model.name, start, start + timedelta(seconds=N))
    risk_edges = ref["predicted_risk"][model.name]["edges"]
    got = d._window_counts(audit.engine, window, ref["features"], risk_edges)
    want = _direct(shipped.card, model.name, X, s.probability, s.positive.sum())
    assert {k: got[k] for k in want} == want
    assert got["BD2:observed"] == N - 20
    assert got["BD2:sum"] == pytest.approx(np.nansum(X[:, j]))
