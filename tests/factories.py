"""Test data builders shared by the API, DB and server tests."""

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
