"""FHIR R4 Observations and a Patient -> the model's features, through a mapping file.

The mapping (``fhir_mapping.json`` beside this module, or the file ``SEPSIS_API_FHIR_MAPPING``
names) says, for each feature but Age, which codes give it (LOINC where one exists, else
``urn:sepsis-api:feature`` with the dataset code) and which UCUM unit codes are accepted, each
with the factor that turns it into the feature's unit (glucose: 1 mmol/L = 18.0156 mg/dL).

Rules (``features_from``):

- an Observation gives a feature when one of its ``code.coding`` (or of a ``component``'s, as
  in a blood pressure panel) is mapped to it; unknown codes are ignored, and so are
  Observations with status registered, cancelled or entered-in-error, or without a value;
- of several Observations for a feature the newest is used (``effective[x]``, a period's end,
  else ``issued``; one without a time counts as the oldest; on a tie the later one given) and
  only that one is checked and named in ``basis``;
- a value is a ``valueQuantity`` whose UCUM ``code`` (``unit`` when it has no code) is one the
  mapping accepts, or, where the mapping accepts the plain number ``1``, a quantity without a
  unit, a ``valueInteger`` or a ``valueBoolean`` (true = 1); the converted value must pass the
  feature schema's rule (``schema.py``);
- a feature with no Observation is "not measured" (None) where the schema allows it, else a
  problem naming it;
- Age is the whole years from ``Patient.birthDate`` to the occurrence date: the newest
  effective time of the Observations used (now, when none has one). A partial birth date is
  taken at its middle: a year alone as 1 July, a year and month as the 15th.

Every problem found is collected and raised together as one ``MappingProblems``. No FastAPI
here: the FHIR operation (``fhir.py``) and CDS Hooks both read features through this module.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from decimal import Decimal
from importlib.resources import files
from pathlib import Path
from typing import Any

from fhir.resources.R4B import get_fhir_model_class
from fhir.resources.R4B.observation import Observation
from fhir.resources.R4B.patient import Patient
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from sepsis_api.schema import BY_CODE, FEATURE_CODES, Feature

UCUM = "http://unitsofmeasure.org"
LOCAL_SYSTEM = "urn:sepsis-api:feature"  # codes of the features LOINC has no code for
AGE = "Age"
PLAIN_NUMBER = "1"  # the UCUM unit of a pure number; also allows valueInteger / valueBoolean
SKIPPED_STATUSES = frozenset({"registered", "cancelled", "entered-in-error"})
# JSON nesting levels accepted in a resource: real ones need about 10 (an extension in a
# component of an Observation in a Bundle entry); fhir.resources validates recursively and
# would exhaust Python's stack on a deeper one.
MAX_DEPTH = 48
DEFAULT_MAPPING = files("sepsis_api.api.protocols").joinpath("fhir_mapping.json")


# ---- the mapping file -------------------------------------------------------------------


class Code(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    system: str = Field(min_length=1)
    code: str = Field(min_length=1)
    display: str | None = None

    @property
    def token(self) -> str:
        return f"{self.system}|{self.code}"


class FeatureRule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    codes: tuple[Code, ...] = Field(min_length=1)
    units: dict[str, float] = Field(min_length=1)  # UCUM code -> factor to the feature's unit
    note: str | None = None

    @field_validator("units")
    @classmethod
    def _positive(cls, units: dict[str, float]) -> dict[str, float]:
        bad = [u for u, k in units.items() if not (math.isfinite(k) and k > 0)]
        if bad:
            raise ValueError(f"factors must be positive numbers (units {', '.join(bad)})")
        return units


class FeatureMapping(BaseModel):
    """A loaded mapping file: feature code -> the codes and units that give it."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    about: str | None = None
    features: dict[str, FeatureRule]

    @field_validator("features")
    @classmethod
    def _known_features(cls, features: dict[str, FeatureRule]) -> dict[str, FeatureRule]:
        unknown = sorted(set(features) - set(FEATURE_CODES))
        if unknown:
            raise ValueError(
                f"unknown feature(s) {', '.join(unknown)}; known: {', '.join(FEATURE_CODES)}"
            )
        if AGE in features:
            raise ValueError("Age comes from Patient.birthDate and cannot be mapped to codes")
        required = [f.code for f in BY_CODE.values() if not f.nullable and f.code != AGE]
        unmapped = [c for c in required if c not in features]
        if unmapped:
            raise ValueError(f"required feature(s) {', '.join(unmapped)} have no codes")
        seen: dict[str, str] = {}
        for feature, rule in features.items():
            for c in rule.codes:
                if seen.setdefault(c.token, feature) != feature:
                    raise ValueError(
                        f"code {c.token} is mapped to both {seen[c.token]} and {feature}"
                    )
        return features

    def lookup(self) -> dict[tuple[str, str], str]:
        """(system, code) -> feature code."""
        return {(c.system, c.code): f for f, rule in self.features.items() for c in rule.codes}


