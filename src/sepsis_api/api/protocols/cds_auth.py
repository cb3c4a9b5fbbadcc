"""CDS Hooks: verifying the EHR's JWT (``Authorization: Bearer``), with PyJWT.

CDS Hooks 2.0 ("Trusting CDS Clients"): the token is signed with the EHR's private key; never
``none``, never a symmetric (HMAC) algorithm. Accepted here: ES384 and RS384 (the spec's
recommendation) and ES256. The issuer must be on the allow-list (SEPSIS_API_CDS_ISSUERS), whose
entry names its JWKS URL; a ``jku`` header is never followed. ``aud`` must be the URL of the
endpoint called (or the discovery URL, which some EHRs send for every call); ``exp``, ``iat``
and ``jti`` are required, and a ``jti`` is accepted once per issuer until its ``exp``.

The replay cache lives in the server process: with several worker processes or replicas a
token replayed to another process is not recognised there (see the README's CDS Hooks section).
"""

from __future__ import annotations

import heapq
import threading
import time
from typing import Any

import jwt

ALGORITHMS = ("ES384", "RS384", "ES256")
LEEWAY_SECONDS = 30  # clock difference tolerated between the EHR and this server
MAX_JTI_CHARS = 256


class TokenRefused(Exception):
    """The token does not let the caller in: 401 (or 503 when the issuer's keys cannot be
    fetched or the replay cache is full), with the reason."""

    def __init__(self, reason: str, status: int = 401) -> None:
        super().__init__(reason)
        self.reason, self.status = reason, status


class ReplayCache:
    """(issuer, jti) pairs seen, each until its token's expiry; at most ``size`` at a time.
    Thread-safe: tokens are verified in worker threads."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._until: dict[tuple[str, str], float] = {}
        self._expiries: list[tuple[float, str, str]] = []  # heap, soonest expiry first
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._until)

    def first_use(self, issuer: str, jti: str, exp: float, now: float) -> bool:
        """Remember the pair; False if it was seen and has not expired yet."""
        key = (issuer, jti)
        with self._lock:
            while self._expiries and self._expiries[0][0] <= now:
                _, i, j = heapq.heappop(self._expiries)
                if self._until.get((i, j), now + 1) <= now:
                    del self._until[(i, j)]
            if key in self._until:
                return False
            if len(self._until) >= self.size:
                raise TokenRefused(
                    f"too many unexpired tokens remembered ({self.size}); retry later", 503
                )
            self._until[key] = exp
            heapq.heappush(self._expiries, (exp, issuer, jti))
            return True


class EHRTokens:
    """The allow-listed issuers, their JWKS clients (PyJWKClient: fetched with a timeout,
    cached for ``cache_seconds``) and the replay cache."""

    def __init__(
        self,
        issuers: dict[str, str],
        *,
        timeout: float,
        cache_seconds: float,
        max_lifetime: float,
        replay_size: int,
    ) -> None:
        self.clients = {
            iss: jwt.PyJWKClient(url, cache_jwk_set=True, lifespan=cache_seconds, timeout=timeout)
            for iss, url in issuers.items()
        }
        self.max_lifetime = max_lifetime
        self.replays = ReplayCache(replay_size)

    def verify(self, token: str, audiences: list[str]) -> dict[str, Any]:
        """The token's claims once every check passed; else TokenRefused. Blocking (it may
        fetch the issuer's JWKS): call it off the event loop."""
        try:
            header = jwt.get_unverified_header(token)
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError as e:
            raise TokenRefused(f"the bearer token is not a JWT ({e})") from None
        alg = header.get("alg")
        if alg not in ALGORITHMS:
            raise TokenRefused(
                f"JWT alg {alg!r} is refused: CDS Hooks tokens are signed with "
                f"{', '.join(ALGORITHMS)} (never none or a symmetric algorithm)"
            )
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise TokenRefused("the JWT header has no kid naming the key in the issuer's JWKS")
        issuer = unverified.get("iss")
        client = self.clients.get(issuer) if isinstance(issuer, str) else None
        if client is None or not isinstance(issuer, str):
            raise TokenRefused(f"JWT issuer {issuer!r} is not allowed (SEPSIS_API_CDS_ISSUERS)")
        key = self._key(client, kid, issuer)
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,  # the JWK itself: its own algorithm must be the token's
                algorithms=[alg],
                audience=audiences,
                issuer=issuer,
                leeway=LEEWAY_SECONDS,
                options={"require": ["iss", "aud", "exp", "iat", "jti"]},
            )
        except jwt.InvalidAudienceError:
            raise TokenRefused(
                f"JWT aud must be the URL of the endpoint called: {audiences[0]}"
            ) from None
        except jwt.ExpiredSignatureError:
            raise TokenRefused("the JWT has expired (exp)") from None
        except jwt.PyJWTError as e:
            raise TokenRefused(f"the JWT is not valid: {e}") from None
        return self._fresh(claims, issuer)

    @staticmethod
    def _key(client: jwt.PyJWKClient, kid: str, issuer: str) -> jwt.PyJWK:
        try:
            return client.get_signing_key(kid)
        except jwt.PyJWKClientConnectionError as e:
            raise TokenRefused(f"cannot fetch the JWKS of issuer {issuer!r} ({e})", 503) from None
        except jwt.PyJWKClientError as e:
            raise TokenRefused(f"issuer {issuer!r}: {e}") from None
        except jwt.PyJWTError as e:  # a JWKS whose keys cannot be read
            raise TokenRefused(f"issuer {issuer!r}: unusable JWKS ({e})", 503) from None

    def _fresh(self, claims: dict[str, Any], issuer: str) -> dict[str, Any]:
        """Lifetime and single use of a verified token."""
        now = time.time()
        exp = float(claims["exp"])
        if exp - now > self.max_lifetime + LEEWAY_SECONDS:
            raise TokenRefused(
                f"the JWT lives {exp - now:.0f} s; at most {self.max_lifetime:g} s are accepted"
            )
        jti = claims["jti"]
        if not isinstance(jti, str) or not 0 < len(jti) <= MAX_JTI_CHARS:
            raise TokenRefused(f"JWT jti must be a string of 1 to {MAX_JTI_CHARS} characters")
        if not self.replays.first_use(issuer, jti, exp + LEEWAY_SECONDS, now):
            raise TokenRefused(f"JWT jti {jti!r} was used before (a replayed token)")
        return claims
