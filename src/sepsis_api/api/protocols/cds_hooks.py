"""CDS Hooks 2.0 (HL7): discovery, the ``sepsis-risk`` service on ``patient-view``, feedback.

``GET /cds-services`` describes one service whose prefetch templates ask for the Patient and,
per feature the FHIR mapping reads from observations, the newest Observation of its codes.
``POST /cds-services/sepsis-risk`` takes the hook request, finds the resources in its prefetch
or fetches the missing ones from its fhirServer (api/protocols/cds_fhir.py; 412 when neither
can be done), reads the features with the FHIR mapping, scores and audits them with
Service.predict_one (source ``cds-hooks``, the patient id from ``context.patientId``) and
answers one card. ``POST /cds-services/sepsis-risk/feedback`` stores what the clinician did
with cards (db/cds_feedback.py).

Who may call: with SEPSIS_API_CDS_ISSUERS set, the EHR's signed JWT (api/protocols/cds_auth.py)
and nothing else; unset, the service's API keys as on /v1 (none configured: anonymous, and
the server binds to loopback only). Discovery is open, like the other protocols' probes.
Errors have the /v1 shape (``detail``, ``errors`` naming the field, ``request_id``).
"""

from __future__ import annotations

import asyncio
from functools import lru_cache
from typing import Any, Literal, TypeVar
from urllib.parse import quote, urlsplit
from uuid import UUID

import numpy as np
from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, field_validator
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

from sepsis_api.api.errors import APIError, field_errors, json_response
from sepsis_api.api.protocols.cds_auth import EHRTokens, TokenRefused
from sepsis_api.api.protocols.cds_cards import (
    OVERRIDE_SYSTEM,
    CardsResponse,
    DiscoveryResponse,
    FeedbackResponse,
    ServiceDescription,
    card,
    dump,
)
from sepsis_api.api.protocols.cds_fhir import (
    PreconditionFailed,
    allowed_servers,
    resolve_prefetch,
)
from sepsis_api.api.protocols.common import SMALL_BODY_BYTES, parse_body, service
from sepsis_api.api.protocols.fhir_mapping import (
    FeatureMapping,
    MappedFeatures,
    MappingProblems,
    Problem,
    features_from,
    load_mapping,
)
from sepsis_api.api.security import caller_id
from sepsis_api.config import Settings
from sepsis_api.db.cds_feedback import FeedbackIn, FeedbackLog, UnknownCards
from sepsis_api.db.token_uses import TokenUses
from sepsis_api.ml.data import validate_matrix
from sepsis_api.schema import FEATURES, NOT_A_DEVICE

T = TypeVar("T", bound=BaseModel)
SOURCE = "cds-hooks"
SERVICE_ID = "sepsis-risk"
HOOK = "patient-view"
PREFIX = "/cds-services"
PATIENT_KEY = "patient"
PATIENT_TOKEN = "{{context.patientId}}"
FHIR_ID = r"^[A-Za-z0-9\-\.]{1,64}$"  # FHIR's id datatype
MAX_FEEDBACK = 1_000

router = APIRouter(prefix=PREFIX, tags=["CDS Hooks 2.0"])
CDS_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "The hook request is malformed; `errors` names each field."},
    401: {"description": "No valid EHR JWT (or API key when no issuers are configured)."},
    404: {"description": "No CDS service with this id."},
    412: {"description": "The prefetch lacks data and it cannot be fetched from fhirServer."},
    415: {"description": "Not JSON."},
    422: {"description": "The patient's data cannot be scored; `errors` names the problems."},
    503: {"description": "The audit log or the EHR's JWKS is unreachable; nothing returned."},
}


class _In(BaseModel):
    model_config = ConfigDict(extra="ignore")  # the spec's `extension` and later fields


class FHIRAuthorization(_In):
    access_token: str = Field(min_length=1, max_length=16_384)
    token_type: str
    expires_in: int
    scope: str
    subject: str

    @field_validator("token_type")
    @classmethod
    def _bearer(cls, value: str) -> str:
        if value.lower() != "bearer":
            raise ValueError(f"must be Bearer, not {value!r}")
        return value


class PatientViewContext(_In):
    userId: str | None = None  # the spec's spelling, as all fields here
    patientId: str = Field(pattern=FHIR_ID)
    encounterId: str | None = None


