"""Test data builders shared by the API, DB, monitoring and server tests."""

from __future__ import annotations

from typing import Any

# Row 1 of the training file (a positive case), by dataset code.
PATIENT: dict[str, Any] = {
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

# The case study's request body (descriptive names, no ID).
CASE_STUDY_BODY: dict[str, Any] = {
    "plasma_glucose": 6,
    "blood_work_result_1": 148,
    "blood_pressure": 72,
    "blood_work_result_2": 35,
    "blood_work_result_3": 0,
    "body_mass_index": 33.6,
    "blood_work_result_4": 0.627,
    "age": 50,
    "insurance": 0,
}


def patient(**changes: Any) -> dict[str, Any]:
    """PATIENT with some fields changed; a value of ... removes the field."""
    body = {**PATIENT, **changes}
    return {k: v for k, v in body.items() if v is not ...}


def patients(n: int, prefix: str = "P") -> list[dict[str, Any]]:
    """n distinct, valid patients (IDs prefix0..., glucose varying so risks differ)."""
    return [patient(ID=f"{prefix}{i}", PL=80 + (i * 7) % 120, Age=21 + i % 60) for i in range(n)]


def audit_rows(
    audit: Any,
    n: int,
    *,
    ids: list[str],
    probability: float | list[float] = 0.5,
    label: str = "Positive",
    risk_band: str = "high",
    patient: str = "P",
    **shared: Any,
) -> Any:
    """``audit.insert.params`` for ``n`` estimates of a made-up model ``m`` of version ``v``
    (patients ``P0``, ``P1``...); ``shared`` overrides the values common to the rows
    (``created_at``, ``caller``, ``source``, ``model_name``, ``model_version``...)."""
    from datetime import UTC, datetime

    common = {
        "created_at": datetime.now(UTC),
        "request_id": "r",
        "caller": "c",
        "source": "predict",
        "inputs": {"PL": 148},
        "model_name": "m",
        "model_version": "v",
        "threshold": 0.3,
        "contributions": None,
        **shared,
    }
    each = {
        "id": ids,
        "patient_id": [f"{patient}{i}" for i in range(n)],
        "probability": probability if isinstance(probability, list) else [probability] * n,
        "label": [label] * n,
        "risk_band": [risk_band] * n,
    }
    return audit.insert.params(n, each, common)


def record_scored(audit: Any, model: Any, X: Any, stamps: list[Any]) -> Any:
    """Record the estimates ``model`` (a ServedModel) makes for the rows of ``X``, created at
    ``stamps``, in the audit log ``audit``, as a batch call would; returns the scores."""
    from sepsis_api.ids import new_ids
    from sepsis_api.ml.scoring import score
    from sepsis_api.schema import FEATURES

    s = score(model, X)
    each = {
        "id": new_ids(len(X)),
        "created_at": stamps,
        "patient_id": [None] * len(X),
        "inputs": [dict(zip([f.code for f in FEATURES], r, strict=True)) for r in X.tolist()],
        "probability": s.probability.tolist(),
        "label": s.label.tolist(),
        "risk_band": s.band.tolist(),
    }
    same = {
        "request_id": "r",
        "caller": "t",
        "source": "batch",
        "model_name": model.name,
        "model_version": model.version,
        "threshold": model.threshold,
        "contributions": None,
    }
    audit.record(audit.insert.params(len(X), each, same))
    return s
