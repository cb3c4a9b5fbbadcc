"""Small helpers for the service's plain-ASGI layers (middleware, key check, lean path)."""

from __future__ import annotations

from starlette.types import Message, Receive, Scope


def headers_of(scope: Scope) -> dict[bytes, bytes]:
    """The request's headers by (lower-case) name; of a repeated header the first occurrence
    wins, as with Starlette's ``Headers.get``, so every layer reads what the route reads."""
    return dict(reversed(scope["headers"]))


def replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that hands out an already read body once, then defers to ``receive``."""
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed
