"""Estimates with their current outcome, read from the audit log as arrays.

One scan of the predictions of one model version and model that have a current outcome (the
latest revision's, kept on the prediction's row: ``predictions.outcome``) returns two or three
numbers a row: the probability, one small code packing outcome, alert and risk band (``outcome
+ 2 * alert + 4 * band``) and, for windows, the time in seconds. The rows reach numpy without a
SQLAlchemy row object each: on PostgreSQL as one value of packed binary rows read by
``numpy.frombuffer`` (no Python object per value at all), on SQLite as the driver's tuples.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from itertools import chain
from typing import Any

import numpy as np
from sqlalchemy import (
    ColumnElement,
    Connection,
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
    q = query(engine, sel, times=times)
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            probability, code, created = _packed(conn, q, times)
        else:
            probability, code, created = _tuples(conn, q, times)
    code = code.astype(np.int8)
    return Labelled(
        probability=probability,
        outcome=(code & 1).astype(bool),
        alert=(code & 2).astype(bool),
        band=(code >> 2).astype(np.int8),
        created=np.floor(created).astype(np.int64) if created is not None else None,
    )


Columns = tuple[np.ndarray, np.ndarray, np.ndarray | None]


def _tuples(conn: Connection, q: Select[Any], times: bool) -> Columns:
    result = conn.execute(q)
    rows = result.cursor.fetchall()  # the driver's tuples, no row objects
    result.close()
    width = 3 if times else 2
    flat = np.fromiter(chain.from_iterable(rows), np.float64, count=width * len(rows))
    table = flat.reshape(len(rows), width)
    created = table[:, 2] if times else None
    return np.ascontiguousarray(table[:, 0]), table[:, 1], created


# On PostgreSQL each row's values are packed into bytes by the types' own binary output
# functions (big-endian) and concatenated by one aggregate: a single value crosses the wire
# and numpy reads it in place (a bytea holds up to 1 GB: some 50 million estimates). A binary
# COPY would be no faster: the driver reads it one row per call.
_PACKED = (("probability", "float8send", ">f8"), ("code", "int4send", ">i4"))
_CREATED = ("created", "float8send", ">f8")


def _packed(conn: Connection, q: Select[Any], times: bool) -> Columns:
    fields = (*_PACKED, _CREATED) if times else _PACKED
    compiled = q.compile(dialect=conn.dialect)
    row = " || ".join(f"{send}(q.{name})" for name, send, _ in fields)
    statement = f"SELECT string_agg({row}, ''::bytea) FROM ({compiled}) AS q"
    raw: Any = conn.connection.dbapi_connection  # psycopg 3
    cur = raw.cursor(binary=True)  # bytea as the bytes themselves, not hex text
    try:
        cur.execute(statement, compiled.params)
        (data,) = cur.fetchone()
    finally:
        cur.close()
    rows = np.frombuffer(data or b"", np.dtype([(name, kind) for name, _, kind in fields]))
    created = rows["created"].astype(np.float64) if times else None
    return rows["probability"].astype(np.float64), rows["code"].astype(np.int64), created
