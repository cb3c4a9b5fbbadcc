"""GET /v1/monitoring/feedback: what clinicians did with the CDS Hooks cards (accepted or
overridden), computed by monitoring/feedback.py in a worker thread."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from sepsis_api.api.errors import ERRORS, json_response
from sepsis_api.api.routes.drift import model_in, version_card
from sepsis_api.api.routes.monitoring_query import ModelName, ModelVersion, Since, Until
from sepsis_api.api.routes.predictions import read_off_loop
from sepsis_api.api.security import caller_id
from sepsis_api.monitoring.feedback import feedback_report
from sepsis_api.monitoring.labelled import Selection

router = APIRouter(prefix="/v1", tags=["monitoring"], dependencies=[Depends(caller_id)])


@router.get(
    "/monitoring/feedback",
    responses=ERRORS,
    summary="CDS Hooks cards accepted or overridden, with the share accepted",
    description=(
        "Cards of one model's estimates (default: the served version's default model), each "
        "counted once with its latest feedback (`POST /cds-services/{id}/feedback`): "
        "`accepted`, `overridden`, `acceptance_rate` (accepted / cards, with its 95% Wilson "
        "interval; null without feedback) and `override_reasons` (system, code, display, n), "
        "most frequent first. `since`/`until` pick estimates by their creation time."
    ),
)
async def feedback(
    request: Request,
    since: Since = None,
    until: Until = None,
    model_version: ModelVersion = None,
    model: ModelName = None,
) -> Response:
    card = version_card(request, model_version)
    name = model_in(card, model)
    selection = Selection(card["version"], name, since, until)
    engine = request.app.state.service.audit.engine
    report = await read_off_loop(feedback_report, engine, selection)
    return json_response(
        {
            "model_version": card["version"],
            "model": name,
            "since": None if since is None else since.isoformat(),
            "until": None if until is None else until.isoformat(),
            **report,
        }
    )