class HookRequest(_In):
    hook: str
    hookInstance: UUID
    fhirServer: str | None = None
    fhirAuthorization: FHIRAuthorization | None = None
    context: PatientViewContext
    prefetch: dict[str, Any] | None = None

    @field_validator("fhirServer")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is not None:
            parts = urlsplit(value)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise ValueError(f"must be an http(s) base URL, not {value!r}")
        return value


class CodingIn(_In):
    system: str | None = Field(default=None, max_length=256)
    code: str | None = Field(default=None, max_length=128)
    display: str | None = Field(default=None, max_length=256)


class OverrideReason(_In):
    reason: CodingIn | None = None
    userComment: str | None = Field(default=None, max_length=4_000)


class AcceptedSuggestion(_In):
    id: str = Field(max_length=128)


class FeedbackItem(_In):
    card: str = Field(max_length=36)
    outcome: Literal["accepted", "overridden"]
    acceptedSuggestions: list[AcceptedSuggestion] | None = None
    overrideReason: OverrideReason | None = None
    outcomeTimestamp: AwareDatetime


class FeedbackRequest(_In):
    feedback: list[FeedbackItem] = Field(min_length=1, max_length=MAX_FEEDBACK)


@lru_cache(maxsize=1)
def default_mapping() -> FeatureMapping:
    """The shipped FHIR mapping, for the documentation's example request."""
    return load_mapping()


def mapping_of(request: Request) -> FeatureMapping:
    """The server's FHIR mapping (SEPSIS_API_FHIR_MAPPING), shared with the FHIR operation."""
    mapping: FeatureMapping = request.app.state.fhir_mapping
    return mapping


def observation_queries(mapping: FeatureMapping) -> dict[str, str]:
    """Prefetch key (the feature's code) -> a search for the newest Observation of its codes,
    one per feature the mapping reads from observations."""
    return {
        code: f"Observation?patient={PATIENT_TOKEN}&code={','.join(c.token for c in rule.codes)}"
        "&_sort=-date&_count=1"
        for code, rule in mapping.features.items()
    }


def templates(mapping: FeatureMapping) -> dict[str, str]:
    return {PATIENT_KEY: f"Patient/{PATIENT_TOKEN}", **observation_queries(mapping)}


def description(mapping: FeatureMapping) -> ServiceDescription:
    return ServiceDescription(
        hook=HOOK,
        title="Sepsis risk estimate",
        description="A calibrated sepsis-risk estimate with its risk band and top reasons, "
        "from the patient's birth date and newest observations. " + NOT_A_DEVICE,
        id=SERVICE_ID,
        prefetch=templates(mapping),
    )


# --- who is calling -------------------------------------------------------------------


def ehr_tokens(settings: Settings) -> EHRTokens | None:
    """The JWT verifier when issuers are configured (create_app keeps one per app)."""
    if not settings.cds_issuers:
        return None
    return EHRTokens(
        settings.cds_issuers,
        timeout=settings.cds_timeout_seconds,
        cache_seconds=settings.cds_jwks_cache_seconds,
        max_lifetime=settings.cds_jwt_max_seconds,
    )


def _refused(reason: str, status: int = 401) -> APIError:
    headers = {"WWW-Authenticate": 'Bearer error="invalid_token"'} if status == 401 else None
    if status == 503:
        headers = {"Retry-After": "5"}
    return APIError(status, reason, [_error("Authorization", None, reason)], headers)


async def _caller(request: Request) -> str:
    """The EHR's issuer (JWT verified) or, without issuers configured, the API key's id."""
    tokens: EHRTokens | None = request.app.state.cds_tokens
    if tokens is None:
        return await caller_id(request)
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise _refused("send the EHR's signed JWT as 'Authorization: Bearer <JWT>'")
    settings: Settings = request.app.state.settings
    base = (settings.public_url or "").rstrip("/")
    path = request.scope["path"]
    # The endpoint called; for feedback also its service's endpoint; and the discovery URL,
    # which some EHRs name in every token.
    audiences = list(
        dict.fromkeys([base + path, base + path.removesuffix("/feedback"), base + PREFIX])
    )
    uses = TokenUses(service(request).audit.engine)
    wait = 2 * settings.cds_timeout_seconds + 1  # a JWKS fetch at most, plus the checks
    try:
        claims = await asyncio.wait_for(
            run_in_threadpool(tokens.verify, token.strip(), audiences, uses), wait
        )
    except TokenRefused as e:
        raise _refused(e.reason, e.status) from None
    except TimeoutError:
        raise _refused(f"the issuer's JWKS did not arrive within {wait:g} s", 503) from None
    issuer: str = claims["iss"]
    request.state.caller = issuer  # the access log's caller
    return issuer


