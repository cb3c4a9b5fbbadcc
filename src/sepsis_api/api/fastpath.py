"""A lean ASGI path for the hottest request: a well-formed `POST /v1/predict`.

The FastAPI route stays the definition (OpenAPI, validation errors, every edge case). This
layer answers only requests it can answer identically — JSON body that validates, known query
values — with the same Patient model and the same reply builder, skipping the framework's
routing and dependency machinery. Anything else is handed, body and all, to the app.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import parse_qsl

from pydantic import ValidationError
from starlette.types import ASGIApp, Receive, Scope, Send

from sepsis_api.api.asgi import headers_of, replay
from sepsis_api.api.errors import INTERNAL_ERROR, APIError, error_body, send_json
from sepsis_api.api.replies import predict_reply
from sepsis_api.api.schemas import Patient

log = logging.getLogger("sepsis_api")

PATH = "/v1/predict"
ANSWERED_BY = "answered_by"  # scope["state"] key the lean path sets when it answers
_BOOLS = {"true": True, "false": False, "1": True, "0": False}


class _Route:
    path = PATH  # what the metrics layer reads to label a request by route


class PredictFastPath:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] != PATH:
            await self.app(scope, receive, send)
            return
        headers = headers_of(scope)
        ctype = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
        query = self._query(scope.get("query_string", b""))
        if ctype != b"application/json" or query is None:
            await self.app(scope, receive, send)
            return
        body, disconnected = await self._read(receive)
        try:
            patient = Patient.model_validate_json(body)
        except ValidationError:
            patient = None
        if patient is None or disconnected:
            await self.app(scope, replay(body, receive), send)
            return
        state = scope["state"]
        state[ANSWERED_BY] = "lean"  # read by tests, to know which path answered
        scope["route"] = _Route
        svc = scope["app"].state.service
        try:
            reply = await predict_reply(
                svc, patient, query["model"], query["explain"], state["caller"], state["request_id"]
            )
            state["model_version"] = reply["predictions"][0]["model_version"]
            status, content, extra = 200, reply, []
        except APIError as e:
            status = e.status
            content = error_body(e.detail, e.errors, state["request_id"])
            extra = [(k.lower().encode(), v.encode()) for k, v in (e.headers or {}).items()]
        except Exception:
            log.exception("unhandled error in POST %s (request %s)", PATH, state["request_id"])
            status, extra = 500, []
            content = error_body(INTERNAL_ERROR, None, state["request_id"])
        await send_json(send, status, content, extra)

    @staticmethod
    def _query(raw: bytes) -> dict[str, Any] | None:
        """model and explain, or None when anything would need the framework's handling."""
        out: dict[str, Any] = {"model": None, "explain": False}
        for key, value in parse_qsl(raw.decode("latin-1"), keep_blank_values=True):
            if key == "model" and out["model"] is None and value:
                out["model"] = value
            elif key == "explain" and value.lower() in _BOOLS:
                out["explain"] = _BOOLS[value.lower()]
            else:
                return None
        return out

    @staticmethod
    async def _read(receive: Receive) -> tuple[bytes, bool]:
        chunks: list[bytes] = []
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                return b"".join(chunks), True
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        return b"".join(chunks), False
