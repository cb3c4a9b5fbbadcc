"""MLflow's scoring protocol (``mlflow models serve``): POST /invocations, /ping, /health,
/version.

``application/json`` bodies carry one of ``dataframe_split`` (``columns``, ``data`` and an
optional ``index``), ``dataframe_records``, ``instances`` or ``inputs`` (records, columns, or
rows in feature order); ``text/csv`` bodies have a header with the feature codes and are read
by the project's CSV reader. Columns are the feature codes or names, plus an optional ``ID``.
Which model answers is ``SEPSIS_API_MLFLOW_MODEL`` (default: the served version's default
model). Every estimate is scored and audited by Service.predict_batch (source ``mlflow``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import orjson
import pandas as pd
from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from sepsis_api import __version__
from sepsis_api.api.errors import APIError, ErrorShape, json_response
from sepsis_api.api.protocols.common import (
    ProtocolError,
    error_route,
    parse_body,
    service,
    validated,
    validated_matrix,
)
from sepsis_api.api.security import caller_id
from sepsis_api.api.service import ValidatedPatients
from sepsis_api.ml.data import DataError, RowError, read_csv_bytes
from sepsis_api.schema import FEATURE_CODES, ID_COLUMN

SOURCE = "mlflow"
FORMATS = ("dataframe_split", "dataframe_records", "instances", "inputs")
_SPLIT_KEYS = {"columns", "data", "index"}
_CODES = {
    400: "BAD_REQUEST",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "RESOURCE_DOES_NOT_EXIST",
    405: "BAD_REQUEST",
}


# Where callers read this protocol's error shape (api/errors.ErrorShapes).
ROOTS = ("/invocations", "/ping", "/health", "/version")


def _error_body(status: int, message: str) -> dict[str, Any]:
    """MLflow's scoring server error body: an error code named for the status, a message."""
    if status < 500:
        code = _CODES.get(status, "BAD_REQUEST")
    else:
        code = "TEMPORARILY_UNAVAILABLE" if status == 503 else "INTERNAL_ERROR"
    return {"error_code": code, "message": message}


ERROR_SHAPE = ErrorShape(_error_body)


def _render(status: int, message: str, headers: Mapping[str, str] | None) -> Response:
    return json_response(_error_body(status, message), status, headers)


router = APIRouter(tags=["MLflow scoring protocol"], route_class=error_route(_render))


class MLflowError(BaseModel):
    """MLflow's scoring server error body."""

    error_code: str = Field(examples=["BAD_REQUEST"])
    message: str = Field(examples=["patient 0, column PL, value 700: out of range"])


MLFLOW_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": MLflowError, "description": f"`{kind}`: {text}"}
    for code, kind, text in (
        (400, "BAD_REQUEST", "Invalid input, named."),
        (401, "UNAUTHENTICATED", "Missing or invalid API key."),
        (413, "BAD_REQUEST", "Too many patients or bytes."),
        (415, "BAD_REQUEST", "Not JSON or CSV."),
        (503, "TEMPORARILY_UNAVAILABLE", "Audit log unavailable; nothing returned."),
    )
}


def _ready(request: Request) -> bool:
    svc = getattr(request.app.state, "service", None)
    return svc is not None and bool(svc.writer.alive)


@router.get("/ping", summary="MLflow liveness and readiness", response_class=Response)
async def ping(request: Request) -> Response:
    return Response("\n", status_code=200 if _ready(request) else 503, media_type="text/plain")


@router.get("/health", summary="MLflow liveness and readiness", response_class=Response)
async def health(request: Request) -> Response:
    return await ping(request)


@router.get("/version", summary="The server's version", response_class=Response)
async def version() -> Response:
    return Response(__version__, media_type="text/plain")


_EXAMPLE = {
    "dataframe_split": {
        "columns": ["ID", *FEATURE_CODES],
        "index": [0],
        "data": [["ICU200010", 6, 148, 72, 35, 0, 33.6, 0.627, 50, 0]],
    }
}
_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": {"type": "object"}, "example": _EXAMPLE},
            "text/csv": {
                "schema": {"type": "string"},
                "example": "ID,PRG,PL,PR,SK,TS,M11,BD2,Age,Insurance\n"
                "P1,6,148,72,35,0,33.6,0.627,50,0\n",
            },
        },
    }
}


