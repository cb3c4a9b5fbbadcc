"""A query's rows read into numpy columns without a SQLAlchemy row object each.

On PostgreSQL each row's values are packed into bytes by the types' own binary output
functions (big-endian) and concatenated by one aggregate: a single value crosses the wire and
numpy reads it in place (a bytea holds up to 1 GB: some 50 million rows of a few numbers). A
binary COPY would be no faster: the driver reads it one row per call. On SQLite the driver's
tuples go straight into one array.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import chain
from typing import Any

import numpy as np
from sqlalchemy import Connection
from sqlalchemy.sql import Select

# A column's kind: its PostgreSQL binary output function and numpy's name for those bytes.
F8 = ("float8send", ">f8")
I4 = ("int4send", ">i4")


def read(
    conn: Connection,
    q: Select[Any],
    columns: Sequence[tuple[str, tuple[str, str]]],
    *,
    nullable: bool = False,
) -> dict[str, np.ndarray]:
    """The ``columns`` (name and kind, in the query's order) of ``q``'s rows, as float64
    arrays; with ``nullable`` a NULL (only in F8 columns) reads as NaN."""
    if conn.dialect.name == "postgresql":
        return _packed(conn, q, columns, nullable)
    return _tuples(conn, q, [name for name, _ in columns], nullable)


def _packed(
    conn: Connection,
    q: Select[Any],
    columns: Sequence[tuple[str, tuple[str, str]]],
    nullable: bool,
) -> dict[str, np.ndarray]:
    compiled = q.compile(dialect=conn.dialect)

    def packed(name: str, send: str) -> str:
        value = f"q.{name}"
        if nullable and send == F8[0]:  # one NULL would make the whole row's bytes NULL
            value = f"coalesce({value}, 'NaN'::float8)"
        return f"{send}({value})"

    row = " || ".join(packed(name, send) for name, (send, _) in columns)
    statement = f"SELECT string_agg({row}, ''::bytea) FROM ({compiled}) AS q"
    raw: Any = conn.connection.dbapi_connection  # psycopg 3
    cur = raw.cursor(binary=True)  # bytea as the bytes themselves, not hex text
    try:
        cur.execute(statement, compiled.params)
        (data,) = cur.fetchone()
    finally:
        cur.close()
    rows = np.frombuffer(data or b"", np.dtype([(name, kind) for name, (_, kind) in columns]))
    return {name: rows[name].astype(np.float64) for name, _ in columns}


def _tuples(
    conn: Connection, q: Select[Any], names: list[str], nullable: bool
) -> dict[str, np.ndarray]:
    result = conn.execute(q)
    rows = result.cursor.fetchall()  # the driver's tuples, no row objects
    result.close()
    width = len(names)
    if nullable:  # numpy reads None as NaN, at some cost over fromiter
        flat = np.array(rows, dtype=np.float64)
    else:
        flat = np.fromiter(chain.from_iterable(rows), np.float64, count=width * len(rows))
    table = flat.reshape(len(rows), width)
    return {name: np.ascontiguousarray(table[:, i]) for i, name in enumerate(names)}