class MappingFileError(ValueError):
    """The mapping file cannot be read or breaks the rules above; the message names it."""


def load_mapping(path: Path | str | None = None) -> FeatureMapping:
    """The mapping at ``path`` (JSON), or the default that ships with the package."""
    where = str(path) if path is not None else "the default FHIR mapping"
    try:
        text = Path(path).read_text("utf-8") if path is not None else DEFAULT_MAPPING.read_text()
        return FeatureMapping.model_validate_json(text)
    except OSError as e:
        raise MappingFileError(f"{where}: cannot be read ({e.strerror or e})") from None
    except ValidationError as e:
        first = e.errors()[0]
        loc = ".".join(str(p) for p in first["loc"]) or "(top level)"
        raise MappingFileError(f"{where}: {loc}: {first['msg']}") from None


# ---- the result and its problems --------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the input: where (``field``), what was found, what was expected."""

    resource: str  # "Patient" or "Observation"
    index: int | None  # position in the observations given (Observation problems)
    element: str | None  # path inside that resource ("valueQuantity.code"); None = itself
    value: str | None
    expected: str
    message: str
    feature: str | None = None  # the feature concerned, when there is one

    @property
    def field(self) -> str:
        """A FHIRPath-like location: ``Patient.birthDate``, ``Observation[2].valueQuantity``."""
        at = self.resource if self.index is None else f"{self.resource}[{self.index}]"
        return at if self.element is None else f"{at}.{self.element}"