# --- errors ---------------------------------------------------------------------------


def _error(
    field: str | None, value: Any, message: str, expected: str | None = None
) -> dict[str, Any]:
    return {
        "field": field,
        "row": None,
        "value": value,
        "expected": expected or "",
        "message": f"{field}: {message}" if field else message,
    }


def _bad(
    status: int, detail: str, field: str | None, value: Any = None, expected: str | None = None
) -> APIError:
    return APIError(status, detail, [_error(field, value, detail, expected)])


async def _parsed(model: type[T], request: Request) -> T:
    """The JSON body as ``model`` (a large body parsed off the loop, as the other protocols
    do); a malformed one is a 400 naming each field."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != "application/json" and not ctype.endswith("+json"):
        raise APIError(
            415, f"unsupported content type {ctype or '(none)'!r}; send application/json"
        )
    return await parse_body(_validated, await request.body(), model)


def _validated(body: bytes, model: type[T]) -> T:
    try:
        return model.model_validate_json(body)
    except ValidationError as e:
        errors = field_errors(list(e.errors()))
        summary = "; ".join(err["message"] for err in errors[:5])
        raise APIError(400, f"invalid request: {summary}", errors) from None


def _known_service(service_id: str) -> None:
    if service_id != SERVICE_ID:
        raise _bad(
            404,
            f"no CDS service {service_id!r}; this server offers {SERVICE_ID!r}",
            "id",
            service_id,
            SERVICE_ID,
        )


# --- routes ---------------------------------------------------------------------------


@router.get(
    "",
    summary="CDS Hooks discovery: the services offered and their prefetch templates",
    response_model=DiscoveryResponse,
    response_model_exclude_none=True,
)
async def discovery(request: Request) -> Response:
    return json_response(dump(DiscoveryResponse(services=[description(mapping_of(request))])))


# The example patient of the docs (row 1 of the training file), one Observation per feature.
_EXAMPLE_VALUES = {
    "PRG": 6, "PL": 148, "PR": 72, "SK": 35, "TS": 0, "M11": 33.6, "BD2": 0.627, "Insurance": 0
}  # fmt: skip


def example_request(patient_id: str = "1288992") -> dict[str, Any]:
    """A complete hook request (every prefetch key), as an EHR would send it for the docs'
    example patient, coded by the FHIR mapping's first code and unit of each feature."""
    ucum = "http://unitsofmeasure.org"
    given: dict[str, Any] = {
        PATIENT_KEY: {"resourceType": "Patient", "id": patient_id, "birthDate": "1973-11-20"}
    }
    for code, rule in default_mapping().features.items():
        coding, unit = rule.codes[0], next(iter(rule.units))
        quantity: dict[str, Any] = {"value": _EXAMPLE_VALUES[code]}
        if unit != "1":
            quantity.update(unit=unit, system=ucum, code=unit)
        observation = {
            "resourceType": "Observation",
            "id": f"example-{code.lower()}",
            "status": "final",
            "code": {"coding": [{"system": coding.system, "code": coding.code}]},
            "subject": {"reference": f"Patient/{patient_id}"},
            "effectiveDateTime": "2024-03-01T09:30:00Z",
            "valueQuantity": quantity,
        }
        given[code] = {
            "resourceType": "Bundle",
            "type": "searchset",
            "entry": [{"resource": observation}],
        }
    return {
        "hook": HOOK,
        "hookInstance": "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea",
        "context": {"userId": "Practitioner/example", "patientId": patient_id},
        "prefetch": given,
    }


