"""API keys: `Authorization: Bearer KEY` or `X-API-Key: KEY`, compared in constant time."""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path

from fastapi import HTTPException, Request, status


def parse_keys(spec: str | None, keys_file: Path | None) -> dict[str, str]:
    """key -> key id. An entry is KEY or ID:KEY; without an ID, a digest prefix stands in."""
    entries = [e.strip() for e in (spec or "").split(",")]
    if keys_file is not None:
        entries += [
            line.strip() for line in keys_file.read_text(encoding="utf-8").splitlines()
            if line.strip() and not line.lstrip().startswith("#")
        ]
    keys: dict[str, str] = {}
    for entry in filter(None, entries):
        key_id, sep, key = entry.partition(":")
        if not sep:
            key, key_id = entry, "key-" + hashlib.sha256(entry.encode()).hexdigest()[:8]
        if len(key) < 16:
            raise ValueError(f"API key {key_id!r} is shorter than 16 characters")
        keys[key] = key_id
    return keys


def _presented_key(request: Request) -> str | None:
    auth = request.headers.get("authorization")
    if auth:
        scheme, _, token = auth.partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
    return request.headers.get("x-api-key")


def caller_id(request: Request) -> str:
    """FastAPI dependency: the calling key's id, or 'anonymous' when auth is off; else 401."""
    keys: dict[str, str] = request.app.state.api_keys
    if not keys:
        return "anonymous"
    presented = _presented_key(request)
    found = None
    if presented:
        given = presented.encode()
        for key, key_id in keys.items():  # always compare against every key
            if hmac.compare_digest(given, key.encode()):
                found = key_id
    if found is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            detail="missing or invalid API key: send 'Authorization: Bearer <key>' or "
                   "'X-API-Key: <key>'",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return found
