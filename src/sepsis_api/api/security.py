"""API keys: `Authorization: Bearer KEY` or `X-API-Key: KEY`, compared in constant time."""

from __future__ import annotations

import hmac
from typing import Any

from fastapi import HTTPException, Request, status
from starlette.types import ASGIApp, Receive, Scope, Send

from sepsis_api.api.asgi import headers_of
from sepsis_api.api.errors import error_body, send_json

UNAUTHORIZED = (
    "missing or invalid API key: send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'"
)


def _presented_key(headers: dict[bytes, bytes]) -> bytes | None:
    auth = headers.get(b"authorization")
    if auth:
        scheme, _, token = auth.partition(b" ")
        if scheme.lower() == b"bearer" and token.strip():
            return token.strip()
    return headers.get(b"x-api-key")


# Open without a key: service information and health (/, /healthz, /readyz, /metrics, the
# docs) and what the protocols' probes need open (V2: /v2, /v2/health/*; MLflow: /ping,
# /health, /version; FHIR: its CapabilityStatement and OperationDefinition; CDS Hooks
# discovery /cds-services). Everything that names a model or scores needs a key when keys are
# set; the CDS services take the EHR's JWT instead when issuers are configured
# (``jwt_prefix``, checked by api/protocols/cds_hooks.py).
_PROTECTED_PREFIXES = ("/v1/", "/v2/models", "/fhir/", "/cds-services/")
_PROTECTED_PATHS = frozenset({"/predict", "/invocations"})
_OPEN_PATHS = frozenset({"/fhir/metadata", "/fhir/OperationDefinition/RiskAssessment-predict"})


def is_protected(path: str) -> bool:
    return (path.startswith(_PROTECTED_PREFIXES) or path in _PROTECTED_PATHS) and (
        path not in _OPEN_PATHS
    )


ADMIN_PREFIX = "/v1/admin/"


class RequireAPIKey:
    """Checks the key before anything reads the body, so a caller without a valid key learns
    nothing but 401. The key's id goes to ``scope["state"]["caller"]`` for the audit log."""

    def __init__(
        self,
        app: ASGIApp,
        keys: dict[str, str],
        admin_keys: dict[str, str] | None = None,
        jwt_prefix: str | None = None,
    ) -> None:
        self.app = app
        self.jwt_prefix = jwt_prefix  # paths whose routes verify a JWT instead of a key
        self.admin = [(k.encode(), key_id) for k, key_id in (admin_keys or {}).items()]
        # Ordinary routes need a key only when ordinary keys are configured; admin keys then
        # work there too.
        self.keys = [(k.encode(), key_id) for k, key_id in keys.items()]
        if self.keys:
            self.keys += self.admin

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope["path"] if scope["type"] == "http" else ""
        if is_protected(path) and not (self.jwt_prefix and path.startswith(self.jwt_prefix)):
            state = scope.setdefault("state", {})
            admin = scope["path"].startswith(ADMIN_PREFIX)
            allowed = self.admin if admin else self.keys
            if admin and not self.admin:
                await _deny(send, state, 403, "the admin API is off: set SEPSIS_API_ADMIN_KEYS")
                return
            if not allowed:
                state["caller"] = "anonymous"
            else:
                given = _presented_key(headers_of(scope)) or b""
                found = None
                for key, key_id in allowed:  # always compare against every key
                    if hmac.compare_digest(given, key):
                        found = key_id
                if found is None:
                    await _deny(
                        send,
                        state,
                        401,
                        UNAUTHORIZED + (" (an admin key)" if admin else ""),
                        _protocol_fields(scope["path"]),
                        scope["path"],
                    )
                    return
                state["caller"] = found
        await self.app(scope, receive, send)


def _protocol_fields(path: str) -> dict[str, str]:
    """The refusal also in the protocol's own error shape (V2, MLflow), for their clients."""
    if path.startswith("/v2/"):
        return {"error": UNAUTHORIZED}
    if path == "/invocations":
        return {"error_code": "UNAUTHENTICATED", "message": UNAUTHORIZED}
    return {}


# FHIR: an OperationOutcome alone (a resource may not carry other members).
_FHIR_UNAUTHORIZED = {
    "resourceType": "OperationOutcome",
    "issue": [{"severity": "error", "code": "login", "diagnostics": UNAUTHORIZED}],
}


async def _deny(
    send: Send,
    state: dict[str, Any],
    status: int,
    detail: str,
    protocol: dict[str, str] | None = None,
    path: str = "",
) -> None:
    headers = [(b"www-authenticate", b"Bearer")] if status == 401 else []
    if path.startswith("/fhir/") and status == 401:
        await send_json(send, status, _FHIR_UNAUTHORIZED, headers, b"application/fhir+json")
        return
    body = {**error_body(detail, None, state.get("request_id")), **(protocol or {})}
    await send_json(send, status, body, headers)


async def caller_id(request: Request) -> str:
    """FastAPI dependency: the calling key's id (set by RequireAPIKey), for the audit log."""
    caller: str | None = request.scope.get("state", {}).get("caller")
    if caller is None:  # only reachable if a protected route escaped the middleware
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            detail=UNAUTHORIZED,
            headers={"WWW-Authenticate": "Bearer"},
        )
    return caller
