"""CDS Hooks: verifying the EHR's JWT (``Authorization: Bearer``), with PyJWT.

CDS Hooks 2.0 ("Trusting CDS Clients"): the token is signed with the EHR's private key; never
``none``, never a symmetric (HMAC) algorithm. Accepted here: ES384 and RS384 (the spec's
recommendation) and ES256. The issuer must be on the allow-list (SEPSIS_API_CDS_ISSUERS), whose
entry names its JWKS URL; a ``jku`` header is never followed. ``aud`` must be the URL of the
endpoint called (or the discovery URL, which some EHRs send for every call); ``exp``, ``iat``
and ``jti`` are required, and a ``jti`` is accepted once per issuer until its ``exp``: the
tokens seen are kept in the audit database (db/token_uses.py), so a token replayed to another
worker process or replica sharing it is refused there too.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import jwt
from sqlalchemy.exc import SQLAlchemyError

from sepsis_api.db.token_uses import TokenUses

ALGORITHMS = ("ES384", "RS384", "ES256")
LEEWAY_SECONDS = 30  # clock difference tolerated between the EHR and this server
MAX_JTI_CHARS = 256


class TokenRefused(Exception):
    """The token does not let the caller in: 401 (or 503 when the issuer's keys cannot be
    fetched or the tokens seen cannot be read or kept), with the reason."""

    def __init__(self, reason: str, status: int = 401) -> None:
        super().__init__(reason)
        self.reason, self.status = reason, status


class EHRTokens:
    """The allow-listed issuers and their JWKS clients (PyJWKClient: fetched with a timeout,
    cached for ``cache_seconds``)."""

    def __init__(
        self,
        issuers: dict[str, str],
        *,
        timeout: float,
        cache_seconds: float,
        max_lifetime: float,
    ) -> None:
        self.clients = {
            iss: jwt.PyJWKClient(url, cache_jwk_set=True, lifespan=cache_seconds, timeout=timeout)
            for iss, url in issuers.items()
        }
        self.max_lifetime = max_lifetime

    def verify(self, token: str, audiences: list[str], uses: TokenUses) -> dict[str, Any]:
        """The token's claims once every check passed, its use recorded in ``uses``; else
        TokenRefused. Blocking (it may fetch the issuer's JWKS and writes to the database):
        call it off the event loop."""
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
        return self._fresh(claims, issuer, uses)

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

    def _fresh(self, claims: dict[str, Any], issuer: str, uses: TokenUses) -> dict[str, Any]:
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
        if "\x00" in jti:  # PostgreSQL cannot store it
            raise TokenRefused("JWT jti must not contain a NUL character")
        until = datetime.fromtimestamp(exp + LEEWAY_SECONDS, UTC)
        try:
            first = uses.first_use(issuer, jti, until, datetime.fromtimestamp(now, UTC))
        except SQLAlchemyError as e:
            raise TokenRefused(
                f"the tokens seen cannot be checked for replay now ({type(e).__name__})", 503
            ) from None
        if not first:
            raise TokenRefused(f"JWT jti {jti!r} was used before (a replayed token)")
        return claims
