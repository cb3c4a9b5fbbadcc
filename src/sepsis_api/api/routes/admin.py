"""POST /v1/admin/activate: switch the served model version (admin keys only)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool

from sepsis_api.api.errors import JSON_ERRORS, APIError
from sepsis_api.api.schemas import ErrorResponse
from sepsis_api.api.security import caller_id
from sepsis_api.api.service import Service
from sepsis_api.ml.store import ArtifactError, registry_for

router = APIRouter(prefix="/v1/admin", tags=["admin"])


class ActivateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    version: str = Field(min_length=1, max_length=64, examples=["20261202-93f42d15"])


class ActivateResponse(BaseModel):
    version: str
    default_model: str
    previous: str


@router.post(
    "/activate",
    response_model=ActivateResponse,
    responses={**JSON_ERRORS, 403: {"model": ErrorResponse}},
    summary="Serve another trained version (every replica follows within seconds)",
)
async def activate(
    body: ActivateRequest, request: Request, caller: str = Depends(caller_id)
) -> dict[str, Any]:
    """Verifies the version's files, records it as the active version in the database (which
    every replica polls), and switches this server at once. Requests in flight finish on the
    version they started with."""
    svc: Service = request.app.state.service
    registry = registry_for(request.app.state.settings)
    previous = svc.predictor.version.version
    try:
        loaded = await svc.switch_to(registry, body.version)
    except ArtifactError as e:
        raise APIError(
            422,
            str(e),
            [
                {
                    "field": "version",
                    "row": None,
                    "value": body.version,
                    "expected": "a trained version in the registry",
                    "message": f"version: {e}",
                }
            ],
        ) from None
    try:
        await run_in_threadpool(svc.audit.set_active_version, body.version, caller)
    except SQLAlchemyError as e:
        raise APIError(
            503,
            f"the database is unavailable; this server switched, other "
            f"replicas did not ({type(e).__name__})",
        ) from None
    return {
        "version": loaded.version.version,
        "default_model": loaded.version.default_model,
        "previous": previous,
    }
