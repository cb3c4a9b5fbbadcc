"""What the protocol adapters share: their own error shape per router, and validation of a
table of patients by the one feature schema (ml/data.validate_frame) into ValidatedPatients."""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Mapping
from typing import Any, TypeVar

import numpy as np
import pandas as pd
from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from sepsis_api.api.errors import APIError
from sepsis_api.api.service import Service, ValidatedPatients
from sepsis_api.ml.data import Batch, DataError, RowError, validate_frame, validate_matrix

T = TypeVar("T")
Render = Callable[[int, str, Mapping[str, str] | None], Response]


class ProtocolError(Exception):
    """A client's mistake (or a refusal) in a protocol route, rendered in its own shape."""

    def __init__(self, status: int, message: str, headers: Mapping[str, str] | None = None):
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers


def error_route(render: Render) -> type[APIRoute]:
    """An APIRoute class whose errors (ours, the service's 503s, FastAPI's own) are rendered
    by ``render`` instead of the app's /v1 handlers (api/errors.py)."""

    class ProtocolRoute(APIRoute):
        def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
            handler = super().get_route_handler()

            async def run(request: Request) -> Response:
                try:
                    return await handler(request)
                except ProtocolError as e:
                    return render(e.status, e.message, e.headers)
                except APIError as e:  # Service: the audit log unavailable (503)
                    return render(e.status, e.detail, e.headers)
                except RequestValidationError as e:
                    return render(400, f"invalid request: {e.errors()}", None)
                except HTTPException as e:
                    return render(e.status_code, str(e.detail), e.headers)

            return run

    return ProtocolRoute


SMALL_BODY_BYTES = 32_768  # parsed on the event loop; a larger body in a worker thread


async def parse_body(parse: Callable[..., T], body: bytes, *args: Any) -> T:
    """``parse(body, *args)``: on the loop for a small body (a thread hop costs more than
    parsing a few patients), in a worker thread for a large one (the loop stays free)."""
    if len(body) <= SMALL_BODY_BYTES:
        return parse(body, *args)
    return await run_in_threadpool(parse, body, *args)


def service(request: Request) -> Service:
    svc: Service = request.app.state.service
    return svc


def validated(
    frame: pd.DataFrame,
    *,
    where: Callable[[RowError], str],
    missing: Callable[[list[str]], str],
    max_rows: int,
) -> ValidatedPatients:
    """The patients of ``frame`` (columns: feature codes or names, optional ID) validated by the
    schema's rules; any invalid value refuses the whole call (400) naming the first problem via
    ``where`` and counting the rest; missing columns are worded by ``missing``."""
    _count(len(frame), max_rows)
    try:
        batch = validate_frame(frame)
    except DataError as e:
        raise ProtocolError(400, missing(e.columns) if e.columns else str(e)) from None
    return _checked(batch, where)


def validated_matrix(
    X: np.ndarray,
    ids: list[str | None] | None,
    *,
    where: Callable[[RowError], str],
    max_rows: int,
) -> ValidatedPatients:
    """``validated`` for a numeric matrix in schema order (ml/data.validate_matrix: the same
    rules without building a table)."""
    _count(len(X), max_rows)
    return _checked(validate_matrix(X, ids), where)


def _count(n: int, max_rows: int) -> None:
    if n > max_rows:
        raise ProtocolError(413, f"{n} patients exceed the batch limit of {max_rows}")
    if n == 0:
        raise ProtocolError(400, "no patients in the request")


def _checked(batch: Batch, where: Callable[[RowError], str]) -> ValidatedPatients:
    if batch.errors:
        more = len(batch.errors) - 1
        rest = f" (and {more} more problem(s); nothing was scored)" if more else ""
        raise ProtocolError(400, where(batch.errors[0]) + rest)
    return ValidatedPatients(batch.X, batch.ids)
