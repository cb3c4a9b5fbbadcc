"""GET /v1/monitoring/drift: recent estimates against the reference bins in the model card
(monitoring/drift.py computes; this module picks the version, model and window)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from sepsis_api.api.errors import ERRORS, APIError, json_response
from sepsis_api.api.routes.monitoring_query import ModelName, ModelVersion, Since, Until
from sepsis_api.api.routes.predictions import read_off_loop
from sepsis_api.api.security import caller_id
from sepsis_api.ml.store import ArtifactError, registry_for
from sepsis_api.monitoring.drift import DEFAULT_WINDOW, Window, drift_report

router = APIRouter(prefix="/v1", tags=["monitoring"], dependencies=[Depends(caller_id)])


def _field_error(field: str, value: str, expected: str, message: str) -> APIError:
    return APIError(
        422,
        message,
        [
            {
                "field": field,
                "row": None,
                "value": value,
                "expected": expected,
                "message": f"{field}: {message}",
            }
        ],
    )


def version_card(request: Request, version: str | None) -> dict[str, Any]:
    """The card of ``version`` (default: the served one), read from the registry."""
    served = request.app.state.service.predictor.version
    if version is None or version == served.version:
        card: dict[str, Any] = served.card
        return card
    try:
        cards = registry_for(request.app.state.settings).cards()
    except ArtifactError as e:
        raise APIError(503, f"the model registry is unreadable: {e}") from None
    if version not in cards:
        known = ", ".join(cards) or "none"
        raise _field_error(
            "model_version",
            version,
            f"a version in the registry: one of {known}",
            f"unknown model version {version!r}",
        )
    return cards[version]


def model_in(card: dict[str, Any], model: str | None) -> str:
    """``model`` (default: the card's default model), which must be one of the card's."""
    if model is None:
        return str(card["default_model"])
    if model not in card["models"]:
        raise _field_error(
            "model",
            model,
            f"one of {', '.join(card['models'])}",
            f"version {card['version']} has no model {model!r}",
        )
    return model


@router.get(
    "/monitoring/drift",
    responses=ERRORS,
    summary="Drift of recent estimates against the model card's reference bins",
    description=(
        "Per feature the population stability index (PSI) of the window's values against the "
        "training data's decile bins (plus a not-measured bin), the missing and out-of-range "
        "fractions and the mean; the predicted risk's PSI against the out-of-fold "
        "probabilities; the alert rate with its Wilson interval against the card's; alerts per "
        "day. Status per figure: `ok` (PSI < 0.1), `warn` (0.1-0.25), `alert` (>= 0.25), "
        "`insufficient_data` under 500 estimates (PSI on fewer is mostly noise), "
        "`no_reference` for a version trained before cards stored reference bins. "
        f"Default window: the {DEFAULT_WINDOW.days} whole UTC days before the day of `until` "
        "(default now) and that day up to `until`."
    ),
)
async def drift(
    request: Request,
    since: Since = None,
    until: Until = None,
    model_version: ModelVersion = None,
    model: ModelName = None,
) -> Response:
    card = version_card(request, model_version)
    window = Window.recent(card["version"], model_in(card, model), since, until)
    if window.since >= window.until:
        raise _field_error(
            "since",
            window.since.isoformat(),
            f"a date-time before until ({window.until.isoformat()})",
            "the window is empty: since is not before until",
        )
    engine = request.app.state.service.audit.engine
    report = await read_off_loop(drift_report, engine, card, window)
    return json_response(report.as_dict())
