"""Client mistakes become 4xx replies that name the field, the value and what was expected."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from pydantic import ValidationError
from starlette.exceptions import HTTPException
from starlette.types import Send

from sepsis_api.api.schemas import ErrorResponse
from sepsis_api.schema import FEATURES, feature_for

if TYPE_CHECKING:
    from pydantic_core import ErrorDetails

log = logging.getLogger("sepsis_api")

_RANGE_ERRORS = {"greater_than_equal", "less_than_equal", "multiple_of"}  # pydantic-core
_KNOWN_FIELDS = ", ".join(f"{f.code}/{f.name}" for f in FEATURES)


# The error replies of the OpenAPI document, shared by every route.
ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorResponse, "description": "The body could not be read (not UTF-8 JSON)."},
    401: {"model": ErrorResponse, "description": "Missing or invalid API key."},
    422: {
        "model": ErrorResponse,
        "description": "Invalid input: each error names the field, "
        "the value and what was expected.",
    },
    503: {"model": ErrorResponse, "description": "Audit database unavailable; nothing returned."},
}
BATCH_ERRORS: dict[int | str, dict[str, Any]] = {
    **ERRORS,
    413: {"model": ErrorResponse, "description": "Too many rows or bytes."},
    415: {"model": ErrorResponse},
}
JSON_ERRORS: dict[int | str, dict[str, Any]] = {
    **ERRORS,
    415: {"model": ErrorResponse, "description": "The body is not JSON."},
}


class APIError(Exception):
    """An error with a status, a summary and optional per-field errors."""

    def __init__(
        self,
        status: int,
        detail: str,
        errors: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.status, self.detail, self.errors, self.headers = status, detail, errors or [], headers


def _expected(err: ErrorDetails, field: str | None) -> str:
    feature = feature_for(field) if field else None
    kind = err["type"]
    if kind in _RANGE_ERRORS and feature is not None:
        return feature.rule
    if kind == "missing":
        return "a value (required)" + (f": {feature.rule}" if feature else "")
    if kind == "extra_forbidden":
        return f"no such field; known fields: ID, {_KNOWN_FIELDS}"
    if kind in ("float_type", "float_parsing", "int_type"):
        return "a number" + (f": {feature.rule}" if feature else "")
    if kind == "finite_number":
        return "a finite number (NaN and Infinity are not allowed)"
    if kind in ("model_attributes_type", "dict_type", "model_type"):
        return "a JSON object"
    if kind == "list_type":
        return "a JSON array"
    if kind == "json_invalid":
        return "a valid JSON document"
    if kind == "too_short":
        return "at least one item"
    if kind == "bool_parsing":
        return "a boolean: true or false"
    return err["msg"].removeprefix("Input should be ").removeprefix("Value error, ")


def field_errors(
    errors: list[ErrorDetails], *, strip: tuple[str, ...] = ("body", "query", "path", "header")
) -> list[dict[str, Any]]:
    out = []
    for err in errors:
        loc = [p for p in err.get("loc", ()) if p not in strip]
        if err["type"] == "json_invalid":
            loc = []  # its location is a character offset into the text, not a field
        row = None
        if len(loc) >= 2 and loc[0] == "patients" and isinstance(loc[1], int):
            row, loc = loc[1], loc[2:]
        field = ".".join(str(p) for p in loc) or None
        value = err.get("input") if err["type"] != "missing" else None
        if isinstance(value, float) and value != value:  # NaN is not JSON
            value = "NaN"
        elif isinstance(value, float) and value in (float("inf"), float("-inf")):
            value = "Infinity" if value > 0 else "-Infinity"
        elif isinstance(value, bytes) or (isinstance(value, dict | list) and not loc):
            value = None  # the whole body; echoing it back helps nobody
        msg = err["msg"].removeprefix("Value error, ")
        feature = feature_for(str(loc[-1])) if loc else None
        if err["type"] in _RANGE_ERRORS and feature is not None and isinstance(value, float | int):
            msg = feature.check(float(value)) or msg  # the schema's words for its own rule
        where = f"{field}" if field else "body"
        if row is not None:
            where = f"patients[{row}].{field}" if field else f"patients[{row}]"
        out.append(
            {
                "field": field,
                "row": row,
                "value": value,
                "expected": _expected(err, field),
                "message": f"{where}: {msg}",
            }
        )
    return out


def _request_id(request: Request) -> str | None:
    request_id: str | None = request.scope.get("state", {}).get("request_id")
    return request_id


INTERNAL_ERROR = "internal server error; quote the request_id when reporting it"


def dump_json(content: Any) -> bytes:
    try:
        return orjson.dumps(content)
    except TypeError:  # e.g. a lone surrogate echoed from a client's field name
        return json.dumps(content, ensure_ascii=True, default=str).encode()


def error_body(
    detail: str, errors: list[dict[str, Any]] | None, request_id: str | None
) -> dict[str, Any]:
    """The one shape of every error reply (ErrorResponse)."""
    return {"detail": detail, "errors": errors or [], "request_id": request_id}


@dataclass(frozen=True, slots=True)
class ErrorShape:
    """A protocol's error reply: its body for (status, message), and its media type."""

    body: Callable[[int, str], dict[str, Any]]
    content_type: str = "application/json"