@router.post(
    "/{service_id}",
    summary="CDS Hooks: one card with the patient's sepsis-risk estimate",
    response_model=CardsResponse,
    response_model_exclude_none=True,
    responses=CDS_ERRORS,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"type": "object"}, "example": example_request()}
            },
        }
    },
)
async def call_service(service_id: str, request: Request) -> Response:
    """The card's `uuid` is the estimate's prediction id (`GET /v1/predictions/{id}`);
    `indicator` follows the risk band (low: info, moderate: warning, high: critical)."""
    _known_service(service_id)
    caller = await _caller(request)
    hook = await _parsed(HookRequest, request)
    if hook.hook != HOOK:
        raise _bad(
            400,
            f"service {SERVICE_ID!r} answers the {HOOK} hook, not {hook.hook!r}",
            "hook",
            hook.hook,
            HOOK,
        )
    if hook.fhirAuthorization is not None and hook.fhirServer is None:
        raise _bad(400, "fhirAuthorization is given without a fhirServer", "fhirServer")
    settings: Settings = request.app.state.settings
    patient_id = hook.context.patientId
    mapping = mapping_of(request)
    queries = {
        k: t.replace(PATIENT_TOKEN, quote(patient_id, safe=""))
        for k, t in templates(mapping).items()
    }
    given = set(hook.prefetch or ())
    try:
        resources = await resolve_prefetch(
            queries,
            hook.prefetch,
            fhir_server=hook.fhirServer,
            token=hook.fhirAuthorization.access_token if hook.fhirAuthorization else None,
            allowed=allowed_servers(settings.cds_fhir_servers),
            timeout=settings.cds_timeout_seconds,
            max_bytes=settings.max_body_bytes,
        )
    except PreconditionFailed as e:
        raise _bad(412, str(e), "prefetch") from None
    found = _resources(resources, patient_id, mapping)
    # fhir.resources validates every resource (~0.6 ms for a patient's): on the loop for a
    # small request whose resources all came in it, like parse_body; else in a worker thread
    small = len(await request.body()) <= SMALL_BODY_BYTES and resources.keys() <= given
    mapped = found.features() if small else await run_in_threadpool(found.features)
    svc = service(request)
    served = svc.resolve(None, allow_all=False)[0]
    values = mapped.values
    x = np.array([[np.nan if values[f.code] is None else values[f.code] for f in FEATURES]])
    batch = validate_matrix(x)
    if batch.errors:
        problems = [_error(e.column, e.value, e.reason) for e in batch.errors]
        raise APIError(
            422, "the patient's data cannot be scored: " + problems[0]["message"], problems
        )
    inputs = {
        f.code: None if np.isnan(v) else float(v) for f, v in zip(FEATURES, batch.X[0], strict=True)
    }
    rows = await svc.predict_one(
        batch.X,
        inputs,
        patient_id,
        [served],
        explain=True,
        caller=caller,
        request_id=request.state.request_id,
        source=SOURCE,
    )
    request.state.model_version = served.version
    api = (settings.public_url or str(request.base_url)).rstrip("/")
    ui = settings.ui_public_url.rstrip("/") if settings.ui_public_url else None
    reply = card(
        rows[0],
        served,
        basis=mapped.basis,
        model_card_url=f"{api}/v1/models/{quote(served.version, safe='')}",
        record_url=f"{ui}/history?prediction_id={rows[0]['id']}" if ui else None,
    )
    return json_response(dump(CardsResponse(cards=[reply])))


def _resources(resources: dict[str, Any], patient_id: str, mapping: FeatureMapping) -> _Found:
    """The Patient and the Observations among the prefetch values (Bundles or resources)."""
    patient = resources.get(PATIENT_KEY)
    if patient is not None:
        if not isinstance(patient, dict) or patient.get("resourceType") != "Patient":
            raise _bad(
                400, "prefetch.patient must be a Patient resource (or null)", "prefetch.patient"
            )
        if patient.get("id") not in (None, patient_id):
            raise _bad(
                400,
                f"prefetch.patient is Patient/{patient.get('id')}, not the context's patient "
                f"{patient_id}",
                "prefetch.patient.id",
                patient.get("id"),
                patient_id,
            )
    found = _Found(patient, mapping)
    for key in observation_queries(mapping):
        value = resources.get(key)
        if value is None:
            continue
        field = f"prefetch.{key}"
        kind = value.get("resourceType") if isinstance(value, dict) else None
        if kind == "Observation":
            found.add(value, field, None)
        elif kind == "Bundle":
            for n, entry in enumerate(value.get("entry") or []):
                resource = entry.get("resource") if isinstance(entry, dict) else None
                if isinstance(resource, dict) and resource.get("resourceType") == "Observation":
                    full = entry.get("fullUrl")
                    ref = full if isinstance(full, str) and full.startswith("urn:uuid:") else None
                    found.add(resource, f"{field}.entry[{n}].resource", ref)
        else:
            raise _bad(400, f"{field} must be a FHIR Bundle or Observation (or null)", field, kind)
    return found