@router.post(
    "/invocations",
    summary="MLflow scoring: one or many patients (JSON data frame or CSV)",
    responses=MLFLOW_ERRORS,
    openapi_extra=_BODY,
)
async def invocations(request: Request, caller: str = Depends(caller_id)) -> Response:
    """Answers `{"predictions": [{"probability", "label", "risk_band", "prediction_id"}]}`,
    one record per patient in order; all or nothing."""
    svc = service(request)
    ref = request.app.state.settings.mlflow_model
    try:
        served = svc.resolve(ref, allow_all=False)[0]
    except APIError as e:  # the setting names nothing served: the operator's mistake
        raise ProtocolError(503, f"SEPSIS_API_MLFLOW_MODEL: {e.detail}") from None
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    max_rows = request.app.state.settings.max_batch_rows
    body = await request.body()
    if ctype == "application/json":
        patients = await parse_body(_json_patients, body, max_rows)
    elif ctype == "text/csv":
        patients = await parse_body(_csv_patients, body, max_rows)
    else:
        raise ProtocolError(
            415,
            f"unsupported content type {ctype or '(none)'!r}; send application/json or text/csv",
        )
    result = await svc.predict_batch(
        patients, served, caller=caller, request_id=request.state.request_id, source=SOURCE
    )
    request.state.model_version = served.version
    return json_response(
        {
            "predictions": [
                {
                    "probability": r["probability"],
                    "label": r["label"],
                    "risk_band": r["risk_band"],
                    "prediction_id": r["prediction_id"],
                }
                for r in result["results"]
            ]
        }
    )


def _where_json(e: RowError) -> str:
    value = "" if e.value in (None, "") else f", value {e.value}"
    column = "" if e.column is None else f", column {e.column}"
    return f"patient {e.row - 1}{column}{value}: {e.reason}"


def _missing(columns: list[str]) -> str:
    return (
        f"missing column(s) {', '.join(columns)}; expected columns "
        f"{', '.join(FEATURE_CODES)} (or their descriptive names), optionally ID"
    )


def _json_patients(body: bytes, max_rows: int) -> ValidatedPatients:
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as e:
        raise ProtocolError(400, f"the request body is not valid JSON: {e}") from None
    fast = _numbers_only(doc)
    if fast is not None:
        return validated_matrix(*fast, where=_where_json, max_rows=max_rows)
    frame = _frame(doc)
    return validated(frame, where=_where_json, missing=_missing, max_rows=max_rows)


def _numbers_only(doc: Any) -> tuple[np.ndarray, list[str | None]] | None:
    """The common case without a data frame: ``dataframe_split`` or records whose columns are
    exactly the feature codes (and maybe ID), every value a number or null, IDs distinct
    strings. Anything else is None: the data frame route reads it (and words its problems)."""
    if type(doc) is not dict or len(doc) != 1:
        return None
    key, value = next(iter(doc.items()))
    if key == "dataframe_split":
        if type(value) is not dict or not {"columns", "data"} <= set(value) <= _SPLIT_KEYS:
            return None
        columns, rows, index = value["columns"], value["data"], value.get("index")
        if type(columns) is not list or type(rows) is not list:
            return None
        if index is not None and (type(index) is not list or len(index) != len(rows)):
            return None
    elif key in FORMATS and type(value) is list and value and type(value[0]) is dict:
        columns = list(value[0])
        if not all(type(r) is dict and list(r) == columns for r in value):
            return None
        rows = [list(r.values()) for r in value]
    else:
        return None
    if len(set(columns)) != len(columns) or sorted(c for c in columns if c != ID_COLUMN) != sorted(
        FEATURE_CODES
    ):
        return None
    order = [columns.index(c) for c in FEATURE_CODES]
    at = columns.index(ID_COLUMN) if ID_COLUMN in columns else None
    X: list[list[Any]] = []
    ids: list[str | None] = []
    for r in rows:
        if type(r) is not list or len(r) != len(columns):
            return None
        values = [r[i] for i in order]
        if not all(v is None or type(v) in (int, float) for v in values):
            return None
        ident = None if at is None else r[at]
        if ident is not None and type(ident) is not str:
            return None
        X.append(values)
        ids.append(ident)
    given = [i for i in ids if i is not None]
    if not X or len(set(given)) != len(given):
        return None
    return np.array(X, dtype=np.float64), ids


