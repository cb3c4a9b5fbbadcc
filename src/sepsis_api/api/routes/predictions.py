"""The audit history and the outcomes recorded against its estimates.

GET /v1/predictions (newest first), GET /v1/predictions/{id} (with its current outcome),
POST /v1/predictions/{id}/outcome, GET /v1/predictions/{id}/outcomes and POST /v1/outcomes
(JSON or CSV, all or nothing).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Annotated, Any, Literal, TypeVar

import orjson
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from pydantic import BeforeValidator, ValidationError
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool

from sepsis_api.api.errors import (
    ERRORS,
    JSON_ERRORS,
    APIError,
    field_errors,
    json_response,
    require_json,
)
from sepsis_api.api.schemas import (
    OUTCOME_FIELDS,
    RFC3339_EXPECTED,
    CurrentOutcome,
    ErrorResponse,
    HistoryPage,
    HistoryRecord,
    OutcomeBatchItem,
    OutcomeBatchRequest,
    OutcomeBatchResponse,
    OutcomeRequest,
    OutcomeRevisions,
    rfc3339,
)
from sepsis_api.api.security import caller_id
from sepsis_api.db.audit import HistoryFilter
from sepsis_api.db.outcomes import OutcomeIn, OutcomeLog, UnknownPredictions

router = APIRouter(prefix="/v1", tags=["history"], dependencies=[Depends(caller_id)])
T = TypeVar("T")

__all__ = ["RFC3339_EXPECTED", "DateTimeQuery", "router"]

DateTimeQuery = BeforeValidator(rfc3339)
KNOWN_PREDICTION = "the prediction_id of a recorded estimate"
CSV_COLUMNS = "prediction_id, outcome (Positive or Negative), optional observed_at, source, note"


def _iso(t: datetime | None) -> str | None:
    return None if t is None else t.isoformat()


def _outcome(r: dict[str, Any], *, current: bool = True) -> dict[str, Any]:
    reply = {
        "prediction_id": r["prediction_id"],
        "revision": r["revision"],
        "outcome": r["outcome"],
        "observed_at": _iso(r["observed_at"]),
        "source": r["source"],
        "note": r["note"],
        "recorded_at": _iso(r["recorded_at"]),
        "recorded_by": r["recorded_by"],
    }
    if current:
        reply["revisions"] = r["revisions"]
    return reply


def _record(r: dict[str, Any], outcome: dict[str, Any] | None) -> dict[str, Any]:
    return {
        "prediction_id": r["id"],
        "created_at": r["created_at"].isoformat(),
        "caller": r["caller"],
        "source": r["source"],
        "request_id": r["request_id"],
        "patient_id": r["patient_id"],
        "model": r["model_name"],
        "model_version": r["model_version"],
        "probability": r["probability"],
        "threshold": r["threshold"],
        "label": r["label"],
        "risk_band": r["risk_band"],
        "inputs": r["inputs"],
        "contributions": r["contributions"],
        "outcome": None if outcome is None else _outcome(outcome),
    }


async def _read(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    try:
        return await run_in_threadpool(fn, *args, **kwargs)
    except SQLAlchemyError as e:
        raise APIError(
            503,
            f"the audit database is unavailable ({type(e).__name__})",
            headers={"Retry-After": "5"},
        ) from None


async def _write(fn: Callable[..., T], *args: Any) -> T:
    """A write off the loop; the engine bounds its wait (SQLite busy timeout, PostgreSQL
    connect and pre-ping), and a database error is a 503 with nothing recorded."""
    try:
        return await run_in_threadpool(fn, *args)
    except SQLAlchemyError as e:
        raise APIError(
            503,
            "the audit database is unavailable, so no outcome was recorded; "
            f"retry later ({type(e).__name__})",
            headers={"Retry-After": "5"},
        ) from None


def _outcomes(request: Request) -> OutcomeLog:
    return OutcomeLog(request.app.state.service.audit.engine)


@router.get(
    "/predictions",
    response_model=HistoryPage,
    responses=ERRORS,
    summary="The audit history, newest first",
)
async def list_predictions(
    request: Request,
    limit: Annotated[int, Query(ge=1, le=500, description="Page size.")] = 50,
    cursor: Annotated[
        str | None, Query(max_length=64, description="`next_cursor` of the previous page.")
    ] = None,
    patient_id: Annotated[str | None, Query(max_length=128)] = None,
    label: Annotated[Literal["Positive", "Negative"] | None, Query()] = None,
    model: Annotated[str | None, Query(max_length=64, description="Model name.")] = None,
    model_version: Annotated[str | None, Query(max_length=64)] = None,
    since: Annotated[
        datetime | None,
        DateTimeQuery,
        Query(
            description="Created at or after this RFC 3339 date-time, e.g. 2026-11-01T08:00:00Z."
        ),
    ] = None,
    until: Annotated[
        datetime | None,
        DateTimeQuery,
        Query(
            description="Created before this RFC 3339 date-time, e.g. 2026-11-02T08:00:00+01:00."
        ),
    ] = None,
) -> Response:
    flt = HistoryFilter(
        patient_id=patient_id,
        label=label,
        model_version=model_version,
        model_name=model,
        since=since,
        until=until,
    )
    audit, outcomes = request.app.state.service.audit, _outcomes(request)

    def page() -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]:
        rows = audit.page(flt, limit=limit + 1, before=cursor)
        return rows, outcomes.current([r["id"] for r in rows[:limit]])

    rows, current = await _read(page)
    more = len(rows) > limit
    rows = rows[:limit]
    return json_response(
        {
            "items": [_record(r, current.get(r["id"])) for r in rows],
            "next_cursor": rows[-1]["id"] if more else None,
        }
    )


def _unknown_prediction(prediction_id: str) -> APIError:
    return APIError(
        404,
        f"no prediction with id {prediction_id!r}",
        [
            {
                "field": "prediction_id",
                "row": None,
                "value": prediction_id,
                "expected": KNOWN_PREDICTION,
                "message": f"prediction_id: no prediction with id {prediction_id!r}",
            }
        ],
    )


@router.get(
    "/predictions/{prediction_id}",
    response_model=HistoryRecord,
    responses={**ERRORS, 404: {"model": ErrorResponse}},
    summary="One audit record with its inputs, outputs and current outcome",
)
async def get_prediction(prediction_id: str, request: Request) -> Response:
    audit, outcomes = request.app.state.service.audit, _outcomes(request)

    def one() -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
        if "\x00" in prediction_id:  # never an id (they are generated); PostgreSQL refuses NUL
            return None, None
        row = audit.get(prediction_id[:64])
        return row, outcomes.current([row["id"]]).get(row["id"]) if row else None

    row, outcome = await _read(one)
    if row is None:
        raise APIError(404, f"no prediction with id {prediction_id!r}")
    return json_response(_record(row, outcome))


# -- outcomes ---------------------------------------------------------------------------------


def _validation_errors(e: ValidationError, row: int | None, where: str) -> list[dict[str, Any]]:
    """Pydantic's errors in the project's shape, for outcome fields (``where`` prefixes each
    message: "outcomes[3]" for JSON, "row 3" for CSV, "" for a single outcome)."""
    out = []
    raw = list(e.errors())
    for err, mapped in zip(raw, field_errors(raw), strict=True):
        loc = [p for p in err.get("loc", ()) if p != "body"]
        at = row
        if len(loc) >= 2 and loc[0] == "outcomes" and isinstance(loc[1], int):
            at, loc = loc[1], loc[2:]
            where = f"outcomes[{at}]"
        field = ".".join(str(p) for p in loc) or None
        if err["type"] == "json_invalid":
            field = None
        mapped["field"], mapped["row"] = field, at
        if err["type"] == "extra_forbidden":
            mapped["expected"] = f"no such field; known fields: {', '.join(OUTCOME_FIELDS)}"
        if err["type"] == "missing":
            mapped["expected"] = "a value (required)"
        msg = mapped["message"].split(": ", 1)[-1]
        head = f"{where}.{field}" if where and field else where or field or "body"
        mapped["message"] = f"{head}: {msg}"
        out.append(mapped)
    return out


def _single_outcome(body: bytes) -> OutcomeRequest:
    try:
        return OutcomeRequest.model_validate_json(body)
    except ValidationError as e:
        errors = _validation_errors(e, None, "")
        raise APIError(
            422, "invalid outcome: " + "; ".join(x["message"] for x in errors[:5]), errors
        ) from None


_SINGLE_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": OutcomeRequest.model_json_schema()}},
    }
}
_BATCH_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["outcomes"],
                    "properties": {
                        "outcomes": {
                            "type": "array",
                            "minItems": 1,
                            "items": OutcomeBatchItem.model_json_schema(),
                        }
                    },
                }
            },
            "text/csv": {
                "schema": {"type": "string"},
                "example": "prediction_id,outcome,observed_at,source\n"
                "0192f0c4-0000-7000-8000-000000000000,Positive,2026-11-27T14:00:00Z,lab\n",
            },
        },
    }
}


@router.post(
    "/predictions/{prediction_id}/outcome",
    response_model=CurrentOutcome,
    status_code=201,
    openapi_extra=_SINGLE_BODY,
    dependencies=[Depends(require_json)],
    responses={
        **JSON_ERRORS,
        200: {
            "model": CurrentOutcome,
            "description": "The same as the current outcome: nothing added, the current one.",
        },
        404: {"model": ErrorResponse, "description": "No prediction with that id."},
    },
    summary="Record a prediction's true outcome (a new revision supersedes the current one)",
)
async def record_outcome(
    prediction_id: str, request: Request, caller: str = Depends(caller_id)
) -> Response:
    """201 with the new current revision; 200 with the current one when it already says the
    same (outcome, observed_at, source, note): sending an outcome twice adds nothing."""
    body = _single_outcome(await request.body())
    item = OutcomeIn(prediction_id, body.outcome, body.observed_at, body.source, body.note)
    try:
        [(row, created)] = await _write(_outcomes(request).record, [item], caller)
    except UnknownPredictions:
        raise _unknown_prediction(prediction_id) from None
    return json_response(_outcome(row), 201 if created else 200)


@router.get(
    "/predictions/{prediction_id}/outcomes",
    response_model=OutcomeRevisions,
    responses={**ERRORS, 404: {"model": ErrorResponse}},
    summary="Every outcome revision recorded for a prediction, oldest first",
)
async def list_outcomes(prediction_id: str, request: Request) -> Response:
    outcomes = _outcomes(request)

    def read() -> list[dict[str, Any]] | None:
        if not outcomes.known([prediction_id]):
            return None
        return outcomes.revisions(prediction_id)

    revisions = await _read(read)
    if revisions is None:
        raise _unknown_prediction(prediction_id)
    return json_response(
        {
            "prediction_id": prediction_id,
            "revisions": [_outcome(r, current=False) for r in revisions],
        }
    )


Rows = list[tuple[int, OutcomeBatchItem | None, str | None]]  # (row, item or None, its id)


def _json_rows(body: bytes, max_rows: int) -> tuple[Rows, list[dict[str, Any]]]:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        data = None
    raw = data.get("outcomes") if type(data) is dict and len(data) == 1 else None
    if type(raw) is not list or not raw:  # not {"outcomes": [...]}: pydantic words it
        try:
            OutcomeBatchRequest.model_validate_json(body)
        except ValidationError as e:
            problems = _validation_errors(e, None, "")
            raise APIError(
                422,
                "invalid outcomes: " + "; ".join(x["message"] for x in problems[:5]),
                problems,
            ) from None
        raise AssertionError("a body that is not {'outcomes': [...]} validated")
    if len(raw) > max_rows:
        raise APIError(413, f"{len(raw)} outcomes exceed the batch limit of {max_rows}")
    rows: Rows = []
    errors: list[dict[str, Any]] = []
    for i, value in enumerate(raw):
        pid = value.get("prediction_id") if type(value) is dict else None
        try:
            rows.append((i, OutcomeBatchItem.model_validate(value), pid))
        except ValidationError as e:
            rows.append((i, None, pid if isinstance(pid, str) else None))
            errors += _validation_errors(e, i, f"outcomes[{i}]")
    return rows, errors


def _csv_error(message: str, field: str | None = None) -> APIError:
    return APIError(
        422,
        f"invalid CSV: {message}",
        [
            {
                "field": field,
                "row": None,
                "value": None,
                "expected": f"a CSV with columns {CSV_COLUMNS}",
                "message": message,
            }
        ],
    )


def _csv_rows(data: bytes, max_rows: int) -> tuple[Rows, list[dict[str, Any]]]:
    """The CSV's data rows (numbered from 1): BOM, CR, CRLF and LF read alike, as ml/data.py
    reads files; an empty cell is a value left out."""
    text = io.TextIOWrapper(io.BytesIO(data), encoding="utf-8-sig", newline=None)
    try:
        lines = [cells for cells in csv.reader(text) if any(c.strip() for c in cells)]
    except UnicodeDecodeError as e:
        raise _csv_error(f"not UTF-8 text: {e}") from None
    except csv.Error as e:
        raise _csv_error(f"cannot read as a table: {e}") from None
    if not lines:
        raise _csv_error("the CSV is empty")
    header = [c.strip() for c in lines[0]]
    for name in header:
        if name not in OUTCOME_FIELDS:
            raise _csv_error(f"unknown column {name!r}", name)
        if header.count(name) > 1:
            raise _csv_error(f"column {name!r} appears twice", name)
    for name in ("prediction_id", "outcome"):
        if name not in header:
            raise _csv_error(f"{name}: column missing", name)
    if len(lines) == 1:
        raise _csv_error("the CSV has a header but no data rows")
    if len(lines) - 1 > max_rows:
        raise APIError(413, f"{len(lines) - 1} rows exceed the batch limit of {max_rows}")
    rows: Rows = []
    errors: list[dict[str, Any]] = []
    for n, cells in enumerate(lines[1:], start=1):
        if len(cells) != len(header):
            rows.append((n, None, None))
            errors.append(
                {
                    "field": None,
                    "row": n,
                    "value": None,
                    "expected": f"{len(header)} cells, one per column",
                    "message": f"row {n}: {len(cells)} cells for {len(header)} columns",
                }
            )
            continue
        value = {k: v.strip() for k, v in zip(header, cells, strict=True) if v.strip()}
        try:
            rows.append((n, OutcomeBatchItem.model_validate(value), value.get("prediction_id")))
        except ValidationError as e:
            rows.append((n, None, value.get("prediction_id")))
            errors += _validation_errors(e, n, f"row {n}")
    return rows, errors


def _unknown_rows(rows: Rows, indexes: Sequence[int], csv_rows: bool) -> list[dict[str, Any]]:
    out = []
    for i in indexes:
        n, _, pid = rows[i]
        where = f"row {n}" if csv_rows else f"outcomes[{n}]"
        out.append(
            {
                "field": "prediction_id",
                "row": n,
                "value": pid,
                "expected": KNOWN_PREDICTION,
                "message": f"{where}.prediction_id: no prediction with id {pid!r}",
            }
        )
    return out


@router.post(
    "/outcomes",
    response_model=OutcomeBatchResponse,
    openapi_extra=_BATCH_BODY,
    responses={
        **ERRORS,
        413: {"model": ErrorResponse, "description": "Too many rows or bytes."},
        415: {"model": ErrorResponse},
    },
    summary="Record many outcomes (JSON or CSV); all or nothing",
)
async def record_outcomes(request: Request, caller: str = Depends(caller_id)) -> Response:
    """All or nothing, in one transaction: if any row is invalid or names an unknown
    prediction, the 422 lists every such row (JSON: 0-based index; CSV: 1-based data row) and
    nothing is recorded. A row equal to its prediction's current outcome adds nothing."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    max_rows = request.app.state.settings.max_batch_rows
    parse: Callable[[bytes, int], tuple[Rows, list[dict[str, Any]]]]
    if ctype == "application/json" or ctype.endswith("+json"):
        parse, is_csv = _json_rows, False
    elif ctype == "text/csv":
        parse, is_csv = _csv_rows, True
    else:
        raise APIError(
            415,
            f"unsupported content type {ctype or '(none)'!r}; send application/json or text/csv",
        )
    rows, errors = await run_in_threadpool(parse, await request.body(), max_rows)
    outcomes = _outcomes(request)
    if errors:  # list the unknown ids of the rows too, then refuse the whole batch
        ids = [pid for _, _, pid in rows if isinstance(pid, str)]
        known = await _read(outcomes.known, ids)
        unknown = [
            i for i, (_, _, pid) in enumerate(rows) if isinstance(pid, str) and pid not in known
        ]
        errors += _unknown_rows(rows, unknown, is_csv)
        raise _batch_refused(errors)
    items = [
        OutcomeIn(m.prediction_id, m.outcome, m.observed_at, m.source, m.note)
        for _, m, _ in rows
        if m is not None
    ]
    try:
        results = await _write(outcomes.record, items, caller)
    except UnknownPredictions as e:
        raise _batch_refused(_unknown_rows(rows, e.rows, is_csv)) from None
    created = sum(1 for _, new in results if new)
    return json_response(
        {
            "count": len(results),
            "created": created,
            "unchanged": len(results) - created,
            "outcomes": [_outcome(row) for row, _ in results],
        }
    )


def _batch_refused(errors: list[dict[str, Any]]) -> APIError:
    errors.sort(key=lambda e: e["row"] if e["row"] is not None else -1)
    return APIError(
        422,
        f"invalid outcomes: {len({e['row'] for e in errors})} invalid row(s), nothing was "
        f"recorded; first: {errors[0]['message']}",
        errors,
    )
