"""Estimates with their current outcome, read from the audit log as arrays.

One scan of the predictions of one model version and model that have a current outcome (the
latest revision's, kept on the prediction's row: ``predictions.outcome``) returns two or three
numbers a row: the probability, one small code packing outcome, alert and risk band (``outcome
+ 2 * alert + 4 * band``) and, for windows, the time in seconds, read into numpy by
monitoring/arrays.py (on PostgreSQL packed into one binary value).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy import (
    ColumnElement,
    Double,
    Engine,
    Integer,
    case,
    cast,
    extract,
    func,
    select,
)
from sqlalchemy.sql import Select

from sepsis_api.db.models import Prediction
from sepsis_api.db.session import stored_time
from sepsis_api.monitoring import arrays
from sepsis_api.monitoring.performance import BANDS, Labelled
from sepsis_api.schema import LABEL_POSITIVE


@dataclass(frozen=True)
class Selection:
    """Which estimates: one model of one version, created in [since, until) when given."""

    model_version: str
    model_name: str
    since: datetime | None = None
    until: datetime | None = None

    def conditions(self, engine: Engine) -> list[ColumnElement[bool]]:
        """The selection as conditions on ``Prediction`` rows."""
        where = [
            Prediction.model_version == self.model_version,
            Prediction.model_name == self.model_name,
        ]
        if self.since is not None:
            where.append(Prediction.created_at >= stored_time(engine, self.since))
        if self.until is not None:
            where.append(Prediction.created_at < stored_time(engine, self.until))
        return where


def _epoch_seconds(engine: Engine) -> ColumnElement[Any]:
    if engine.dialect.name == "sqlite":  # julianday() costs far less than strftime('%s')
        return (func.julianday(Prediction.created_at) - 2440587.5) * 86400.0
    # extract() gives numeric on PostgreSQL 14+: a double packs into 8 bytes
    return cast(extract("epoch", Prediction.created_at), Double)


def query(engine: Engine, sel: Selection, *, times: bool) -> Select[tuple[object, ...]]:
    band = case(*((Prediction.risk_band == b, i) for i, b in enumerate(BANDS)), else_=0)
    code = (
        case((Prediction.outcome == LABEL_POSITIVE, 1), else_=0)
        + case((Prediction.label == LABEL_POSITIVE, 2), else_=0)
        + 4 * band
    )
    columns: list[object] = [
        cast(Prediction.probability, Double).label("probability"),
        cast(code, Integer).label("code"),
    ]
    if times:
        columns.append(_epoch_seconds(engine).label("created"))
    q = select(*columns).where(Prediction.outcome.is_not(None), *sel.conditions(engine))  # type: ignore[call-overload]  # a list of SQL expressions
    return q  # type: ignore[no-any-return]  # select(*list) is typed loosely


def read(engine: Engine, sel: Selection, *, times: bool = False) -> Labelled:
    """The selected estimates with their current outcome (those without one left out)."""
    columns = [("probability", arrays.F8), ("code", arrays.I4)]
    if times:
        columns.append(("created", arrays.F8))
    with engine.connect() as conn:
        got = arrays.read(conn, query(engine, sel, times=times), columns)
    code = got["code"].astype(np.int8)
    return Labelled(
        probability=got["probability"],
        outcome=(code & 1).astype(bool),
        alert=(code & 2).astype(bool),
        band=(code >> 2).astype(np.int8),
        created=np.floor(got["created"]).astype(np.int64) if times else None,
    )
