"""One pure-ASGI layer for every request: request id, body-size limit, metrics."""

from __future__ import annotations

import itertools
import logging
import os
import re
import time
from datetime import UTC, datetime
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sepsis_api.api.access_log import AccessLog
from sepsis_api.api.asgi import headers_of, replay
from sepsis_api.api.errors import INTERNAL_ERROR, ErrorShapes
from sepsis_api.api.metrics import Metrics

log = logging.getLogger("sepsis_api")
_SAFE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
# Generated request ids: a random per-process prefix and a counter (no syscall per request).
_PREFIX = os.urandom(6).hex()
_COUNTER = itertools.count(1)


class RequestContext:
    def __init__(
        self,
        app: ASGIApp,
        metrics: Metrics,
        max_body_bytes: int,
        access_log: AccessLog | None,
        shapes: ErrorShapes | None = None,
    ) -> None:
        self.app, self.metrics, self.max_body = app, metrics, max_body_bytes
        self.shapes = shapes or ErrorShapes()
        self.access_log = access_log
        self._series: dict[tuple[str, str, int], tuple[Any, Any]] = {}  # labelled metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = headers_of(scope)
        given = headers.get(b"x-request-id", b"").decode("latin-1")
        request_id = given if _SAFE_ID.match(given) else f"{_PREFIX}-{next(_COUNTER):x}"
        scope.setdefault("state", {})["request_id"] = request_id
        start = time.perf_counter()
        status, status_sent = 500, False

        async def send_wrapper(message: Message) -> None:
            nonlocal status, status_sent
            if message["type"] == "http.response.start":
                status, status_sent = message["status"], True
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            await self._dispatch(scope, receive, send_wrapper, headers, request_id)
        except Exception:
            if status_sent:
                raise  # the framework has answered 500 already; the server logs the stack
            log.exception(
                "unhandled error in %s %s (request %s)", scope["method"], scope["path"], request_id
            )
            status = 500
            await self.shapes.send(send_wrapper, scope["path"], 500, INTERNAL_ERROR, request_id)
        finally:
            self._observe(scope, status, time.perf_counter() - start, request_id)

    async def _dispatch(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        headers: dict[bytes, bytes],
        request_id: str,
    ) -> None:
        limit = self.max_body
        try:
            length = int(headers.get(b"content-length", b"0") or 0)
        except ValueError:
            length = 0
        if length > limit:
            await self._too_large(scope, send, request_id)
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
                await self._too_large(scope, send, request_id)
            else:
                await self.app(scope, replay(bytes(body), receive), send)
        else:
            await self.app(scope, receive, send)

    def _observe(self, scope: Scope, status: int, elapsed: float, request_id: str) -> None:
        route: Any = scope.get("route")
        path = getattr(route, "path", "unmatched")
        key = (scope["method"], path, status)
        series = self._series.get(key)
        if series is None:
            series = self._series[key] = (
                self.metrics.requests.labels(scope["method"], path, str(status)),
                self.metrics.latency.labels(scope["method"], path),
            )
        series[0].inc()
        series[1].observe(elapsed)
        if self.access_log is not None:
            state = scope["state"]
            # One JSON line a request; never keys (only their id), never patient values.
            self.access_log.write(
                {
                    "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
                    "request_id": request_id,
                    "method": scope["method"],
                    "route": path,
                    "status": status,
                    "latency_ms": round(elapsed * 1000, 3),
                    "caller": state.get("caller"),
                    "model_version": state.get("model_version"),
                }
            )

    async def _too_large(self, scope: Scope, send: Send, request_id: str) -> None:
        detail = f"request body larger than the limit of {self.max_body} bytes"
        await self.shapes.send(send, scope["path"], 413, detail, request_id)
