"""Estimates with their current outcome, read from the audit log as arrays.

One query joins each prediction of one model version and model to its latest outcome revision
(the highest ``revision`` of its prediction id) and returns two or three numbers a row: the
probability, one small code packing outcome, alert and risk band (``outcome + 2 * alert +
4 * band``) and, for windows, the time in seconds. Fewer, numeric columns make the transfer of a
million rows cheap; the rows are read with the driver's own cursor, without building a
SQLAlchemy row object each.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
from sqlalchemy import ColumnElement, Engine, and_, case, extract, func, select
from sqlalchemy.sql import Select

from sepsis_api.db.models import Outcome, Prediction
from sepsis_api.monitoring.performance import BANDS, Labelled
from sepsis_api.schema import LABEL_POSITIVE


@dataclass(frozen=True)
class Selection:
    """Which estimates: one model of one version, created in [since, until) when given."""

    model_version: str
    model_name: str
    since: datetime | None = None
    until: datetime | None = None


def _stored_time(engine: Engine, t: datetime) -> datetime:
    # SQLite keeps no zone: the audit log stores naive UTC there (as db/audit.py writes it).
    t = t.astimezone(UTC)
    return t.replace(tzinfo=None) if engine.dialect.name == "sqlite" else t


def _epoch_seconds(engine: Engine) -> ColumnElement[Any]:
    if engine.dialect.name == "sqlite":  # julianday() costs far less than strftime('%s')
        return (func.julianday(Prediction.created_at) - 2440587.5) * 86400.0
    return extract("epoch", Prediction.created_at)


def query(engine: Engine, sel: Selection, *, times: bool) -> Select[tuple[object, ...]]:
    latest = (
        select(Outcome.prediction_id, func.max(Outcome.revision).label("revision"))
        .group_by(Outcome.prediction_id)
        .subquery("latest")
    )
    band = case(*((Prediction.risk_band == b, i) for i, b in enumerate(BANDS)), else_=0)
    code = (
        case((Outcome.outcome == LABEL_POSITIVE, 1), else_=0)
        + case((Prediction.label == LABEL_POSITIVE, 2), else_=0)
        + 4 * band
    )
    columns: list[object] = [Prediction.probability, code]
    if times:
        columns.append(_epoch_seconds(engine))
    q = (
        select(*columns)  # type: ignore[call-overload]  # a list of SQL expressions
        .select_from(Prediction)
        .join(latest, latest.c.prediction_id == Prediction.id)
        .join(
            Outcome,
            and_(
                Outcome.prediction_id == latest.c.prediction_id,
                Outcome.revision == latest.c.revision,
            ),
        )
        .where(Prediction.model_version == sel.model_version)
        .where(Prediction.model_name == sel.model_name)
    )
    if sel.since is not None:
        q = q.where(Prediction.created_at >= _stored_time(engine, sel.since))
    if sel.until is not None:
        q = q.where(Prediction.created_at < _stored_time(engine, sel.until))
    return q  # type: ignore[no-any-return]  # select(*list) is typed loosely


def read(engine: Engine, sel: Selection, *, times: bool = False) -> Labelled:
    """The selected estimates with their current outcome (those without one left out)."""
    with engine.connect() as conn:
        result = conn.execute(query(engine, sel, times=times))
        rows = result.cursor.fetchall()  # the driver's tuples, no row objects
        result.close()
    width = 3 if times else 2
    table = np.array(rows, dtype=np.float64).reshape(len(rows), width)
    code = table[:, 1].astype(np.int8)
    return Labelled(
        probability=np.ascontiguousarray(table[:, 0]),
        outcome=(code & 1).astype(bool),
        alert=(code & 2).astype(bool),
        band=(code >> 2).astype(np.int8),
        created=np.floor(table[:, 2]).astype(np.int64) if times else None,
    )
