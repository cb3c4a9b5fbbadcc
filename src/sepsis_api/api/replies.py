"""Reply builders shared by the /v1/predict route and its lean path (api/fastpath.py)."""

from __future__ import annotations

from typing import Any

from sepsis_api.api.schemas import patient_inputs, patient_matrix
from sepsis_api.api.service import Service


def prediction(r: dict[str, Any]) -> dict[str, Any]:
    """One estimate of a reply, from its audit row as Service.predict_one returns it."""
    return {
        "prediction_id": r["id"],
        "model": r["model_name"],
        "model_version": r["model_version"],
        "probability": r["probability"],
        "label": r["label"],
        "risk_band": r["risk_band"],
        "threshold": r["threshold"],
        "contributions": r["contributions"],
    }


async def predict_reply(
    svc: Service, patient: Any, model: str | None, explain: bool, caller: str, request_id: str
) -> dict[str, Any]:
    """The body of a /v1/predict reply: the one builder for the route and api/fastpath.py."""
    rows = await svc.predict_one(
        patient_matrix([patient]),
        patient_inputs(patient),
        patient.ID,
        svc.resolve(model),
        explain=explain,
        caller=caller,
        request_id=request_id,
        source="predict",
    )
    return {
        "patient_id": patient.ID,
        "predictions": [prediction(r) for r in rows],
        "contribution_scale": "log-odds",
    }