class ErrorShapes:
    """Which error reply the callers of a path understand: under a protocol's roots (``/v2``,
    ``/invocations``...) that protocol's own shape, ErrorResponse everywhere else. Used by the
    layers that answer before any route does (size limit, key check, unknown paths)."""

    def __init__(self, shapes: Mapping[str, ErrorShape] | None = None) -> None:
        self._shapes = dict(shapes or {})

    def shape_for(self, path: str) -> ErrorShape | None:
        for root, shape in self._shapes.items():
            if path == root or path.startswith(root + "/"):
                return shape
        return None

    def reply(
        self, path: str, status: int, detail: str, request_id: str | None
    ) -> tuple[dict[str, Any], str]:
        """(body, content type) of an error reply to ``path``."""
        shape = self.shape_for(path)
        if shape is None:
            return error_body(detail, None, request_id), "application/json"
        return shape.body(status, detail), shape.content_type

    async def send(
        self,
        send: Send,
        path: str,
        status: int,
        detail: str,
        request_id: str | None,
        headers: list[tuple[bytes, bytes]] | None = None,
    ) -> None:
        """The error reply from plain ASGI code."""
        body, content_type = self.reply(path, status, detail, request_id)
        await send_json(send, status, body, headers, content_type.encode())


async def send_json(
    send: Send,
    status: int,
    content: Any,
    headers: list[tuple[bytes, bytes]] | None = None,
    content_type: bytes = b"application/json",
) -> None:
    """A whole JSON reply from plain ASGI code (middleware and the lean predict path)."""
    body = dump_json(content)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", content_type),
                (b"content-length", str(len(body)).encode()),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def json_response(
    content: Any, status: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    """JSON via orjson without a second validation pass (replies are built from typed data)."""
    return Response(
        dump_json(content), status_code=status, headers=headers, media_type="application/json"
    )


def error_response(
    request: Request,
    status: int,
    detail: str,
    errors: list[dict[str, Any]] | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    return json_response(error_body(detail, errors, _request_id(request)), status, headers)


async def require_json(request: Request) -> None:
    """Dependency for JSON-body routes: anything but JSON is a 415, not a confusing 422."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != "application/json" and not ctype.endswith("+json"):
        raise APIError(
            415, f"unsupported content type {ctype or '(none)'!r}; send application/json"
        )


def install(app: FastAPI, shapes: ErrorShapes) -> None:
    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> Response:
        errors = field_errors(list(exc.errors()))
        summary = "; ".join(e["message"] for e in errors[:5])
        return error_response(request, 422, f"invalid request: {summary}", errors)

    @app.exception_handler(ValidationError)
    async def _pydantic(request: Request, exc: ValidationError) -> Response:
        errors = field_errors(list(exc.errors()))
        summary = "; ".join(e["message"] for e in errors[:5])
        return error_response(request, 422, f"invalid request: {summary}", errors)

    @app.exception_handler(APIError)
    async def _api(request: Request, exc: APIError) -> Response:
        return error_response(request, exc.status, exc.detail, exc.errors, exc.headers)

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> Response:
        detail = str(exc.detail)
        if exc.status_code == 400 and "parsing the body" in detail:
            detail = "the body could not be read: send UTF-8 encoded JSON"
        if exc.status_code == 404 and detail == "Not Found":
            detail = f"no such path: {request.url.path}"
        body, content_type = shapes.reply(
            request.url.path, exc.status_code, detail, _request_id(request)
        )
        return Response(dump_json(body), exc.status_code, exc.headers, media_type=content_type)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        log.exception(
            "unhandled error in %s %s (request %s)",
            request.method,
            request.url.path,
            _request_id(request),
        )
        return error_response(request, 500, INTERNAL_ERROR)
