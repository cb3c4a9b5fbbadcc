"""POST /predict: the case study's own request and reply, so its front end works unchanged."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request

from sepsis_api.api.errors import JSON_ERRORS, APIError, require_json
from sepsis_api.api.schemas import CompatRequest, CompatResponse, inputs_matrix
from sepsis_api.api.security import caller_id
from sepsis_api.api.service import Service
from sepsis_api.schema import FEATURES

router = APIRouter(tags=["compatibility"])
CASE_STUDY_MODELS = ("logistic_regression", "random_forest")


@router.post(
    "/predict",
    response_model=CompatResponse,
    responses=JSON_ERRORS,
    dependencies=[Depends(require_json)],
    summary="Case-study compatible prediction (logistic regression and random forest)",
)
async def predict_compat(
    body: CompatRequest,
    request: Request,
    caller: str = Depends(caller_id),
) -> dict[str, Any]:
    svc: Service = request.app.state.service
    missing = [n for n in CASE_STUDY_MODELS if n not in svc.predictor.models]
    if missing:
        raise APIError(503, f"the served version has no {', '.join(missing)} model")
    models = [svc.predictor.models[n] for n in CASE_STUDY_MODELS]
    values = {f.code: getattr(body, f.name) for f in FEATURES}
    rows = await svc.predict_one(
        inputs_matrix(values),
        values,
        None,
        models,
        explain=False,
        caller=caller,
        request_id=request.state.request_id,
        source="compat",
    )
    request.state.model_version = rows[0]["model_version"]
    out: dict[str, Any] = {}
    for r in rows:
        p = r["probability"]
        out[f"{r['model_name']}_prediction"] = r["label"]
        out[f"{r['model_name']}_probability"] = [[1.0 - p, p]]
    return out