class MappingProblems(ValueError):
    """Everything that stopped the mapping; ``problems`` lists each one."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("; ".join(f"{p.field}: {p.message}" for p in problems))
        self.problems = problems


@dataclass(frozen=True)
class MappedFeatures:
    values: dict[str, float | None]  # every feature code in schema order; None = not measured
    basis: list[str]  # references of the Observations used, in feature order, each once
    occurrence: datetime  # the newest time of the Observations used (timezone-aware)
    used: dict[str, int]  # feature code -> position of its Observation in those given


# ---- the mapping ------------------------------------------------------------------------


@dataclass(frozen=True)
class _Candidate:
    index: int
    when: datetime | None
    element: str  # "" for the observation's own value, "component[i]." for a component's
    source: Any  # the Observation or its component (both have value[x])


def features_from(
    patient: Patient | Mapping[str, Any] | None,
    observations: Sequence[Observation | Mapping[str, Any]],
    mapping: FeatureMapping,
    *,
    references: Sequence[str | None] | None = None,
    patient_references: Sequence[str] = (),
    now: datetime | None = None,
) -> MappedFeatures:
    """The features of ``patient`` from ``observations`` (fhir.resources objects or plain
    dicts) by ``mapping``; raises MappingProblems listing every problem.

    ``references`` gives each observation's reference for ``basis`` (default
    ``Observation/<id>``; a Bundle's ``urn:uuid:`` fullUrl when it has no id);
    ``patient_references`` are other names of the patient that an Observation's ``subject``
    may use (its fullUrl). ``now`` is the occurrence when no Observation used has a time.
    """
    problems: list[Problem] = []
    pat = _parse_patient(patient, problems)
    parsed = [_parse_observation(o, i, problems) for i, o in enumerate(observations)]
    refs = list(references) if references is not None else [None] * len(parsed)
    if len(refs) != len(parsed):
        raise ValueError("references must give one entry per observation")
    own = _patient_names(pat, patient_references)
    lookup = mapping.lookup()

    candidates: dict[str, list[_Candidate]] = {}
    for i, obs in enumerate(parsed):
        if obs is None or obs.status in SKIPPED_STATUSES:
            continue
        found = _mapped_parts(obs, i, lookup)
        if found and own and not _same_subject(obs, own):
            problems.append(
                Problem(
                    "Observation",
                    i,
                    "subject",
                    obs.subject.reference if obs.subject else None,
                    f"a reference to the patient ({', '.join(sorted(own))})",
                    "the Observation is about another patient",
                )
            )
            continue
        for feature, cand in found:
            candidates.setdefault(feature, []).append(cand)

    values: dict[str, float | None] = dict.fromkeys(FEATURE_CODES)
    used: dict[str, int] = {}
    times: list[datetime] = []
    for code in FEATURE_CODES:
        if code == AGE:
            continue
        f, rule = BY_CODE[code], mapping.features.get(code)
        cands = candidates.get(code)
        if not cands or rule is None:
            if not f.nullable:
                problems.append(_missing(f, rule))
            continue
        newest = max(enumerate(cands), key=lambda c: (_sortable(c[1].when), c[0]))[1]
        value = _value(f, rule, newest, problems)
        if value is not None:
            values[code] = value
            used[code] = newest.index
            if newest.when is not None:
                times.append(newest.when)

    occurrence = max(times) if times else (now or datetime.now(UTC))
    age = _age(pat, occurrence, problems)
    if age is not None:
        values[AGE] = float(age)

    basis: list[str] = []
    for code, i in used.items():
        obs = parsed[i]
        ref = refs[i] or (f"Observation/{obs.id}" if obs is not None and obs.id else None)
        if ref is None:
            problems.append(
                Problem(
                    "Observation",
                    i,
                    "id",
                    None,
                    "an id (or a Bundle fullUrl) the RiskAssessment's basis can refer to",
                    f"the Observation giving {code} has no id",
                    code,
                )
            )
        elif ref not in basis:
            basis.append(ref)
    if problems:
        raise MappingProblems(problems)
    return MappedFeatures(values, basis, occurrence, used)


def structure_problems(doc: Any) -> list[tuple[str, str, str]]:
    """What stops fhir.resources from validating ``doc`` (a resource as plain JSON) with a
    ValidationError: nesting deeper than MAX_DEPTH (it would exhaust the stack) and a
    ``resourceType`` at any depth that is no FHIR R4 type (it raises a bare KeyError).
    Each is (path below ``doc`` such as ``.entry[0].resource.resourceType``, OperationOutcome
    issue type, message)."""
    problems: list[tuple[str, str, str]] = []
    stack: list[tuple[Any, str, int]] = [(doc, "", 0)]
    while stack:  # no recursion: JSON may nest deeper than Python's stack
        node, path, depth = stack.pop()
        if depth > MAX_DEPTH and isinstance(node, (dict, list)):
            return [(path, "too-costly", f"nested deeper than {MAX_DEPTH} levels")]
        if isinstance(node, dict):
            kind = node.get("resourceType")
            if "resourceType" in node and not _known_type(kind):
                problems.append(
                    (
                        f"{path}.resourceType",
                        "structure",
                        f"resourceType {kind!r} is not a FHIR R4 resource type",
                    )
                )
            stack.extend((v, f"{path}.{k}", depth + 1) for k, v in reversed(node.items()))
        elif isinstance(node, list):
            stack.extend((v, f"{path}[{i}]", depth + 1) for i, v in reversed(list(enumerate(node))))
    return problems


def _known_type(kind: Any) -> bool:
    if not isinstance(kind, str) or not kind.isalpha():
        return False
    try:
        get_fhir_model_class(kind)
    except (ValueError, KeyError, ImportError):
        return False
    return True


def _unreadable(resource: str, index: int | None, doc: Any) -> list[Problem]:
    return [
        Problem(resource, index, path.lstrip(".") or None, None, "valid FHIR R4 JSON", message)
        for path, _, message in structure_problems(doc)
    ]


def _parse_patient(patient: Any, problems: list[Problem]) -> Patient | None:
    if patient is None or isinstance(patient, Patient):
        return patient
    if not isinstance(patient, Mapping) or patient.get("resourceType") != "Patient":
        problems.append(
            Problem(
                "Patient", None, "resourceType", _text(_kind(patient)), "Patient", "not a Patient"
            )
        )
        return None
    unreadable = _unreadable("Patient", None, patient)
    if unreadable:
        problems.extend(unreadable)
        return None
    try:
        return Patient.model_validate(patient)
    except ValidationError as e:
        problems.extend(_invalid("Patient", None, e))
        return None


def _parse_observation(obs: Any, i: int, problems: list[Problem]) -> Observation | None:
    if isinstance(obs, Observation):
        return obs
    if not isinstance(obs, Mapping) or obs.get("resourceType") != "Observation":
        problems.append(
            Problem(
                "Observation",
                i,
                "resourceType",
                _text(_kind(obs)),
                "Observation",
                "not an Observation",
            )
        )
        return None
    unreadable = _unreadable("Observation", i, obs)
    if unreadable:
        problems.extend(unreadable)
        return None
    try:
        return Observation.model_validate(obs)
    except ValidationError as e:
        problems.extend(_invalid("Observation", i, e))
        return None


def _kind(resource: Any) -> Any:
    return (
        resource.get("resourceType") if isinstance(resource, Mapping) else type(resource).__name__
    )


def _invalid(resource: str, index: int | None, e: ValidationError) -> list[Problem]:
    """fhir.resources' validation errors, each as a problem at its element."""
    out = []
    for err in e.errors():
        loc = ".".join(str(p) for p in err["loc"] if p != "__root__") or None
        value = err.get("input")
        shown = None if isinstance(value, (dict, list)) else _text(value)
        out.append(Problem(resource, index, loc, shown, f"valid FHIR R4 {resource}", err["msg"]))
    return out


