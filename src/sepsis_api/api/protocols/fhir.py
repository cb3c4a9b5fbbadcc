"""FHIR R4: ``POST /fhir/RiskAssessment/$predict`` and the server's CapabilityStatement.

The operation takes a ``Bundle`` (``application/fhir+json`` or ``application/json``) holding one
``Patient`` and that patient's ``Observation``s, either as the body itself or as the ``bundle``
parameter of a ``Parameters`` resource, and answers a ``RiskAssessment``. The features come
from the observations by the mapping file (``fhir_mapping.py``; ``SEPSIS_API_FHIR_MAPPING``
replaces the default). Entries of other resource types are ignored. One patient is scored
and audited by Service.predict_one (source ``fhir``) with its reasons, which the
RiskAssessment gives in ``prediction[0].rationale``. ``?model=NAME`` picks a served model
(default: the served version's default model).

Errors are ``OperationOutcome``s: 400 for a body that is not a FHIR Bundle, 422 naming each
problem of its content (``expression`` points into the Bundle), 401 without a valid key,
415 for another content type, 503 when the audit log cannot commit.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np
import orjson
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.capabilitystatement import CapabilityStatement
from fhir.resources.R4B.observation import Observation
from fhir.resources.R4B.operationdefinition import OperationDefinition
from fhir.resources.R4B.patient import Patient
from fhir.resources.R4B.riskassessment import RiskAssessment
from pydantic import ValidationError

from sepsis_api import __version__
from sepsis_api.api.errors import APIError, ErrorShape
from sepsis_api.api.protocols.common import error_route, parse_body, service
from sepsis_api.api.protocols.fhir_mapping import (
    FeatureMapping,
    MappedFeatures,
    MappingProblems,
    Problem,
    features_from,
    structure_problems,
)
from sepsis_api.api.security import caller_id
from sepsis_api.schema import FEATURE_CODES, NOT_A_DEVICE

SOURCE = "fhir"
FHIR_JSON = "application/fhir+json"
FHIR_VERSION = "4.0.1"
OPERATION = "predict"
OPERATION_ID = "RiskAssessment-predict"
MODEL_SYSTEM = "urn:sepsis-api:model"  # RiskAssessment.method: code = model name, version
PREDICTION_SYSTEM = "urn:sepsis-api:prediction-id"  # the audit record, GET /v1/predictions/{id}
RISK_SYSTEM = "http://terminology.hl7.org/CodeSystem/risk-probability"
SEPSIS = {"system": "http://snomed.info/sct", "code": "91302008", "display": "Sepsis (disorder)"}
TOP_REASONS = 3
_ACCEPTED = {FHIR_JSON, "application/json"}
_ISSUE_CODES = {  # HTTP status -> OperationOutcome issue type, for one-message errors
    400: "structure",
    401: "login",
    403: "forbidden",
    404: "not-found",
    413: "too-long",
    415: "not-supported",
    422: "invalid",
    503: "transient",
}


def issue(code: str, diagnostics: str, expression: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"severity": "error", "code": code, "diagnostics": diagnostics}
    if expression is not None:
        out["expression"] = [expression]
    return out


def outcome_response(
    status: int, issues: list[dict[str, Any]], headers: Mapping[str, str] | None = None
) -> Response:
    body = orjson.dumps({"resourceType": "OperationOutcome", "issue": issues})
    return Response(body, status_code=status, headers=headers, media_type=FHIR_JSON)


def _outcome(status: int, message: str) -> dict[str, Any]:
    """A one-message error as an OperationOutcome alone (a resource carries no other members)."""
    code = _ISSUE_CODES.get(status, "exception" if status >= 500 else "invalid")
    return {"resourceType": "OperationOutcome", "issue": [issue(code, message)]}


ROOTS = ("/fhir",)  # where callers read OperationOutcome errors (api/errors.ErrorShapes)
ERROR_SHAPE = ErrorShape(_outcome, FHIR_JSON)


def _render(status: int, message: str, headers: Mapping[str, str] | None) -> Response:
    body = orjson.dumps(_outcome(status, message))
    return Response(body, status_code=status, headers=headers, media_type=FHIR_JSON)


class Outcome(Exception):
    """A client's mistake as the issues of an OperationOutcome."""

    def __init__(self, status: int, issues: list[dict[str, Any]]) -> None:
        super().__init__("; ".join(i["diagnostics"] for i in issues))
        self.status, self.issues = status, issues


