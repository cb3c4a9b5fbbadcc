"""Outcomes recorded against estimates: POST /v1/predictions/{id}/outcome,
GET /v1/predictions/{id}/outcomes and POST /v1/outcomes (JSON or CSV, all or nothing)."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Sequence
from typing import Any

import orjson
from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from sepsis_api.api.errors import (
    BATCH_ERRORS,
    ERRORS,
    JSON_ERRORS,
    APIError,
    field_errors,
    json_response,
    require_json,
)
from sepsis_api.api.routes.predictions import (
    KNOWN_PREDICTION,
    outcome_log,
    outcome_reply,
    read_off_loop,
    unknown_prediction,
    write_off_loop,
)
from sepsis_api.api.schemas import (
    OUTCOME_FIELDS,
    CurrentOutcome,
    ErrorResponse,
    OutcomeBatchItem,
    OutcomeBatchRequest,
    OutcomeBatchResponse,
    OutcomeRequest,
    OutcomeRevisions,
)
from sepsis_api.api.security import caller_id
from sepsis_api.db.outcomes import OutcomeIn, UnknownPredictions

router = APIRouter(prefix="/v1", tags=["outcomes"], dependencies=[Depends(caller_id)])
CSV_COLUMNS = "prediction_id, outcome (Positive or Negative), optional observed_at, source, note"


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
        [(row, created)] = await write_off_loop(outcome_log(request).record, [item], caller)
    except UnknownPredictions:
        raise unknown_prediction(prediction_id) from None
    return json_response(outcome_reply(row), 201 if created else 200)


@router.get(
    "/predictions/{prediction_id}/outcomes",
    response_model=OutcomeRevisions,
    responses={**ERRORS, 404: {"model": ErrorResponse}},
    summary="Every outcome revision recorded for a prediction, oldest first",
)
async def list_outcomes(prediction_id: str, request: Request) -> Response:
    outcomes = outcome_log(request)

    def read() -> list[dict[str, Any]] | None:
        if not outcomes.known([prediction_id]):
            return None
        return outcomes.revisions(prediction_id)

    revisions = await read_off_loop(read)
    if revisions is None:
        raise unknown_prediction(prediction_id)
    return json_response(
        {
            "prediction_id": prediction_id,
            "revisions": [outcome_reply(r, current=False) for r in revisions],
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
    responses=BATCH_ERRORS,
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
    outcomes = outcome_log(request)
    if errors:  # list the unknown ids of the rows too, then refuse the whole batch
        ids = [pid for _, _, pid in rows if isinstance(pid, str)]
        known = await read_off_loop(outcomes.known, ids)
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
        results = await write_off_loop(outcomes.record, items, caller)
    except UnknownPredictions as e:
        raise _batch_refused(_unknown_rows(rows, e.rows, is_csv)) from None
    created = sum(1 for _, new in results if new)
    return json_response(
        {
            "count": len(results),
            "created": created,
            "unchanged": len(results) - created,
            "outcomes": [outcome_reply(row) for row, _ in results],
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