def _patient_names(pat: Patient | None, extra: Sequence[str]) -> set[str]:
    names = set(extra)
    if pat is not None and pat.id:
        names.add(f"Patient/{pat.id}")
    return names


def _same_subject(obs: Observation, own: set[str]) -> bool:
    ref = obs.subject.reference if obs.subject is not None else None
    if not ref:
        return True  # no subject given: the Observation came with this patient
    return ref in own or any(ref.endswith("/" + name) for name in own if "/" in name)


def _mapped_parts(
    obs: Observation, i: int, lookup: Mapping[tuple[str, str], str]
) -> list[tuple[str, _Candidate]]:
    """(feature, candidate) for the Observation's own code and each component's."""
    when = _observed_at(obs)
    out: list[tuple[str, _Candidate]] = []
    feature = _feature_of(obs.code, lookup)
    if feature is not None and _has_value(obs):
        out.append((feature, _Candidate(i, when, "", obs)))
    for j, comp in enumerate(obs.component or []):
        feature = _feature_of(comp.code, lookup)
        if feature is not None and _has_value(comp):
            out.append((feature, _Candidate(i, when, f"component[{j}].", comp)))
    return out


def _feature_of(concept: Any, lookup: Mapping[tuple[str, str], str]) -> str | None:
    for coding in (concept.coding or []) if concept is not None else []:
        feature = lookup.get((coding.system or "", coding.code or ""))
        if feature is not None:
            return feature
    return None


_VALUE_FIELDS = (
    "valueQuantity",
    "valueInteger",
    "valueBoolean",
    "valueString",
    "valueCodeableConcept",
    "valueRange",
    "valueRatio",
    "valueSampledData",
    "valueTime",
    "valueDateTime",
    "valuePeriod",
)


def _has_value(source: Any) -> bool:
    return any(getattr(source, name, None) is not None for name in _VALUE_FIELDS)


def _value(
    f: Feature, rule: FeatureRule, cand: _Candidate, problems: list[Problem]
) -> float | None:
    """The candidate's value in the feature's unit, checked by the schema; None on a problem."""
    src, at = cand.source, cand.element
    units = ", ".join(rule.units)

    def problem(element: str, value: Any, expected: str, message: str) -> None:
        problems.append(
            Problem(
                "Observation", cand.index, at + element, _text(value), expected, message, f.code
            )
        )

    number: float
    if src.valueQuantity is not None:
        q = src.valueQuantity
        unit = q.code if q.code is not None else q.unit
        if q.value is None:
            problem("valueQuantity.value", None, "a number", f"{f.code}: the quantity has no value")
            return None
        if q.comparator is not None:
            problem(
                "valueQuantity.comparator",
                q.comparator,
                "an exact value (no comparator)",
                f"{f.code}: a value given as {q.comparator}{q.value} cannot be scored",
            )
            return None
        if q.code is not None and q.system not in (None, UCUM):
            problem(
                "valueQuantity.system",
                q.system,
                f"{UCUM} (UCUM)",
                f"{f.code}: units must be UCUM codes",
            )
            return None
        factor = rule.units.get(PLAIN_NUMBER if unit in (None, "") else unit)
        if factor is None:
            problem(
                "valueQuantity.code",
                unit if unit not in (None, "") else "(no unit)",
                f"one of the UCUM units {units}",
                f"{_label(f.code, rule)}: unit {unit or '(none)'!r} is not accepted; "
                f"expected {units}",
            )
            return None
        number = float(Decimal(q.value)) * factor
        element = "valueQuantity.value"
    elif src.valueInteger is not None or src.valueBoolean is not None:
        kind = "valueInteger" if src.valueInteger is not None else "valueBoolean"
        raw = src.valueInteger if src.valueInteger is not None else src.valueBoolean
        if PLAIN_NUMBER not in rule.units:
            problem(
                kind, raw, f"a valueQuantity in {units}", f"{f.code} is a measurement with a unit"
            )
            return None
        number, element = float(raw), kind
    else:
        given = next(n for n in _VALUE_FIELDS if getattr(src, n, None) is not None)
        expected = "valueQuantity" + (
            ", valueInteger or valueBoolean" if PLAIN_NUMBER in rule.units else ""
        )
        problem(given, None, expected, f"{f.code}: a {given} cannot be scored; expected {expected}")
        return None
    broken = f.check(number)
    if broken is None and f.integer and not float(number).is_integer():
        broken = "must be a whole number"
    if broken is not None:
        problem(element, f"{number:g}", f.rule, f"{_label(f.code, rule)} {broken}")
        return None
    return number


