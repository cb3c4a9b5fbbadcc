"""Service information, liveness, readiness, the feature schema and Prometheus metrics."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool

from sepsis_api import __version__
from sepsis_api.api.errors import json_response
from sepsis_api.api.schemas import FeaturesResponse
from sepsis_api.api.security import caller_id
from sepsis_api.db.group_commit import WriterStopped
from sepsis_api.schema import FEATURES, NOT_A_DEVICE, PROVENANCE

router = APIRouter(tags=["service"])

_FEATURES = {
    "features": [
        {
            "code": f.code,
            "name": f.name,
            "description": f.description,
            "unit": f.unit,
            "minimum": f.minimum,
            "maximum": f.maximum,
            "choices": list(f.choices) if f.choices else None,
            "zero_means_missing": f.zero_means_missing,
            "integer": f.integer,
            "rule": f.rule,
        }
        for f in FEATURES
    ],
    "provenance": PROVENANCE,
    "disclaimer": NOT_A_DEVICE,
}


@router.get("/", summary="Service name, version, served model and links")
async def root(request: Request) -> dict[str, Any]:
    p = request.app.state.service.predictor
    return {
        "service": "Sepsis Risk API",
        "version": __version__,
        "model_version": p.version.version,
        "default_model": p.version.default_model,
        "models": list(p.models),
        "auth": bool(request.app.state.api_keys),
        "disclaimer": NOT_A_DEVICE,
        "links": {
            "docs": "/docs",
            "openapi": "/openapi.json",
            "features": "/v1/features",
            "models": "/v1/models",
            "predict": "/v1/predict",
            "batch": "/v1/predict/batch",
            "history": "/v1/predictions",
            "health": "/healthz",
            "ready": "/readyz",
            "metrics": "/metrics",
            "open_inference_v2": "/v2",
            "mlflow_invocations": "/invocations",
            "cds_hooks_discovery": "/cds-services",
            "fhir_r4": "/fhir",  # the FHIR base URL; its CapabilityStatement is /fhir/metadata
        },
    }


@router.get("/healthz", summary="Liveness: the process answers")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="Readiness: model loaded, audit writer thread running, audit database answering",
    responses={503: {"description": "Not ready; `reason` says why."}},
)
async def readyz(request: Request) -> Response:
    svc = getattr(request.app.state, "service", None)
    if svc is None:
        return json_response({"status": "not ready", "reason": "model not loaded"}, 503)
    if not svc.writer.alive:
        reason = f"{WriterStopped()}; restart the server"
        return json_response({"status": "not ready", "reason": reason}, 503)
    try:
        await run_in_threadpool(svc.audit.ping)
    except SQLAlchemyError as e:
        return json_response(
            {"status": "not ready", "reason": f"audit database unreachable ({type(e).__name__})"},
            503,
        )
    return json_response({"status": "ready", "model_version": svc.predictor.version.version})


@router.get(
    "/v1/features",
    response_model=FeaturesResponse,
    tags=["features"],
    dependencies=[Depends(caller_id)],
    summary="The input features: codes, names, units, valid ranges, missing rule",
)
async def features() -> dict[str, Any]:
    return _FEATURES


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics(request: Request) -> Response:
    return Response(request.app.state.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)