class FHIRRoute(error_route(_render)):  # type: ignore[misc]  # a class made by a function
    """The protocol's error route; an Outcome keeps all its issues."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def run(request: Request) -> Response:
            try:
                response: Response = await handler(request)
            except Outcome as e:
                return outcome_response(e.status, e.issues)
            return response

        return run


router = APIRouter(prefix="/fhir", tags=["FHIR R4"], route_class=FHIRRoute)
# Described in words only: the app documents every 4xx *schema* as /v1's ErrorResponse.
FHIR_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"description": f"{text} An `OperationOutcome` (`{FHIR_JSON}`)."}
    for code, text in (
        (400, "Not a FHIR Bundle (or Parameters holding one); the issue names where."),
        (401, "Missing or invalid API key."),
        (413, "Request body too large."),
        (415, "Not application/fhir+json or application/json."),
        (
            422,
            "The Bundle cannot be scored: one issue per problem, its expression pointing "
            "into the Bundle (a required observation missing, a unit not accepted, a value "
            "out of range, an unknown model).",
        ),
        (503, "Audit log unavailable; nothing returned."),
    )
}


# ---- capability --------------------------------------------------------------------------


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/") + router.prefix


def _operation_definition(base: str) -> dict[str, Any]:
    return OperationDefinition(
        id=OPERATION_ID,
        url=f"{base}/OperationDefinition/{OPERATION_ID}",
        name="RiskAssessmentPredict",
        title="Sepsis risk estimate from a Bundle of a Patient and Observations",
        status="active",
        kind="operation",
        code=OPERATION,
        resource=["RiskAssessment"],
        system=False,
        type=True,
        instance=False,
        description="Scores the Patient of the Bundle from its Observations (mapped to the "
        "model's features by the server's mapping file) and returns a RiskAssessment. "
        + NOT_A_DEVICE,
        parameter=[
            {
                "name": "bundle",
                "use": "in",
                "min": 1,
                "max": "1",
                "type": "Bundle",
                "documentation": "One Patient and that patient's Observations.",
            },
            {
                "name": "return",
                "use": "out",
                "min": 1,
                "max": "1",
                "type": "RiskAssessment",
                "documentation": "The estimate, its basis, reasons and prediction id.",
            },
        ],
    ).model_dump(mode="json")


def _capability(base: str) -> dict[str, Any]:
    return CapabilityStatement(
        status="active",
        date=datetime.now(UTC).date().isoformat(),
        kind="instance",
        software={"name": "sepsis-api", "version": __version__},
        implementation={"description": "Sepsis Risk API", "url": base},
        fhirVersion=FHIR_VERSION,
        format=[FHIR_JSON, "json"],
        rest=[
            {
                "mode": "server",
                "documentation": NOT_A_DEVICE,
                "security": {
                    "description": "With API keys configured, send 'Authorization: Bearer "
                    "<key>' or 'X-API-Key: <key>'; the metadata stays open."
                },
                "resource": [
                    {
                        "type": "RiskAssessment",
                        "operation": [
                            {
                                "name": OPERATION,
                                "definition": f"{base}/OperationDefinition/{OPERATION_ID}",
                                "documentation": "POST a Bundle (Patient + Observations), "
                                "get a RiskAssessment.",
                            }
                        ],
                    }
                ],
            }
        ],
    ).model_dump(mode="json")


def _fhir_json(content: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(content), status_code=status, media_type=FHIR_JSON)


@router.get(
    "/metadata",
    summary="FHIR CapabilityStatement: the RiskAssessment $predict operation",
    responses={200: {"content": {FHIR_JSON: {"schema": {"type": "object"}}}}},
    response_class=Response,
)
async def metadata(request: Request) -> Response:
    return _fhir_json(_capability(_base(request)))


@router.get(
    f"/OperationDefinition/{OPERATION_ID}",
    summary="FHIR OperationDefinition of RiskAssessment $predict",
    responses={200: {"content": {FHIR_JSON: {"schema": {"type": "object"}}}}},
    response_class=Response,
)
async def operation_definition(request: Request) -> Response:
    return _fhir_json(_operation_definition(_base(request)))


# ---- the operation -----------------------------------------------------------------------


def example_bundle() -> dict[str, Any]:
    values = {"PRG": 6, "PL": 148, "PR": 72, "SK": 35, "M11": 33.6, "BD2": 0.627, "Insurance": 0}
    loinc, local = "http://loinc.org", "urn:sepsis-api:feature"
    coded = {
        "PRG": (loinc, "11996-6", None),
        "PL": (loinc, "1518-0", "mg/dL"),
        "PR": (loinc, "8462-4", "mm[Hg]"),
        "SK": (local, "SK", "mm"),
        "M11": (loinc, "39156-5", "kg/m2"),
        "BD2": (local, "BD2", "1"),
        "Insurance": (local, "Insurance", None),
    }
    entries: list[dict[str, Any]] = [
        {"resource": {"resourceType": "Patient", "id": "pat-1", "birthDate": "1973-11-20"}}
    ]
    for code, value in values.items():
        system, c, unit = coded[code]
        obs: dict[str, Any] = {
            "resourceType": "Observation",
            "id": f"obs-{code.lower()}",
            "status": "final",
            "code": {"coding": [{"system": system, "code": c}]},
            "subject": {"reference": "Patient/pat-1"},
            "effectiveDateTime": "2024-03-01T09:30:00Z",
        }
        if unit is not None:
            obs["valueQuantity"] = {
                "value": value,
                "unit": unit,
                "system": "http://unitsofmeasure.org",
                "code": unit,
            }
        elif code == "Insurance":
            obs["valueBoolean"] = bool(value)
        else:
            obs["valueInteger"] = value
        entries.append({"resource": obs})
    return {"resourceType": "Bundle", "type": "collection", "entry": entries}


_EXAMPLE_REPLY = {
    "resourceType": "RiskAssessment",
    "id": "0193b1f2-8c4e-7a10-9f3e-2b8d5c6a7e01",
    "identifier": [{"system": PREDICTION_SYSTEM, "value": "0193b1f2-8c4e-7a10-9f3e-2b8d5c6a7e01"}],
    "status": "final",
    "method": {
        "coding": [{"system": MODEL_SYSTEM, "code": "random_forest", "version": "2024.06.1"}],
        "text": "Random forest, model version 2024.06.1",
    },
    "subject": {"reference": "Patient/pat-1"},
    "occurrenceDateTime": "2024-03-01T09:30:00+00:00",
    "basis": [{"reference": "Observation/obs-prg"}, {"reference": "Observation/obs-pl"}],
    "prediction": [
        {
            "outcome": {"coding": [SEPSIS], "text": "Sepsis"},
            "probabilityDecimal": 0.71,
            "qualitativeRisk": {"coding": [{"system": RISK_SYSTEM, "code": "high"}]},
            "rationale": "Top reasons (change in log-odds against the value not measured): "
            "PL = 148 raises risk (+1.02); M11 = 33.6 raises risk (+0.41); Age = 50 raises "
            "risk (+0.30). Threshold 0.35: label Positive.",
        }
    ],
    "note": [{"text": NOT_A_DEVICE}],
}
_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            media: {"schema": {"type": "object"}, "example": example_bundle()}
            for media in (FHIR_JSON, "application/json")
        },
    }
}


@router.post(
    "/RiskAssessment/$predict",
    summary="FHIR R4: a RiskAssessment from a Bundle of a Patient and Observations",
    responses={
        200: {
            "description": "The RiskAssessment (committed to the audit log).",
            "content": {FHIR_JSON: {"schema": {"type": "object"}, "example": _EXAMPLE_REPLY}},
        },
        **FHIR_ERRORS,
    },
    openapi_extra=_BODY,
    response_class=Response,
)
async def predict(
    request: Request,
    model: str | None = Query(
        None, description="A served model name; default: the served version's default model."
    ),
    caller: str = Depends(caller_id),
) -> Response:
    """Answers a `RiskAssessment`: `prediction[0].probabilityDecimal` (calibrated),
    `qualitativeRisk` (our band), `rationale` (the top reasons), `basis` (the Observations
    used, the newest of each code), `method` (model and version) and the prediction id as its
    `id` and `identifier`."""
    svc = service(request)
    try:
        served = svc.resolve(model, allow_all=False)[0]
    except APIError as e:
        raise Outcome(422, [issue("not-found", e.detail, "model")]) from None
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype not in _ACCEPTED:
        raise Outcome(
            415,
            [
                issue(
                    "not-supported",
                    f"unsupported content type {ctype or '(none)'!r}; send {FHIR_JSON} "
                    "(or application/json)",
                )
            ],
        )
    mapping: FeatureMapping = request.app.state.fhir_mapping
    read = await parse_body(_read, await request.body(), mapping)
    x = np.array(
        [
            [
                np.nan if read.mapped.values[c] is None else read.mapped.values[c]
                for c in FEATURE_CODES
            ]
        ],
        dtype=np.float64,
    )
    [row] = await svc.predict_one(
        x,
        read.mapped.values,
        read.patient_id,
        [served],
        explain=True,
        caller=caller,
        request_id=request.state.request_id,
        source=SOURCE,
    )
    request.state.model_version = served.version
    return _fhir_json(_assessment(row, served.display_name, read))


class _Read:
    __slots__ = ("mapped", "patient_id", "subject")

    def __init__(self, mapped: MappedFeatures, subject: str, patient_id: str | None) -> None:
        self.mapped, self.subject, self.patient_id = mapped, subject, patient_id


def _read(body: bytes, mapping: FeatureMapping) -> _Read:
    """The Bundle's patient and features; Outcome (400/422) naming every problem."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as e:
        raise Outcome(400, [issue("structure", f"the body is not valid JSON: {e}")]) from None
    doc, where = _unwrap(doc)
    _check_types(doc, where)
    try:
        bundle = Bundle.model_validate(doc)
    except ValidationError as e:
        raise Outcome(400, [_validation_issue(err, where) for err in e.errors()]) from None
    entries = bundle.entry or []
    patients = [(i, e.resource) for i, e in enumerate(entries) if isinstance(e.resource, Patient)]
    if len(patients) != 1:
        found = "no Patient" if not patients else f"{len(patients)} Patients"
        raise Outcome(
            422,
            [
                issue(
                    "required" if not patients else "invalid",
                    f"the Bundle must hold exactly one Patient entry; it has {found}",
                    f"{where}.entry",
                )
            ],
        )
    at, pat = patients[0]
    full_url = entries[at].fullUrl
    subject = f"Patient/{pat.id}" if pat.id else full_url
    if subject is None:
        raise Outcome(
            422,
            [
                issue(
                    "required",
                    "the Patient needs an id (or its entry a fullUrl) for "
                    "RiskAssessment.subject to refer to",
                    f"{where}.entry[{at}].resource.id",
                )
            ],
        )
    obs = [(i, e.resource) for i, e in enumerate(entries) if isinstance(e.resource, Observation)]
    obs_at = [i for i, _ in obs]
    observations = [o for _, o in obs]
    references = [
        f"Observation/{o.id}" if o.id else entries[i].fullUrl
        for o, i in zip(observations, obs_at, strict=True)
    ]
    try:
        mapped = features_from(
            pat,
            observations,
            mapping,
            references=references,
            patient_references=[full_url] if full_url else (),
        )
    except MappingProblems as e:
        raise Outcome(422, [_problem_issue(p, where, at, obs_at) for p in e.problems]) from None
    return _Read(mapped, subject, pat.id)