def _missing(f: Feature, rule: FeatureRule | None) -> Problem:
    codes = " or ".join(c.token for c in rule.codes) if rule is not None else "(none mapped)"
    return Problem(
        "Observation",
        None,
        None,
        None,
        f"an Observation coded {codes} with a value",
        f"{_label(f.code, rule)} is required and no Observation gives it",
        f.code,
    )


def _age(pat: Patient | None, at: datetime, problems: list[Problem]) -> int | None:
    birth = pat.birthDate if pat is not None else None
    if birth is None:
        problems.append(
            Problem(
                "Patient",
                None,
                "birthDate",
                None,
                "a birth date (YYYY, YYYY-MM or YYYY-MM-DD)",
                "Age is required and comes from Patient.birthDate"
                + ("" if pat is not None else "; no Patient was given"),
                AGE,
            )
        )
        return None
    born = _birth_day(birth)
    day = at.date()
    if born > day:
        problems.append(
            Problem(
                "Patient",
                None,
                "birthDate",
                str(birth),
                f"a date on or before the observation date {day.isoformat()}",
                "the birth date is after the observations",
                AGE,
            )
        )
        return None
    years = day.year - born.year - ((day.month, day.day) < (born.month, born.day))
    f = BY_CODE[AGE]
    broken = f.check(float(years))
    if broken is not None:
        problems.append(
            Problem("Patient", None, "birthDate", str(birth), f.rule, f"Age {years} {broken}", AGE)
        )
        return None
    return years


def _birth_day(birth: date | str) -> date:
    """A FHIR date; a partial one at its middle (a year: 1 July; a year and month: the 15th)."""
    if isinstance(birth, date):
        return birth
    parts = [int(p) for p in str(birth).split("-")]
    if len(parts) == 1:
        return date(parts[0], 7, 1)
    return date(parts[0], parts[1], 15 if len(parts) == 2 else parts[2])


def _observed_at(obs: Observation) -> datetime | None:
    """When the Observation was made: effective[x] (a period's end, else start), else issued."""
    period = obs.effectivePeriod
    for value in (
        obs.effectiveDateTime,
        obs.effectiveInstant,
        period.end if period is not None else None,
        period.start if period is not None else None,
        obs.issued,
    ):
        if value is not None:
            return _instant(value)
    return None


def _instant(value: datetime | date | str) -> datetime:
    """A FHIR dateTime (possibly partial: YYYY, YYYY-MM) as an aware datetime, UTC if no zone."""
    if isinstance(value, datetime):
        return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    if isinstance(value, date):
        return datetime.combine(value, time(), UTC)
    parts = [int(p) for p in str(value).split("-")]
    return datetime(
        parts[0], parts[1] if len(parts) > 1 else 1, parts[2] if len(parts) > 2 else 1, tzinfo=UTC
    )


_OLDEST = datetime.min.replace(tzinfo=UTC)


def _sortable(when: datetime | None) -> datetime:
    return _OLDEST if when is None else when


def _label(code: str, rule: FeatureRule | None) -> str:
    """``PL (Glucose [Mass/volume] in Serum or Plasma --2 hours post 75 g glucose PO)``: the
    dataset's own names are the publisher's, not what the values are (see schema.PROVENANCE)."""
    if rule is None:
        return code
    first = rule.codes[0]
    return f"{code} ({first.display or first.token})"


def _text(value: Any) -> str | None:
    return None if value is None else str(value)
