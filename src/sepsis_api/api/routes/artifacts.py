"""GET /v1/model-files/plots/{name}: the served version's report plots (PNG), for the web UI.

Read-only and narrow on purpose: only PNG files under the version's ``plots/`` directory that
the model card lists, re-checked against the card's SHA-256 before they are sent.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi import Path as PathParam
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from sepsis_api.api.errors import ERRORS, APIError
from sepsis_api.api.schemas import ErrorResponse
from sepsis_api.api.security import caller_id

router = APIRouter(prefix="/v1", tags=["models"], dependencies=[Depends(caller_id)])

_NAME = re.compile(r"[A-Za-z0-9_.-]{1,100}\.png")


def _read_verified(path: Path, digest: str) -> bytes | None:
    """The file's bytes when they still match the card's digest, else None."""
    try:
        data = path.read_bytes()
    except OSError:
        return None
    return data if hashlib.sha256(data).hexdigest() == digest else None


@router.get(
    "/model-files/plots/{name}",
    response_class=Response,
    responses={
        200: {"content": {"image/png": {}}, "description": "The PNG file."},
        **{k: v for k, v in ERRORS.items() if k in (401, 503)},
        404: {"model": ErrorResponse, "description": "No such plot in the served version."},
    },
    summary="A plot (PNG) from the served model version's report, e.g. roc.png",
)
async def model_plot(
    name: Annotated[str, PathParam(max_length=104, examples=["roc.png", "calibration.png"])],
    request: Request,
) -> Response:
    """Plots listed in the model card's ``files`` under ``plots/``; anything else is a 404."""
    version = request.app.state.service.predictor.version
    rel = f"plots/{name}"
    listed: dict[str, str] = version.card.get("files", {})
    digest = listed.get(rel) if _NAME.fullmatch(name) else None
    if digest is None:
        plots = sorted(k.removeprefix("plots/") for k in listed if k.startswith("plots/"))
        raise APIError(
            404,
            f"no plot {name!r} in model version {version.version}; "
            f"available: {', '.join(plots) or 'none'}",
        )
    data = await run_in_threadpool(_read_verified, version.path / rel, digest)
    if data is None:
        raise APIError(
            404,
            f"plot {name!r} of model version {version.version} is missing or "
            "does not match its SHA-256 in the model card",
        )
    return Response(
        data,
        media_type="image/png",
        headers={"Cache-Control": "private, max-age=3600", "ETag": f'"{digest}"'},
    )
