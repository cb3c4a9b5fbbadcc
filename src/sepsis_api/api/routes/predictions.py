"""GET /v1/predictions (the audit history, newest first) and GET /v1/predictions/{id}."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, TypeVar

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from pydantic import BeforeValidator
from pydantic_core import PydanticCustomError
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool

from sepsis_api.api.errors import ERRORS, APIError, json_response
from sepsis_api.api.schemas import ErrorResponse, HistoryPage, HistoryRecord
from sepsis_api.api.security import caller_id
from sepsis_api.db.audit import HistoryFilter

router = APIRouter(prefix="/v1", tags=["history"], dependencies=[Depends(caller_id)])
T = TypeVar("T")

# RFC 3339 section 5.6 `date-time`, what the OpenAPI `format: date-time` promises: a full date,
# "T", a time with seconds and an optional fraction, and a UTC offset ("Z" or +hh:mm/-hh:mm).
# T and Z may be lower case (RFC 3339 allows it). The offset is required: a time without one
# names no instant (the server's zone is not the caller's), so it is refused, not guessed. A
# number (Unix time), a date alone, a space for "T" or other ISO 8601 forms are refused too.
_RFC3339 = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}"  # full-date
    r"[Tt][0-9]{2}:[0-9]{2}:([0-9]{2})(\.[0-9]+)?"  # "T" partial-time (group 1: the second)
    r"([Zz]|[+-][0-9]{2}:[0-9]{2})"  # time-offset
)
RFC3339_EXPECTED = (
    "an RFC 3339 date-time, e.g. 2026-11-01T08:00:00Z (with its time zone offset: Z or +hh:mm)"
)


def _rfc3339(value: object) -> datetime | None:
    """An RFC 3339 date-time string as an aware datetime in UTC; anything else is a 422."""
    if value is None:
        return None
    if not isinstance(value, str) or (m := _RFC3339.fullmatch(value)) is None:
        raise PydanticCustomError("rfc3339_date_time", f"Input should be {RFC3339_EXPECTED}")
    text = value.upper()
    if m[1] == "60":  # a leap second, which datetime cannot hold: read as the second before it
        text = text[: m.start(1)] + "59" + text[m.end(1) :]
    try:
        return datetime.fromisoformat(text).astimezone(UTC)
    except (ValueError, OverflowError):  # e.g. month 13, or 0001-01-01T00:00:00+01:00 in UTC
        raise PydanticCustomError(
            "rfc3339_date_time",
            f"Input should be {RFC3339_EXPECTED}, a real one within the years 1 to 9999 in UTC",
        ) from None


DateTimeQuery = BeforeValidator(_rfc3339)


def _record(r: dict[str, Any]) -> dict[str, Any]:
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
    rows = await _read(request.app.state.service.audit.page, flt, limit=limit + 1, before=cursor)
    more = len(rows) > limit
    rows = rows[:limit]
    return json_response(
        {"items": [_record(r) for r in rows], "next_cursor": rows[-1]["id"] if more else None}
    )


@router.get(
    "/predictions/{prediction_id}",
    response_model=HistoryRecord,
    responses={**ERRORS, 404: {"model": ErrorResponse}},
    summary="One audit record with its inputs and outputs",
)
async def get_prediction(prediction_id: str, request: Request) -> Response:
    row = await _read(request.app.state.service.audit.get, prediction_id[:64])
    if row is None:
        raise APIError(404, f"no prediction with id {prediction_id!r}")
    return json_response(_record(row))
