"""One pure-ASGI layer for every request: request id, body-size limit, metrics."""

from __future__ import annotations

import itertools
import logging
import os
import re
import time
from datetime import UTC, datetime
from typing import Any

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sepsis_api.api.errors import error_body, send_json
from sepsis_api.api.metrics import Metrics

access_log = logging.getLogger("sepsis_api.access")
_SAFE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
# Generated request ids: a random per-process prefix and a counter (no syscall per request).
_PREFIX = os.urandom(6).hex()
_COUNTER = itertools.count(1)


class RequestContext:
    def __init__(self, app: ASGIApp, metrics: Metrics, max_body_bytes: int) -> None:
        self.app, self.metrics, self.max_body = app, metrics, max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        given = headers.get(b"x-request-id", b"").decode("latin-1")
        request_id = given if _SAFE_ID.match(given) else f"{_PREFIX}-{next(_COUNTER):x}"
        scope.setdefault("state", {})["request_id"] = request_id
        start = time.perf_counter()
        status = 500
        limit = self.max_body

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"],
                                      (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            length = int(headers.get(b"content-length", b"0") or 0)
        except ValueError:
            length = 0
        if length > limit:
            await self._too_large(send_wrapper, request_id)
            status = 413
        elif b"content-length" not in headers and scope["method"] in ("POST", "PUT", "PATCH"):
            # A streamed body: read it here (up to the limit) so an oversize one is a clean 413.
            body, more, too_big = bytearray(), True, False
            while more:
                message = await receive()
                if message["type"] != "http.request":
                    break
                body += message.get("body", b"")
                more = message.get("more_body", False)
                too_big = len(body) > limit
                if too_big:
                    break
            if too_big:
                await self._too_large(send_wrapper, request_id)
                status = 413
            else:
                replayed = False

                async def replay() -> Message:
                    nonlocal replayed
                    if not replayed:
                        replayed = True
                        return {"type": "http.request", "body": bytes(body), "more_body": False}
                    return await receive()

                await self.app(scope, replay, send_wrapper)
        else:
            await self.app(scope, receive, send_wrapper)
        route: Any = scope.get("route")
        path = getattr(route, "path", "unmatched")
        elapsed = time.perf_counter() - start
        self.metrics.requests.labels(scope["method"], path, str(status)).inc()
        self.metrics.latency.labels(scope["method"], path).observe(elapsed)
        if access_log.isEnabledFor(logging.INFO):
            state = scope["state"]
            # One JSON line a request; never keys (only their id), never patient values.
            access_log.info(orjson.dumps({
                "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
                "request_id": request_id, "method": scope["method"], "route": path,
                "status": status, "latency_ms": round(elapsed * 1000, 3),
                "caller": state.get("caller"), "model_version": state.get("model_version"),
            }).decode())

    async def _too_large(self, send: Send, request_id: str) -> None:
        detail = f"request body larger than the limit of {self.max_body} bytes"
        await send_json(send, 413, error_body(detail, None, request_id))