def _unwrap(doc: Any) -> tuple[Any, str]:
    """The Bundle itself, or the ``bundle`` parameter of a Parameters resource."""
    if isinstance(doc, dict) and doc.get("resourceType") == "Parameters":
        params = doc.get("parameter")
        found = [
            (i, p)
            for i, p in enumerate(params if isinstance(params, list) else [])
            if isinstance(p, dict) and p.get("name") == "bundle"
        ]
        if len(found) != 1 or not isinstance(found[0][1].get("resource"), dict):
            raise Outcome(
                400,
                [
                    issue(
                        "required",
                        "a Parameters body must have exactly one parameter named 'bundle' "
                        "holding the Bundle as its resource",
                        "Parameters.parameter",
                    )
                ],
            )
        i, param = found[0]
        return param["resource"], f"Parameters.parameter[{i}].resource"
    return doc, "Bundle"


def _check_types(doc: Any, where: str) -> None:
    """A Bundle that fhir.resources can validate (``structure_problems``)."""
    if not isinstance(doc, dict) or doc.get("resourceType") != "Bundle":
        given = doc.get("resourceType") if isinstance(doc, dict) else type(doc).__name__
        raise Outcome(
            400,
            [
                issue(
                    "structure",
                    f"expected a FHIR Bundle (resourceType 'Bundle'), got {given!r}",
                    f"{where}.resourceType",
                )
            ],
        )
    found = [issue(code, message, where + path) for path, code, message in structure_problems(doc)]
    entries = doc.get("entry")
    for i, entry in enumerate(entries if isinstance(entries, list) else []):
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if isinstance(resource, dict) and "resourceType" not in resource:
            found.append(
                issue(
                    "required",
                    "an entry's resource needs a resourceType",
                    f"{where}.entry[{i}].resource.resourceType",
                )
            )
    if found:
        raise Outcome(400, found)


