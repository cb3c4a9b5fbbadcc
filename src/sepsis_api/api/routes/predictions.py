"""GET /v1/predictions (the audit history, newest first) and GET /v1/predictions/{id}."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool

from sepsis_api.api.errors import ERRORS, APIError, json_response
from sepsis_api.api.schemas import ErrorResponse, HistoryPage, HistoryRecord
from sepsis_api.api.security import caller_id
from sepsis_api.db.audit import HistoryFilter

router = APIRouter(prefix="/v1", tags=["history"], dependencies=[Depends(caller_id)])


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


async def _read(fn, *args, **kwargs):
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
    since: Annotated[datetime | None, Query(description="Created at or after (ISO 8601).")] = None,
    until: Annotated[datetime | None, Query(description="Created before (ISO 8601).")] = None,
) -> Response:
    for name, value in (("since", since), ("until", until)):
        if value is not None and value.tzinfo is None:
            raise APIError(
                422,
                f"{name} needs a time zone",
                [
                    {
                        "field": name,
                        "row": None,
                        "value": value.isoformat(),
                        "expected": "an ISO 8601 time with a zone, e.g. 2026-11-26T12:00:00Z",
                        "message": f"{name}: no time zone",
                    }
                ],
            )
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
