"""Request and response models, generated from the feature schema (sepsis_api.schema)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from itertools import chain
from operator import attrgetter
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import (
    AliasChoices,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    create_model,
)
from pydantic_core import PydanticCustomError

from sepsis_api.schema import FEATURES, Feature


def _feature_field(f: Feature) -> tuple[Any, Any]:
    # Range rules are pydantic-core constraints (no Python call per value: batches stay fast);
    # errors.py words their errors with the schema's rule.
    kind = float | None if f.nullable else float
    extra: dict[str, Any] = {"x-unit": f.unit} if f.unit else {}
    constraints: dict[str, Any] = {"ge": f.minimum, "le": f.maximum}
    if f.choices is not None:
        extra["enum"] = list(f.choices)
        constraints["multiple_of"] = 1
    description = f"{f.description}" + (f" ({f.unit})" if f.unit else "") + f". {f.rule}."
    field = Field(
        None if f.nullable else ...,
        validation_alias=AliasChoices(f.code, f.name),
        serialization_alias=f.code,
        description=description + f" Also accepted as `{f.name}`.",
        json_schema_extra=extra,
        **constraints,
    )
    return kind, field


_EXAMPLE: dict[str, Any] = {
    "ID": "ICU200010",
    "PRG": 6,
    "PL": 148,
    "PR": 72,
    "SK": 35,
    "TS": 0,
    "M11": 33.6,
    "BD2": 0.627,
    "Age": 50,
    "Insurance": 0,
}

Patient = create_model(  # type: ignore[call-overload]  # mypy checks **fields against __base__
    "Patient",
    __config__=ConfigDict(
        extra="forbid",
        strict=True,
        allow_inf_nan=False,
        json_schema_extra={"examples": [_EXAMPLE]},
    ),
    __doc__="One patient's measurements, by dataset code or descriptive name. Leave a feature "
    "out, or send null or 0, where it was not measured (only where the schema allows).",
    ID=(
        str | None,
        Field(
            None,
            max_length=128,
            validation_alias=AliasChoices("ID", "id"),
            description="Your identifier for the patient (kept in the audit log).",
        ),
    ),
    **{f.code: _feature_field(f) for f in FEATURES},
)


_FEATURE_VALUES = attrgetter(*(f.code for f in FEATURES))


def patient_matrix(patients: list[Any]) -> np.ndarray:
    """Features in schema order; None (not measured) becomes NaN, as the models expect."""
    rows = [_FEATURE_VALUES(p) for p in patients]
    try:
        flat = np.fromiter(
            chain.from_iterable(rows), dtype=np.float64, count=len(rows) * len(FEATURES)
        )
        return flat.reshape(len(rows), len(FEATURES))
    except TypeError:  # some None: the object route converts them to NaN
        return np.array(rows, dtype=object).astype(np.float64).reshape(len(rows), len(FEATURES))


def patient_inputs(p: Any) -> dict[str, float | None]:
    return {f.code: getattr(p, f.code) for f in FEATURES}


def inputs_matrix(inputs: dict[str, float | None]) -> np.ndarray:
    return np.array([[inputs[f.code] for f in FEATURES]], dtype=np.float64)


class BatchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    patients: list[Patient] = Field(min_length=1)


class Contribution(BaseModel):
    feature: str = Field(description="Dataset code of the feature.")
    name: str = Field(description="Descriptive name of the feature.")
    value: float | None = Field(description="The patient's value; null = not measured.")
    contribution: float = Field(
        description="Change in log-odds of the calibrated risk caused by this value, compared "
        "with the value treated as not measured (the training median). Positive = raises risk."
    )


class Prediction(BaseModel):
    prediction_id: str
    model: str
    model_version: str
    probability: float = Field(description="Calibrated probability of sepsis, 0-1.")
    label: Literal["Positive", "Negative"] = Field(
        description="Positive when probability >= threshold."
    )
    risk_band: Literal["low", "moderate", "high"]
    threshold: float
    contributions: list[Contribution] | None = Field(
        None, description="Per-feature reasons, largest first (with explain=true)."
    )


class PredictResponse(BaseModel):
    patient_id: str | None
    predictions: list[Prediction] = Field(
        description="One per model: the chosen one, or every model with model=all."
    )
    contribution_scale: Literal["log-odds"] = "log-odds"


class BatchItem(BaseModel):
    index: int = Field(description="0-based position of the patient in the request.")
    patient_id: str | None
    prediction_id: str
    probability: float
    label: Literal["Positive", "Negative"]
    risk_band: Literal["low", "moderate", "high"]


class BatchResponse(BaseModel):
    model: str
    model_version: str
    threshold: float
    count: int
    results: list[BatchItem]


class FieldError(BaseModel):
    field: str | None = Field(description="The field (or CSV column) at fault.")
    row: int | None = Field(
        None,
        description="Batch index (JSON, 0-based) or CSV data row "
        "(1-based) of the patient at fault.",
    )
    value: Any = Field(None, description="The value that was sent.")
    expected: str = Field(description="What would have been valid.")
    message: str


class ErrorResponse(BaseModel):
    detail: str
    errors: list[FieldError] = []
    request_id: str | None = None


class FeatureInfo(BaseModel):
    code: str
    name: str
    description: str
    unit: str | None
    minimum: float
    maximum: float
    choices: list[int] | None
    zero_means_missing: bool
    integer: bool = Field(
        description="Whole numbers in the data set (a display hint: "
        "fractional values are accepted)."
    )
    rule: str


class FeaturesResponse(BaseModel):
    features: list[FeatureInfo]
    provenance: str
    disclaimer: str


class ModelSummary(BaseModel):
    name: str
    display_name: str
    version: str
    default: bool
    calibration: str
    threshold: float
    risk_bands: dict[str, float]
    metrics: dict[str, dict[str, float]]
    operating_point: dict[str, dict[str, float]]


class ModelsResponse(BaseModel):
    version: str
    default_model: str
    models: list[ModelSummary]


class ModelDetail(ModelSummary):
    card: dict[str, Any] = Field(description="The version's full model card (card.json).")


# RFC 3339 section 5.6 `date-time`, what the OpenAPI `format: date-time` promises: a full date,
# "T", a time with seconds and an optional fraction, and a UTC offset ("Z" or +hh:mm/-hh:mm).
# T and Z may be lower case (RFC 3339 allows it). The offset is required: a time without one
# names no instant (the server's zone is not the caller's), so it is refused, not guessed. A
# number (Unix time), a date alone, a space for "T" or other ISO 8601 forms are refused too.
_RFC3339 = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}"  # full-date
    r"[Tt][0-9]{2}:[0-9]{2}:([0-9]{2})(\.[0-9]+)?"  # "T" partial-time (group 1: the second)
    r"([Zz]|[+-][0-9]{2}:[0-9]{2})"  # time-offset
)
RFC3339_EXPECTED = (
    "an RFC 3339 date-time, e.g. 2026-11-01T08:00:00Z (with its time zone offset: Z or +hh:mm)"
)


def rfc3339(value: object) -> datetime | None:
    """An RFC 3339 date-time string as an aware datetime in UTC; anything else is a 422."""
    if value is None:
        return None
    if not isinstance(value, str) or (m := _RFC3339.fullmatch(value)) is None:
        raise PydanticCustomError("rfc3339_date_time", f"Input should be {RFC3339_EXPECTED}")
    text = value.upper()
    if m[1] == "60":  # a leap second, which datetime cannot hold: read as the second before it
        text = text[: m.start(1)] + "59" + text[m.end(1) :]
    try:
        return datetime.fromisoformat(text).astimezone(UTC)
    except (ValueError, OverflowError):  # e.g. month 13, or 0001-01-01T00:00:00+01:00 in UTC
        raise PydanticCustomError(
            "rfc3339_date_time",
            f"Input should be {RFC3339_EXPECTED}, a real one within the years 1 to 9999 in UTC",
        ) from None


def no_nul(value: object) -> object:
    """A NUL character (which PostgreSQL can neither store nor compare) is a 422."""
    if isinstance(value, str) and "\x00" in value:
        raise PydanticCustomError("no_nul", "Input should be text without NUL characters")
    return value


def _blank_is_none(value: object) -> object:
    """Blank text is text left out; a NUL character is a 422."""
    value = no_nul(value)
    return None if isinstance(value, str) and not value.strip() else value


Outcome = Literal["Positive", "Negative"]
OUTCOME_FIELDS = ("prediction_id", "outcome", "observed_at", "source", "note")


class OutcomeRequest(BaseModel):
    """A prediction's true outcome, as later observed."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        json_schema_extra={
            "examples": [
                {
                    "outcome": "Positive",
                    "observed_at": "2026-11-27T14:00:00Z",
                    "source": "ward-4",
                    "note": "blood culture positive",
                }
            ]
        },
    )
    outcome: Outcome = Field(
        description="Whether the patient developed sepsis (the data set's `Sepssis` label)."
    )
    observed_at: Annotated[datetime | None, BeforeValidator(rfc3339)] = Field(
        None,
        description="When the outcome was observed: an RFC 3339 date-time with its offset, "
        "e.g. 2026-11-27T14:00:00Z.",
    )
    source: Annotated[str | None, BeforeValidator(_blank_is_none)] = Field(
        None, max_length=64, description="Where the outcome comes from (a system, a ward)."
    )
    note: Annotated[str | None, BeforeValidator(_blank_is_none)] = Field(
        None, max_length=2000, description="Free text."
    )


