"""POST /v1/predict (one patient) and POST /v1/predict/batch (JSON, CSV body or CSV upload)."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Annotated, Any

import numpy as np
import orjson
import pandas as pd
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from pydantic import TypeAdapter, ValidationError
from starlette.concurrency import run_in_threadpool

from sepsis_api.api.errors import (
    BATCH_ERRORS,
    JSON_ERRORS,
    APIError,
    field_errors,
    json_response,
    require_json,
)
from sepsis_api.api.replies import predict_reply
from sepsis_api.api.schemas import (
    BatchRequest,
    BatchResponse,
    Patient,
    PredictResponse,
    patient_matrix,
)
from sepsis_api.api.security import caller_id
from sepsis_api.api.service import PatientChunks, Service, ValidatedPatients
from sepsis_api.ml.data import DataError, read_csv_bytes, validate_frame

router = APIRouter(prefix="/v1", tags=["predict"])

ModelQuery = Annotated[
    str | None,
    Query(
        description="A model name, the served version (its default model), or `all` for every "
        "model side by side. Default: the version's default model."
    ),
]


@router.post(
    "/predict",
    response_model=PredictResponse,
    responses=JSON_ERRORS,
    dependencies=[Depends(require_json)],
    summary="Estimate one patient's sepsis risk",
)
async def predict(
    patient: Patient,
    request: Request,
    model: ModelQuery = None,
    explain: Annotated[bool, Query(description="Add per-feature contributions.")] = False,
    caller: str = Depends(caller_id),
) -> Response:
    reply = await predict_reply(
        request.app.state.service, patient, model, explain, caller, request.state.request_id
    )
    request.state.model_version = reply["predictions"][0]["model_version"]
    return json_response(reply)


_BATCH_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": BatchRequest.model_json_schema(
                    ref_template="#/components/schemas/{model}"
                )
            },
            "text/csv": {
                "schema": {"type": "string"},
                "example": "ID,PRG,PL,PR,SK,TS,M11,BD2,Age,Insurance\n"
                "P1,6,148,72,35,0,33.6,0.627,50,0\n",
            },
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {"file": {"type": "string", "format": "binary"}},
                }
            },
        },
    }
}


class JsonPatients:
    """A JSON batch's patients: parsed at once, validated a chunk at a time while the chunks
    before are scored and recorded. Any invalid patient fails the whole call with every
    problem listed, in the words of the reference validator (BatchRequest)."""

    def __init__(self, raw: list[Any]) -> None:
        self.raw = raw

    def __len__(self) -> int:
        return len(self.raw)

    def chunks(self, size: int) -> Iterator[tuple[np.ndarray, list[str | None]]]:
        for start in range(0, len(self.raw), size):
            try:
                patients = _PATIENTS.validate_python(self.raw[start : start + size])
            except ValidationError:
                raise self._invalid() from None
            yield patient_matrix(patients), [p.ID for p in patients]  # type: ignore[attr-defined]  # Patient's fields are dynamic (create_model)

    def _invalid(self) -> APIError:
        try:
            BatchRequest.model_validate({"patients": self.raw})
        except ValidationError as e:
            return _batch_error(e)
        return APIError(422, "invalid batch")  # unreachable: a chunk was invalid


_PATIENTS = TypeAdapter(list[Patient])


def _batch_error(e: ValidationError) -> APIError:
    errors = field_errors(list(e.errors()))
    return APIError(
        422, f"invalid batch: {len(errors)} problem(s); first: {errors[0]['message']}", errors[:100]
    )


def _json_patients(body: bytes, max_rows: int) -> PatientChunks:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        data = None
    raw = data.get("patients") if type(data) is dict and len(data) == 1 else None
    if type(raw) is not list or not raw:  # not {"patients": [...]}: the reference words it
        try:
            batch = BatchRequest.model_validate_json(body)
        except ValidationError as e:
            raise _batch_error(e) from None
        raw = batch.patients
        if len(raw) <= max_rows:
            return ValidatedPatients(patient_matrix(raw), [p.ID for p in raw])  # type: ignore[attr-defined]  # Patient's fields are dynamic (create_model)
    if len(raw) > max_rows:
        raise APIError(413, f"{len(raw)} patients exceed the batch limit of {max_rows}")
    return JsonPatients(raw)


async def _parse_batch(request: Request, max_rows: int) -> PatientChunks:
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype == "application/json":
        return await run_in_threadpool(_json_patients, await request.body(), max_rows)
    if ctype == "text/csv":
        data = await request.body()
    elif ctype == "multipart/form-data":
        form = await request.form()
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            raise APIError(
                422,
                "multipart upload needs a file field named 'file'",
                [
                    {
                        "field": "file",
                        "row": None,
                        "value": None,
                        "expected": "a CSV file",
                        "message": "file: missing",
                    }
                ],
            )
        data = await upload.read()
    else:
        raise APIError(
            415,
            f"unsupported content type {ctype or '(none)'!r}; send "
            "application/json, text/csv or a multipart/form-data file",
        )
    return await run_in_threadpool(_parse_csv, data, max_rows)


def _parse_csv(data: bytes, max_rows: int) -> PatientChunks:
    try:
        frame = read_csv_bytes(data)
        if len(frame) > max_rows:
            raise APIError(413, f"{len(frame)} rows exceed the batch limit of {max_rows}")
        if frame.empty:
            raise DataError("the CSV has a header but no data rows")
        batch = validate_frame(frame)
    except DataError as e:
        expected = "a CSV with columns ID (optional), PRG, PL, PR, SK, TS, M11, BD2, Age, Insurance"
        errors: list[dict[str, Any]] = [
            {
                "field": col,
                "row": None,
                "value": None,
                "expected": expected,
                "message": f"{col}: column missing",
            }
            for col in e.columns
        ]
        raise APIError(
            422,
            f"invalid CSV: {e}",
            errors
            or [
                {"field": None, "row": None, "value": None, "expected": expected, "message": str(e)}
            ],
        ) from None
    if batch.errors:
        errors = [
            {
                "field": e.column,
                "row": e.row,
                "value": e.value,
                "expected": e.reason.split("; ", 1)[-1],
                "message": str(e),
            }
            for e in batch.errors
        ]
        raise APIError(
            422,
            f"invalid CSV: {len(errors)} invalid row(s), nothing was scored; "
            f"first: {errors[0]['message']}",
            errors[:100],
        )
    return ValidatedPatients(batch.X, batch.ids)


def _csv_reply(result: dict[str, Any]) -> Response:
    frame = pd.DataFrame(result["results"]).rename(columns={"patient_id": "ID"})
    frame["model"], frame["model_version"] = result["model"], result["model_version"]
    buf = io.StringIO()
    frame.to_csv(buf, index=False, float_format="%.6f", lineterminator="\n")
    return Response(buf.getvalue(), media_type="text/csv")


@router.post(
    "/predict/batch",
    response_model=BatchResponse,
    openapi_extra=_BATCH_BODY,
    responses=BATCH_ERRORS,
    summary="Estimate many patients (JSON, CSV body or CSV upload); all or nothing",
)
async def predict_batch(
    request: Request,
    model: Annotated[
        str | None,
        Query(description="A model name or the served version; default: the default model."),
    ] = None,
    caller: str = Depends(caller_id),
) -> Response:
    """All or nothing: if any patient is invalid, the reply lists every invalid row (up to 100)
    and nothing is scored or recorded. Send `Accept: text/csv` for a CSV reply."""
    svc: Service = request.app.state.service
    served = svc.resolve(model, allow_all=False)[0]
    patients = await _parse_batch(request, request.app.state.settings.max_batch_rows)
    result = await svc.predict_batch(
        patients, served, caller=caller, request_id=request.state.request_id
    )
    request.state.model_version = served.version
    if "text/csv" in request.headers.get("accept", ""):
        return _csv_reply(result)
    return Response(orjson.dumps(result), media_type="application/json")
