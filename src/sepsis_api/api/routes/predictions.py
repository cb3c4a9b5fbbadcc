"""The audit history: GET /v1/predictions (newest first) and GET /v1/predictions/{id} (with
its current outcome; routes/outcomes.py records them)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any, Literal, TypeVar

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from pydantic import BeforeValidator
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool

from sepsis_api.api.errors import (
    ERRORS,
    APIError,
    json_response,
)
from sepsis_api.api.schemas import (
    RFC3339_EXPECTED,
    ErrorResponse,
    HistoryPage,
    HistoryRecord,
    no_nul,
    rfc3339,
)
from sepsis_api.api.security import caller_id
from sepsis_api.db.audit import HistoryFilter
from sepsis_api.db.outcomes import OutcomeLog

router = APIRouter(prefix="/v1", tags=["history"], dependencies=[Depends(caller_id)])
T = TypeVar("T")

__all__ = ["RFC3339_EXPECTED", "DateTimeQuery", "TextQuery", "router"]

DateTimeQuery = BeforeValidator(rfc3339)
TextQuery = BeforeValidator(no_nul)  # a filter the database could not compare: a 422
KNOWN_PREDICTION = "the prediction_id of a recorded estimate"


def iso_time(t: datetime | None) -> str | None:
    return None if t is None else t.isoformat()


def outcome_reply(r: dict[str, Any], *, current: bool = True) -> dict[str, Any]:
    reply = {
        "prediction_id": r["prediction_id"],
        "revision": r["revision"],
        "outcome": r["outcome"],
        "observed_at": iso_time(r["observed_at"]),
        "source": r["source"],
        "note": r["note"],
        "recorded_at": iso_time(r["recorded_at"]),
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
        "outcome": None if outcome is None else outcome_reply(outcome),
    }


async def read_off_loop(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    try:
        return await run_in_threadpool(fn, *args, **kwargs)
    except SQLAlchemyError as e:
        raise APIError(
            503,
            f"the audit database is unavailable ({type(e).__name__})",
            headers={"Retry-After": "5"},
        ) from None


async def write_off_loop(fn: Callable[..., T], *args: Any) -> T:
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


def outcome_log(request: Request) -> OutcomeLog:
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
        str | None,
        TextQuery,
        Query(max_length=64, description="`next_cursor` of the previous page."),
    ] = None,
    patient_id: Annotated[str | None, TextQuery, Query(max_length=128)] = None,
    label: Annotated[Literal["Positive", "Negative"] | None, Query()] = None,
    model: Annotated[str | None, TextQuery, Query(max_length=64, description="Model name.")] = None,
    model_version: Annotated[str | None, TextQuery, Query(max_length=64)] = None,
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
    audit, outcomes = request.app.state.service.audit, outcome_log(request)

    def page() -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]:
        rows = audit.page(flt, limit=limit + 1, before=cursor)
        return rows, outcomes.current([r["id"] for r in rows[:limit]])

    rows, current = await read_off_loop(page)
    more = len(rows) > limit
    rows = rows[:limit]
    return json_response(
        {
            "items": [_record(r, current.get(r["id"])) for r in rows],
            "next_cursor": rows[-1]["id"] if more else None,
        }
    )


def unknown_prediction(prediction_id: str) -> APIError:
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
    audit, outcomes = request.app.state.service.audit, outcome_log(request)

    def one() -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
        if "\x00" in prediction_id:  # never an id (they are generated); PostgreSQL refuses NUL
            return None, None
        row = audit.get(prediction_id[:64])
        return row, outcomes.current([row["id"]]).get(row["id"]) if row else None

    row, outcome = await read_off_loop(one)
    if row is None:
        raise APIError(404, f"no prediction with id {prediction_id!r}")
    return json_response(_record(row, outcome))


# -- outcomes ---------------------------------------------------------------------------------