class OutcomeBatchItem(OutcomeRequest):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"prediction_id": "019ad1c2-3f4b-7000-8000-0123456789ab", "outcome": "Negative"}
            ]
        }
    )
    prediction_id: str = Field(
        max_length=64, description="The `prediction_id` of a recorded estimate."
    )


class OutcomeBatchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    outcomes: list[OutcomeBatchItem] = Field(min_length=1)


class OutcomeRevision(BaseModel):
    prediction_id: str
    revision: int = Field(
        description="1 for the first outcome recorded for the prediction, then 2, 3...; the "
        "highest is the current one. Earlier revisions are kept."
    )
    outcome: Outcome
    observed_at: datetime | None
    source: str | None
    note: str | None
    recorded_at: datetime
    recorded_by: str = Field(description="Id of the API key that recorded it.")


class CurrentOutcome(OutcomeRevision):
    revisions: int = Field(description="How many revisions the prediction's outcome has.")


class OutcomeBatchResponse(BaseModel):
    count: int
    created: int = Field(description="Outcomes that added a revision.")
    unchanged: int = Field(description="Outcomes equal to the current revision (not added).")
    outcomes: list[CurrentOutcome] = Field(
        description="In request order: each prediction's current outcome after its item."
    )


class OutcomeRevisions(BaseModel):
    prediction_id: str
    revisions: list[OutcomeRevision] = Field(description="Oldest first; the last is current.")