class _Found:
    """The Patient and the Observations of a call, with where each came from (for errors)."""

    def __init__(self, patient: dict[str, Any] | None, mapping: FeatureMapping) -> None:
        self.patient, self.mapping = patient, mapping
        self.observations: list[dict[str, Any]] = []
        self.fields: list[str] = []
        self.references: list[str | None] = []

    def add(self, observation: dict[str, Any], field: str, reference: str | None) -> None:
        self.observations.append(observation)
        self.fields.append(field)
        self.references.append(reference)

    def features(self) -> MappedFeatures:
        """The features by the FHIR mapping; its problems are a 422 naming each field."""
        try:
            return features_from(
                self.patient, self.observations, self.mapping, references=self.references
            )
        except MappingProblems as e:
            errors = [self._error(p) for p in e.problems]
            raise APIError(
                422,
                "the patient's data cannot be scored: "
                + "; ".join(err["message"] for err in errors[:5]),
                errors,
            ) from None

    def _error(self, p: Problem) -> dict[str, Any]:
        if p.resource == "Patient":
            where = f"prefetch.{PATIENT_KEY}"
        elif p.index is not None:
            where = self.fields[p.index]
        else:  # a required feature no observation gives
            where = f"prefetch.{p.feature}" if p.feature else "prefetch"
        field = f"{where}.{p.element}" if p.element else where
        return _error(field, p.value, p.message, p.expected)


_FEEDBACK = {
    "feedback": [
        {
            "card": "01a234a1-06db-7000-a1ed-fb8f5f233a1f",
            "outcome": "overridden",
            "overrideReason": {
                "reason": {
                    "system": OVERRIDE_SYSTEM,
                    "code": "clinical-assessment",
                    "display": "My clinical assessment differs",
                },
                "userComment": "Seen this morning; stable.",
            },
            "outcomeTimestamp": "2026-12-02T03:00:00Z",
        }
    ]
}


@router.post(
    "/{service_id}/feedback",
    summary="CDS Hooks feedback: a card accepted or overridden",
    response_model=FeedbackResponse,
    responses=CDS_ERRORS,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"type": "object"}, "example": _FEEDBACK}},
        }
    },
)
async def feedback(service_id: str, request: Request) -> Response:
    """Each item names a card by its `uuid` (an estimate this service issued to the same
    caller); the same outcome of a card at the same time is stored once."""
    _known_service(service_id)
    caller = await _caller(request)
    body = await _parsed(FeedbackRequest, request)
    items = [
        FeedbackIn(
            card=i.card,
            outcome=i.outcome,
            outcome_at=i.outcomeTimestamp,
            override_system=_reason(i, "system"),
            override_code=_reason(i, "code"),
            override_display=_reason(i, "display"),
            user_comment=i.overrideReason.userComment if i.overrideReason else None,
            accepted_suggestions=[s.id for s in i.acceptedSuggestions]
            if i.acceptedSuggestions
            else None,
        )
        for i in body.feedback
    ]
    log = FeedbackLog(service(request).audit.engine)
    try:
        stored = await run_in_threadpool(log.record, SERVICE_ID, items, caller, source=SOURCE)
    except UnknownCards as e:
        errors = [
            _error(f"feedback[{n}].card", c, "not a card this service issued to this caller")
            for n, c in zip(e.rows, e.cards, strict=True)
        ]
        raise APIError(422, str(e), errors) from None
    except SQLAlchemyError as e:
        raise APIError(
            503,
            "the audit database is unavailable, so no feedback was stored; retry later "
            f"({type(e).__name__})",
            headers={"Retry-After": "5"},
        ) from None
    return json_response(dump(FeedbackResponse(received=len(items), stored=sum(stored))))


def _reason(item: FeedbackItem, part: str) -> str | None:
    if item.overrideReason is None or item.overrideReason.reason is None:
        return None
    value: str | None = getattr(item.overrideReason.reason, part)
    return value


# --- CORS -----------------------------------------------------------------------------


class CDSCors:
    """CORS for browser-based EHRs on the CDS routes only (Starlette's CORSMiddleware), outside
    the key check so a preflight (which carries no credentials) is answered."""

    def __init__(self, app: ASGIApp, origins: list[str]) -> None:
        self.app = app
        self.cors = CORSMiddleware(
            app,
            allow_origins=origins,
            allow_methods=["GET", "POST", "OPTIONS"],
            allow_headers=["Authorization", "Content-Type"],
            max_age=600,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if path == PREFIX or path.startswith(PREFIX + "/"):
            await self.cors(scope, receive, send)
        else:
            await self.app(scope, receive, send)


def with_cors(app: ASGIApp, setting: str | None) -> ASGIApp:
    origins = [o.strip().rstrip("/") for o in (setting or "").split(",") if o.strip()]
    return CDSCors(app, origins) if origins else app
