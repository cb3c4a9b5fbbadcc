"""CDS Hooks test data: hook requests with prefetch built by fhir.resources (tests/fhir_bundles),
and an EHR's signing keys (generated with cryptography) with its JWKS and tokens."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

import fhir_bundles as fb

PATIENT_ID = "pat-1"
ISSUER = "https://ehr.example.org"
PUBLIC_URL = "https://sepsis.example.org"
SERVICE_URL = f"{PUBLIC_URL}/cds-services/sepsis-risk"
FHIR_TOKEN = "fhir-access-token-for-the-cds-service"


def resources(values: dict[str, Any] | None = None, patient_id: str = PATIENT_ID) -> list[Any]:
    """The Patient and one Observation per mapped feature of ``values`` (default PATIENT's), as
    JSON, each Observation about that patient."""
    pat = fb.patient(id=patient_id)
    obs = fb.patient_observations(values, subject=f"Patient/{patient_id}")
    return [json.loads(r.model_dump_json()) for r in [pat, *obs]]


def prefetch(values: dict[str, Any] | None = None, patient_id: str = PATIENT_ID) -> dict[str, Any]:
    """The prefetch the discovery templates ask for: the Patient, and per feature a searchset
    Bundle with its newest Observation."""
    pat, *obs = resources(values, patient_id)
    by_code = {(c[0], c[1]): code for code, c in fb.CODING.items()}
    out: dict[str, Any] = {"patient": pat}
    for o in obs:
        coding = o["code"]["coding"][0]
        out[by_code[(coding["system"], coding["code"])]] = {
            "resourceType": "Bundle",
            "type": "searchset",
            "entry": [{"fullUrl": f"Observation/{o['id']}", "resource": o}],
        }
    return out


def hook_request(
    prefetched: dict[str, Any] | None = None, patient_id: str = PATIENT_ID, **fields: Any
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "hook": "patient-view",
        "hookInstance": str(uuid.uuid4()),
        "context": {"userId": "Practitioner/example", "patientId": patient_id},
    }
    if prefetched is not None:
        body["prefetch"] = prefetched
    body.update(fields)
    return body


def fhir_authorization(token: str = FHIR_TOKEN) -> dict[str, Any]:
    return {
        "access_token": token,
        "token_type": "Bearer",
        "expires_in": 300,
        "scope": "patient/Patient.read patient/Observation.read",
        "subject": "sepsis-cds-service",
    }


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class EHRKeys:
    """The EHR's key pairs, one per algorithm, and its JWKS (public keys only)."""

    def __init__(self) -> None:
        self.private = {
            "ES384": ec.generate_private_key(ec.SECP384R1()),
            "ES256": ec.generate_private_key(ec.SECP256R1()),
            "RS384": rsa.generate_private_key(public_exponent=65537, key_size=2048),
        }

    def jwks(self) -> dict[str, Any]:
        keys = []
        for alg, key in self.private.items():
            cls = (
                jwt.algorithms.RSAAlgorithm if alg.startswith("RS") else jwt.algorithms.ECAlgorithm
            )
            jwk = cls.to_jwk(key.public_key(), as_dict=True)
            keys.append({**jwk, "kid": f"key-{alg}", "alg": alg, "use": "sig"})
        return {"keys": keys}

    def public_pem(self, alg: str) -> bytes:
        return (
            self.private[alg]
            .public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )

    @staticmethod
    def claims(**changes: Any) -> dict[str, Any]:
        now = int(time.time())
        body = {
            "iss": ISSUER,
            "aud": SERVICE_URL,
            "iat": now,
            "exp": now + 300,
            "jti": str(uuid.uuid4()),
        }
        body.update(changes)
        return {k: v for k, v in body.items() if v is not ...}

    def token(
        self, alg: str = "ES384", *, kid: str | None = None, key: Any = None, **changes: Any
    ) -> str:
        return jwt.encode(
            self.claims(**changes),
            key if key is not None else self.private[alg],
            algorithm=alg,
            headers={"kid": kid or f"key-{alg}", "typ": "JWT"},
        )

    def forged(self, alg: str, secret: bytes = b"", kid: str = "key-ES384", **changes: Any) -> str:
        """A token PyJWT would refuse to make: ``none`` (no signature) or an HMAC whose secret
        is ``secret`` (the classic confusion attack uses the public key's PEM)."""
        head = _b64(json.dumps({"alg": alg, "typ": "JWT", "kid": kid}).encode())
        body = _b64(json.dumps(self.claims(**changes)).encode())
        signing = f"{head}.{body}".encode()
        if alg == "none":
            return f"{head}.{body}."
        digest = {"HS256": hashlib.sha256, "HS384": hashlib.sha384}[alg]
        return f"{head}.{body}.{_b64(hmac.new(secret, signing, digest).digest())}"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