def _csv_patients(body: bytes, max_rows: int) -> ValidatedPatients:
    try:
        frame = read_csv_bytes(body)
    except DataError as e:
        raise ProtocolError(400, f"invalid CSV: {e}") from None
    return validated(
        frame, where=lambda e: f"invalid CSV: {e}", missing=_missing, max_rows=max_rows
    )


def _frame(doc: Any) -> pd.DataFrame:
    """The data frame of a JSON scoring request, in any of MLflow's four formats."""
    given = [k for k in FORMATS if type(doc) is dict and k in doc]
    if type(doc) is not dict or len(given) != 1 or set(doc) - {*FORMATS, "params"}:
        raise ProtocolError(
            400,
            "the body must be a JSON object with exactly one of the keys "
            f"{', '.join(FORMATS)} (and optionally params)",
        )
    key = given[0]
    value = doc[key]
    try:
        if key == "dataframe_split":
            return _split(value)
        if key == "dataframe_records":
            if type(value) is not list or not all(type(r) is dict for r in value):
                raise ProtocolError(400, "dataframe_records must be a list of objects")
            return pd.DataFrame.from_records(value)
        return _tensor_like(key, value)
    except (ValueError, TypeError) as e:  # pandas: ragged rows, lengths that disagree
        raise ProtocolError(400, f"{key}: cannot be read as a table: {e}") from None


def _split(value: Any) -> pd.DataFrame:
    if type(value) is not dict or "data" not in value or "columns" not in value:
        raise ProtocolError(
            400, "dataframe_split must be an object with columns, data and optionally index"
        )
    extra = set(value) - {"columns", "data", "index"}
    if extra:
        raise ProtocolError(400, f"dataframe_split: unknown key(s) {', '.join(sorted(extra))}")
    columns, data, index = value["columns"], value["data"], value.get("index")
    if type(columns) is not list or not all(type(c) is str for c in columns):
        raise ProtocolError(400, "dataframe_split.columns must be a list of column names")
    twice = sorted({c for c in columns if columns.count(c) > 1})
    if twice:
        raise ProtocolError(400, f"dataframe_split.columns: {', '.join(twice)} given twice")
    if type(data) is not list or not all(type(r) is list for r in data):
        raise ProtocolError(400, "dataframe_split.data must be a list of rows (lists)")
    for i, row in enumerate(data):
        if len(row) != len(columns):
            raise ProtocolError(
                400,
                f"dataframe_split.data[{i}] has {len(row)} values for {len(columns)} columns",
            )
    if index is not None and (type(index) is not list or len(index) != len(data)):
        raise ProtocolError(
            400, f"dataframe_split.index must be a list of {len(data)} labels, one per row"
        )
    return pd.DataFrame(data, columns=columns, index=index)


def _tensor_like(key: str, value: Any) -> pd.DataFrame:
    """``instances`` / ``inputs``: records, a column mapping, or rows in feature order."""
    if type(value) is dict:  # columns: {"PRG": [6, 1], ...} (or one patient's scalars)
        if all(type(v) is not list for v in value.values()):
            return pd.DataFrame([value])
        return pd.DataFrame(value)
    if type(value) is not list or not value:
        raise ProtocolError(400, f"{key} must be a non-empty list of patients or a mapping")
    if all(type(r) is dict for r in value):
        return pd.DataFrame.from_records(value)
    if all(type(r) is list for r in value):
        for i, row in enumerate(value):
            if len(row) != len(FEATURE_CODES):
                raise ProtocolError(
                    400,
                    f"{key}[{i}] has {len(row)} values; a row holds {len(FEATURE_CODES)}: "
                    f"{', '.join(FEATURE_CODES)}",
                )
        return pd.DataFrame(value, columns=list(FEATURE_CODES))
    raise ProtocolError(400, f"{key}: every patient must be an object or a list of values")