def _validation_issue(err: Any, where: str) -> dict[str, Any]:
    loc = list(err["loc"])
    while loc and loc[-1] in ("__root__", "root"):  # pydantic's name for the value itself
        loc.pop()
    path = where + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc)
    value = err.get("input")
    shown = "" if isinstance(value, (dict, list)) or value is None else f" (value {value!r})"
    return issue("structure", f"{path}: {err['msg']}{shown}", path)


def _problem_issue(
    p: Problem, where: str, patient_at: int, obs_at: Sequence[int]
) -> dict[str, Any]:
    if p.resource == "Patient":
        base = f"{where}.entry[{patient_at}].resource"
    elif p.index is not None:
        base = f"{where}.entry[{obs_at[p.index]}].resource"
    else:
        base = f"{where}.entry"
    expression = base if p.element is None else f"{base}.{p.element}"
    if p.value is None and p.element in (None, "birthDate", "id"):
        code = "required"  # nothing given where something must be
    elif p.element is not None and p.element.endswith(("valueQuantity.code", ".system")):
        code = "code-invalid"  # a unit the mapping does not accept
    elif p.element == "subject":
        code = "business-rule"
    else:
        code = "value"
    found = "" if p.value is None else f"; found {p.value!r}"
    return issue(code, f"{p.message}{found}; expected {p.expected}", expression)


