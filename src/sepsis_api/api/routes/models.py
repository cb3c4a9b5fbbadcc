"""GET /v1/models and GET /v1/models/{name_or_version}: what is served, with its card."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request

from sepsis_api.api.errors import ERRORS, APIError
from sepsis_api.api.schemas import ErrorResponse, ModelDetail, ModelsResponse
from sepsis_api.api.security import caller_id
from sepsis_api.api.service import model_error
from sepsis_api.ml.scoring import Predictor, UnknownModel, resolve

router = APIRouter(prefix="/v1", tags=["models"], dependencies=[Depends(caller_id)])


def summary(p: Predictor, name: str) -> dict[str, Any]:
    card = p.version.model_card(name)
    return {
        "name": name,
        "display_name": card["display_name"],
        "version": p.version.version,
        "default": name == p.version.default_model,
        "calibration": card["calibration"],
        "threshold": card["threshold"],
        "risk_bands": card["risk_bands"],
        "metrics": card["metrics"],
        "operating_point": card["operating_point"],
    }


@router.get(
    "/models",
    response_model=ModelsResponse,
    responses=ERRORS,
    summary="The served models with their metrics, thresholds and bands",
)
async def list_models(request: Request) -> dict[str, Any]:
    p: Predictor = request.app.state.service.predictor
    return {
        "version": p.version.version,
        "default_model": p.version.default_model,
        "models": [summary(p, n) for n in p.models],
    }


@router.get(
    "/models/{name_or_version}",
    response_model=ModelDetail,
    responses={**ERRORS, 404: {"model": ErrorResponse}},
    summary="One model (or the served version's default) with the full model card",
)
async def get_model(
    name_or_version: Annotated[str, Path(examples=["random_forest", "logistic_regression"])],
    request: Request,
) -> dict[str, Any]:
    p: Predictor = request.app.state.service.predictor
    try:
        [served] = resolve(name_or_version, p, allow_all=False)
    except UnknownModel as e:
        raise APIError(404, f"{e}", [model_error(e)]) from None
    return {**summary(p, served.name), "card": p.version.card}