class HistoryRecord(BaseModel):
    prediction_id: str
    created_at: datetime
    caller: str
    source: str
    request_id: str
    patient_id: str | None
    model: str
    model_version: str
    probability: float
    threshold: float
    label: str
    risk_band: str
    inputs: dict[str, float | None]
    contributions: list[Contribution] | None = None
    outcome: CurrentOutcome | None = Field(
        None, description="The current outcome recorded for this estimate, if any."
    )


class HistoryPage(BaseModel):
    items: list[HistoryRecord]
    next_cursor: str | None = Field(description="Pass as `cursor` to get the next (older) page.")


CompatRequest = create_model(  # type: ignore[call-overload]  # **fields checked against __base__
    "CompatRequest",
    __config__=ConfigDict(extra="forbid", strict=True, allow_inf_nan=False),
    __doc__="The case study's request body: every feature by its descriptive name.",
    **{
        f.name: (
            float,
            Field(
                ...,
                ge=f.minimum,
                le=f.maximum,
                multiple_of=1 if f.choices is not None else None,
                description=f"{f.code}: {f.description}. {f.rule}.",
            ),
        )
        for f in FEATURES
    },
)


class CompatResponse(BaseModel):
    """The case study's reply: labels and [[p_negative, p_positive]] per model."""

    logistic_regression_prediction: Literal["Positive", "Negative"]
    random_forest_prediction: Literal["Positive", "Negative"]
    logistic_regression_probability: list[list[float]]
    random_forest_probability: list[list[float]]