def _assessment(row: dict[str, Any], display_name: str, read: _Read) -> dict[str, Any]:
    pid = row["id"]
    return RiskAssessment(
        id=pid,
        identifier=[{"system": PREDICTION_SYSTEM, "value": pid}],
        status="final",
        method={
            "coding": [
                {
                    "system": MODEL_SYSTEM,
                    "code": row["model_name"],
                    "version": row["model_version"],
                    "display": display_name,
                }
            ],
            "text": f"{display_name}, model version {row['model_version']}",
        },
        subject={"reference": read.subject},
        occurrenceDateTime=read.mapped.occurrence,
        basis=[{"reference": r} for r in read.mapped.basis],
        prediction=[
            {
                "outcome": {"coding": [SEPSIS], "text": "Sepsis"},
                "probabilityDecimal": row["probability"],
                "qualitativeRisk": {"coding": [{"system": RISK_SYSTEM, "code": row["risk_band"]}]},
                "rationale": _rationale(row),
            }
        ],
        note=[{"text": NOT_A_DEVICE}],
    ).model_dump(mode="json")


def _rationale(row: dict[str, Any]) -> str:
    """The largest contributions (Service.predict_one, largest first), threshold and label."""
    reasons = []
    for c in row["contributions"][:TOP_REASONS]:
        value = "not measured" if c["value"] is None else f"= {c['value']:g}"
        effect = "raises" if c["contribution"] > 0 else "lowers"
        if c["contribution"] == 0:
            effect = "does not change"
        reasons.append(f"{c['feature']} {value} {effect} risk ({c['contribution']:+.2f})")
    return (
        "Top reasons (change in log-odds against the value not measured): "
        + "; ".join(reasons)
        + f". Threshold {row['threshold']:.3g}: label {row['label']}."
    )
