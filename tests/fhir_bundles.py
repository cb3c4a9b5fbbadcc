"""FHIR R4 test data built with fhir.resources (R4B models, which read R4 content): a Patient,
Observations coded as the default mapping expects, and Bundles of them."""

from __future__ import annotations

from typing import Any

from fhir.resources.R4B.bundle import Bundle, BundleEntry
from fhir.resources.R4B.observation import Observation
from fhir.resources.R4B.patient import Patient

from factories import PATIENT

LOINC = "http://loinc.org"
LOCAL = "urn:sepsis-api:feature"
UCUM = "http://unitsofmeasure.org"
WHEN = "2024-03-01T09:30:00+00:00"  # the observations' time in PATIENT_OBSERVATIONS
BIRTH = "1973-11-20"  # 50 years old on WHEN, as PATIENT's Age

# feature code -> (system, code, UCUM unit or None for valueInteger/valueBoolean)
CODING: dict[str, tuple[str, str, str | None]] = {
    "PRG": (LOINC, "11996-6", None),
    "PL": (LOINC, "1518-0", "mg/dL"),
    "PR": (LOINC, "8462-4", "mm[Hg]"),
    "SK": (LOCAL, "SK", "mm"),
    "TS": (LOINC, "27826-7", "u[IU]/mL"),
    "M11": (LOINC, "39156-5", "kg/m2"),
    "BD2": (LOCAL, "BD2", "1"),
    "Insurance": (LOCAL, "Insurance", None),
}


def patient(id: str = "pat-1", birth: str | None = BIRTH) -> Patient:
    return Patient(id=id, birthDate=birth) if birth is not None else Patient(id=id)


def observation(
    id: str | None,
    system: str,
    code: str,
    value: Any,
    unit: str | None = None,
    when: str | None = WHEN,
    subject: str | None = "Patient/pat-1",
    **fields: Any,
) -> Observation:
    """An Observation with a valueQuantity (``unit`` given), else a valueBoolean, valueString
    or valueInteger by the value's type (None: no value)."""
    body: dict[str, Any] = {
        "status": "final",
        "code": {"coding": [{"system": system, "code": code}]},
    }
    if id is not None:
        body["id"] = id
    if when is not None:
        body["effectiveDateTime"] = when
    if subject is not None:
        body["subject"] = {"reference": subject}
    if unit is not None:
        body["valueQuantity"] = {"value": value, "unit": unit, "system": UCUM, "code": unit}
    elif isinstance(value, bool):
        body["valueBoolean"] = value
    elif isinstance(value, str):
        body["valueString"] = value
    elif value is not None:
        body["valueInteger"] = value
    body.update(fields)
    return Observation.model_validate(body)


def feature_observation(code: str, value: Any, **kw: Any) -> Observation:
    system, loinc, unit = CODING[code]
    if code == "Insurance":
        value = bool(value)
    return observation(
        kw.pop("id", f"obs-{code}"), system, loinc, value, kw.pop("unit", unit), **kw
    )


def patient_observations(values: dict[str, Any] | None = None, **kw: Any) -> list[Observation]:
    """One Observation per mapped feature of ``values`` (default: PATIENT's)."""
    values = values if values is not None else PATIENT
    return [feature_observation(c, values[c], **kw) for c in CODING if c in values]


def bundle(pat: Patient | None, observations: list[Observation], **kw: Any) -> Bundle:
    entries = [] if pat is None else [BundleEntry(fullUrl=f"urn:uuid:{pat.id}", resource=pat)]
    entries += [BundleEntry(resource=o) for o in observations]
    return Bundle(type="collection", entry=entries, **kw)


def bundle_json(pat: Patient | None, observations: list[Observation]) -> str:
    return bundle(pat, observations).model_dump_json()
