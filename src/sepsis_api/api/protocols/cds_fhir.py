"""CDS Hooks: the FHIR resources a call needs, from its prefetch or else from its fhirServer.

Each prefetch key the call lacks is fetched from ``fhirServer`` (with the bearer token of
``fhirAuthorization`` when given) by the same relative query as the key's prefetch template,
as the spec requires them to be equivalent. Only servers on SEPSIS_API_CDS_FHIR_SERVERS are
ever contacted (the service never requests a URL a caller chose freely), redirects are not
followed, every request is bounded in time and size, and only the first page of a search is
read (the templates sort newest first and ask for the newest). When a key can be neither taken
from the prefetch nor fetched, the call cannot be answered: PreconditionFailed (412).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import httpx
import orjson

FHIR_JSON = "application/fhir+json"


class PreconditionFailed(Exception):
    """The data the service needs is neither in the prefetch nor obtainable (HTTP 412)."""


def _base(url: str) -> str:
    return url.rstrip("/")


def allowed_servers(setting: str | None) -> frozenset[str]:
    return frozenset(_base(u.strip()) for u in (setting or "").split(",") if u.strip())


async def resolve_prefetch(
    queries: Mapping[str, str],
    prefetch: Mapping[str, Any] | None,
    *,
    fhir_server: str | None,
    token: str | None,
    allowed: frozenset[str],
    timeout: float,
    max_bytes: int,
) -> dict[str, Any]:
    """Every key of ``queries`` (key -> relative FHIR query, tokens already replaced) with its
    resource: the prefetch's value when the key is there (null included: "no data"), else the
    fhirServer's answer (a 404 is "no data" too)."""
    given = dict(prefetch or {})
    missing = [k for k in queries if k not in given]
    found = {k: given[k] for k in queries if k in given}
    if not missing:
        return found
    lacking = f"the prefetch lacks {', '.join(missing)}"
    if fhir_server is None:
        raise PreconditionFailed(f"{lacking} and the request names no fhirServer to fetch from")
    if _base(fhir_server) not in allowed:
        raise PreconditionFailed(
            f"{lacking}, and fhirServer {fhir_server} is not a server this service may fetch "
            "from (SEPSIS_API_CDS_FHIR_SERVERS)"
        )
    headers = {"Accept": FHIR_JSON}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    async with httpx.AsyncClient(
        base_url=_base(fhir_server) + "/",
        headers=headers,
        timeout=httpx.Timeout(timeout),
        follow_redirects=False,
        trust_env=False,
    ) as client:
        results = await asyncio.gather(
            *(_fetch(client, k, queries[k], timeout, max_bytes) for k in missing)
        )
    found.update(zip(missing, results, strict=True))
    return found


async def _fetch(
    client: httpx.AsyncClient, key: str, query: str, timeout: float, max_bytes: int
) -> Any:
    """One resource (or search Bundle) by its relative query; None when the server has none."""
    where = f"fetching {key} ({query}) from fhirServer"
    try:
        async with asyncio.timeout(timeout):  # the whole exchange, not each read
            async with client.stream("GET", query) as reply:
                if reply.status_code == 404:
                    return None
                if reply.status_code != 200:
                    raise PreconditionFailed(f"{where}: it answered HTTP {reply.status_code}")
                body = bytearray()
                async for chunk in reply.aiter_bytes():
                    body += chunk
                    if len(body) > max_bytes:
                        raise PreconditionFailed(f"{where}: the answer exceeds {max_bytes} bytes")
    except TimeoutError:
        raise PreconditionFailed(f"{where}: no answer within {timeout:g} s") from None
    except httpx.HTTPError as e:
        raise PreconditionFailed(f"{where}: {type(e).__name__}: {e}") from None
    try:
        resource = orjson.loads(bytes(body))
    except orjson.JSONDecodeError:
        raise PreconditionFailed(f"{where}: the answer is not JSON") from None
    if not isinstance(resource, dict) or "resourceType" not in resource:
        raise PreconditionFailed(f"{where}: the answer is not a FHIR resource")
    return resource
