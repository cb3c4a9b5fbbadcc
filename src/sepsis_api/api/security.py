"""API keys: `Authorization: Bearer KEY` or `X-API-Key: KEY`, compared in constant time."""

from __future__ import annotations

import hmac

from fastapi import HTTPException, Request, status
from starlette.types import ASGIApp, Receive, Scope, Send

from sepsis_api.api.asgi import headers_of
from sepsis_api.api.errors import ErrorShapes

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
        shapes: ErrorShapes | None = None,
        jwt_prefix: str | None = None,
    ) -> None:
        self.app, self.shapes = app, shapes or ErrorShapes()
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
                await self._deny(
                    scope, 403, "the admin API is off: set SEPSIS_API_ADMIN_KEYS", send
                )
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
                    detail = UNAUTHORIZED + (" (an admin key)" if admin else "")
                    await self._deny(scope, 401, detail, send)
                    return
                state["caller"] = found
        await self.app(scope, receive, send)

    async def _deny(self, scope: Scope, status: int, detail: str, send: Send) -> None:
        """The refusal in the shape the path's callers read (a protocol's own, or /v1's)."""
        headers = [(b"www-authenticate", b"Bearer")] if status == 401 else []
        request_id = scope["state"].get("request_id")
        await self.shapes.send(send, scope["path"], status, detail, request_id, headers)


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
