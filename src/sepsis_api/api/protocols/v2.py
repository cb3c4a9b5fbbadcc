"""Open Inference Protocol V2 (KServe, Triton, MLServer clients): health, metadata and infer.

Models are the served version's model names and ``default`` (its default model); a
``versions/{version}`` path must name the served version. Inputs: one FP64/FP32 tensor of shape
[N, 9] in the metadata's feature order, or one input per feature named by its code (MLServer's
``content_type: "pd"``). Values are validated by the feature schema; ``null`` is "not measured"
where the schema allows it. Tensors may come as JSON ``data`` or in Triton's binary tensor
extension (``binary_data_size`` and the ``Inference-Header-Content-Length`` header); replies
are always JSON. Every estimate is scored and audited by Service.predict_batch (source ``v2``).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import orjson
from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from sepsis_api import __version__
from sepsis_api.api.errors import ErrorShape, json_response
from sepsis_api.api.protocols.common import (
    ProtocolError,
    error_route,
    parse_body,
    service,
    validated_matrix,
)
from sepsis_api.api.security import caller_id
from sepsis_api.api.service import ValidatedPatients
from sepsis_api.ml.data import RowError
from sepsis_api.ml.scoring import ServedModel, UnknownModel, resolve
from sepsis_api.schema import FEATURE_CODES, FEATURES, ID_COLUMN, LABEL_POSITIVE, feature_for

SOURCE = "v2"
TENSOR_INPUT = "features"
DEFAULT_MODEL = "default"
OUTPUTS: dict[str, tuple[str, str]] = {  # name: (datatype, what it holds)
    "predict_proba": ("FP64", "[N, 2]: P(no sepsis), P(sepsis), calibrated"),
    "predict": ("INT64", "[N]: 1 when the probability reaches the model's threshold, else 0"),
    "probability": ("FP64", "[N]: calibrated probability of sepsis"),
    "risk_band": ("BYTES", "[N]: low, moderate or high"),
    "prediction_id": ("BYTES", "[N]: the estimate's audit record, GET /v1/predictions/{id}"),
}
_NUMERIC: dict[str, np.dtype[Any]] = {
    name: np.dtype(kind).newbyteorder("<")
    for name, kind in (
        ("FP64", np.float64),
        ("FP32", np.float32),
        ("FP16", np.float16),
        ("INT64", np.int64),
        ("INT32", np.int32),
        ("INT16", np.int16),
        ("INT8", np.int8),
        ("UINT64", np.uint64),
        ("UINT32", np.uint32),
        ("UINT16", np.uint16),
        ("UINT8", np.uint8),
        ("BOOL", np.bool_),
    )
}
_TENSOR_TYPES = ("FP64", "FP32")


ROOTS = ("/v2",)  # where callers read this protocol's error shape (api/errors.ErrorShapes)


def _error_body(_status: int, message: str) -> dict[str, Any]:
    """The protocol's error body: ``{"error": "..."}`` for every status."""
    return {"error": message}


ERROR_SHAPE = ErrorShape(_error_body)


def _render(status: int, message: str, headers: Mapping[str, str] | None) -> Response:
    return json_response(_error_body(status, message), status, headers)


router = APIRouter(
    prefix="/v2", tags=["Open Inference Protocol V2"], route_class=error_route(_render)
)


class V2Error(BaseModel):
    """The protocol's error body."""

    error: str = Field(examples=["input 'features': shape [1, 8] does not match [N, 9]"])


V2_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": V2Error, "description": text}
    for code, text in (
        (400, "Invalid request: names the input and the problem."),
        (401, "Missing or invalid API key."),
        (404, "Unknown model or version."),
        (413, "Too many patients or bytes."),
        (503, "Audit log unavailable; nothing returned."),
    )
}


@router.get("", summary="V2 server metadata")
async def server_metadata() -> dict[str, Any]:
    return {"name": "sepsis-api", "version": __version__, "extensions": ["binary_tensor_data"]}


@router.get("/health/live", summary="V2 liveness")
async def live() -> dict[str, bool]:
    return {"live": True}


@router.get("/health/ready", summary="V2 readiness: model loaded, audit writer running")
async def ready(request: Request) -> Response:
    svc = getattr(request.app.state, "service", None)
    ok = svc is not None and svc.writer.alive
    return json_response({"ready": ok}, 200 if ok else 503)


def _model(request: Request, model: str, version: str | None) -> ServedModel:
    """The served model a V2 path names (the one resolver); anything else is a 404."""
    predictor = service(request).predictor
    served = predictor.version.version
    names = ", ".join([DEFAULT_MODEL, *predictor.models])
    if version is not None and version != served:
        raise ProtocolError(
            404, f"model {model!r} has no version {version!r}; the served version is {served}"
        )
    try:
        return resolve(None if model == DEFAULT_MODEL else model, predictor, allow_all=False)[0]
    except UnknownModel:
        raise ProtocolError(404, f"unknown model {model!r}; served models: {names}") from None


def _tensor(name: str, datatype: str, shape: list[int]) -> dict[str, Any]:
    return {"name": name, "datatype": datatype, "shape": shape}


def _metadata(request: Request, model: str, version: str | None) -> dict[str, Any]:
    m = _model(request, model, version)
    return {
        "name": model,
        "versions": [m.version],
        "platform": "sepsis-api",
        "inputs": [_tensor(TENSOR_INPUT, "FP64", [-1, len(FEATURES)])],
        "outputs": [
            _tensor(n, kind, [-1, 2] if n == "predict_proba" else [-1])
            for n, (kind, _) in OUTPUTS.items()
        ],
        "parameters": {
            "model": m.name,
            "display_name": m.display_name,
            "threshold": m.threshold,
            "feature_order": list(FEATURE_CODES),
            "input_forms": "one FP64/FP32 tensor [N, 9] in feature_order, or one input per "
            "feature named by its code with parameters.content_type 'pd'",
        },
    }


@router.get("/models/{model}", summary="V2 model metadata", responses=V2_ERRORS)
async def model_metadata(request: Request, model: str, _: str = Depends(caller_id)) -> Response:
    return json_response(_metadata(request, model, None))


@router.get("/models/{model}/versions/{version}", summary="V2 model metadata", responses=V2_ERRORS)
async def version_metadata(
    request: Request, model: str, version: str, _: str = Depends(caller_id)
) -> Response:
    return json_response(_metadata(request, model, version))


@router.get("/models/{model}/ready", summary="V2 model readiness", responses=V2_ERRORS)
async def model_ready(request: Request, model: str, _: str = Depends(caller_id)) -> Response:
    m = _model(request, model, None)
    return json_response({"name": model, "version": m.version, "ready": True})


@router.get(
    "/models/{model}/versions/{version}/ready",
    summary="V2 model readiness",
    responses=V2_ERRORS,
)
async def version_ready(
    request: Request, model: str, version: str, _: str = Depends(caller_id)
) -> Response:
    m = _model(request, model, version)
    return json_response({"name": model, "version": m.version, "ready": True})


_EXAMPLE = {
    "inputs": [
        {
            "name": TENSOR_INPUT,
            "datatype": "FP64",
            "shape": [1, 9],
            "data": [[6, 148, 72, 35, 0, 33.6, 0.627, 50, 0]],
        }
    ],
    "outputs": [{"name": "probability"}, {"name": "risk_band"}],
}
_INFER_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": {"type": "object"}, "example": _EXAMPLE},
            "application/octet-stream": {
                "schema": {"type": "string", "format": "binary"},
                "description": "Triton's binary tensor extension: the JSON header "
                "(Inference-Header-Content-Length bytes), then the tensors' bytes.",
            },
        },
    }
}


@router.post(
    "/models/{model}/infer",
    summary="V2 inference",
    responses=V2_ERRORS,
    openapi_extra=_INFER_BODY,
)
async def infer(request: Request, model: str, caller: str = Depends(caller_id)) -> Response:
    return await _infer(request, model, None, caller)


@router.post(
    "/models/{model}/versions/{version}/infer",
    summary="V2 inference",
    responses=V2_ERRORS,
    openapi_extra=_INFER_BODY,
)
async def version_infer(
    request: Request, model: str, version: str, caller: str = Depends(caller_id)
) -> Response:
    return await _infer(request, model, version, caller)


async def _infer(request: Request, model: str, version: str | None, caller: str) -> Response:
    served = _model(request, model, version)
    body, max_rows = await request.body(), request.app.state.settings.max_batch_rows
    doc, patients, outputs = await parse_body(_read, body, request.headers, max_rows)
    result = await service(request).predict_batch(
        patients,
        served,
        caller=caller,
        request_id=request.state.request_id,
        source=SOURCE,
    )
    request.state.model_version = served.version
    rows = result["results"]
    p = np.array([r["probability"] for r in rows], dtype=np.float64)
    n = len(rows)
    values: dict[str, tuple[list[int], list[Any]]] = {
        "predict_proba": ([n, 2], np.column_stack([1.0 - p, p]).ravel().tolist()),
        "predict": ([n], [int(r["label"] == LABEL_POSITIVE) for r in rows]),
        "probability": ([n], p.tolist()),
        "risk_band": ([n], [r["risk_band"] for r in rows]),
        "prediction_id": ([n], [r["prediction_id"] for r in rows]),
    }
    reply = {
        "model_name": served.name,
        "model_version": served.version,
        "id": doc.get("id") if isinstance(doc.get("id"), str) else request.state.request_id,
        "outputs": [
            {**_tensor(name, OUTPUTS[name][0], values[name][0]), "data": values[name][1]}
            for name in outputs
        ],
    }
    return json_response(reply)


def _read(
    body: bytes, headers: Mapping[str, str], max_rows: int
) -> tuple[dict[str, Any], ValidatedPatients, list[str]]:
    """(the JSON document, its validated patients, the output names) of an infer request."""
    doc, binary = _split_body(body, headers)
    patients, outputs = _parse(doc, binary, max_rows)
    return doc, patients, outputs


def _split_body(body: bytes, headers: Mapping[str, str]) -> tuple[dict[str, Any], bytes]:
    """The JSON part of a request and the binary tensor data after it (if any)."""
    header = headers.get("inference-header-content-length")
    binary = b""
    if header is not None:
        try:
            size = int(header)
        except ValueError:
            size = -1
        if not 0 <= size <= len(body):
            raise ProtocolError(
                400,
                f"Inference-Header-Content-Length {header!r} is not a length within the "
                f"body's {len(body)} bytes",
            )
        body, binary = body[:size], body[size:]
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as e:
        raise ProtocolError(400, f"the request body is not valid JSON: {e}") from None
    if type(doc) is not dict:
        raise ProtocolError(400, "the request body must be a JSON object with 'inputs'")
    return doc, binary


def _flat(data: Any) -> Iterator[Any]:
    """The leaves of nested lists in row-major order (iterative: nesting depth is the
    client's)."""
    stack: list[Iterator[Any]] = [iter([data])]
    while stack:
        for item in stack[-1]:
            if type(item) is list:
                stack.append(iter(item))
                break
            yield item
        else:
            stack.pop()


def _values(inp: dict[str, Any], binary: bytes, offset: int) -> tuple[np.ndarray, int]:
    """One input's values, flat, as float64 (NaN where the JSON says null), and the offset of
    the next input's binary data."""
    name, datatype, shape = inp["name"], inp["datatype"], inp["shape"]
    count = math.prod(shape)
    params = inp.get("parameters") or {}
    if not isinstance(params, dict):
        raise ProtocolError(400, f"input {name!r}: parameters must be a JSON object")
    if "shared_memory_region" in params:
        raise ProtocolError(400, f"input {name!r}: shared memory is not supported")
    size = params.get("binary_data_size")
    if size is not None:
        if datatype not in _NUMERIC:
            raise ProtocolError(400, f"input {name!r}: binary {datatype} data is not supported")
        dtype = _NUMERIC[datatype]
        if type(size) is not int or size != count * dtype.itemsize:
            raise ProtocolError(
                400,
                f"input {name!r}: binary_data_size {size!r} does not hold shape {shape} of "
                f"{datatype} ({count * dtype.itemsize} bytes)",
            )
        if offset + size > len(binary):
            raise ProtocolError(
                400,
                f"input {name!r}: the body ends before its {size} bytes of binary data "
                "(send the JSON's length in Inference-Header-Content-Length)",
            )
        raw = np.frombuffer(binary, dtype=dtype, count=count, offset=offset)
        return raw.astype(np.float64), offset + size
    if "data" not in inp:
        raise ProtocolError(400, f"input {name!r}: no 'data' (nor binary_data_size)")
    flat = list(_flat(inp["data"]))
    if len(flat) != count:
        raise ProtocolError(
            400, f"input {name!r}: shape {shape} holds {count} values but 'data' has {len(flat)}"
        )
    for i, v in enumerate(flat):
        if v is None or type(v) in (int, float) or (datatype == "BOOL" and type(v) is bool):
            continue
        raise ProtocolError(
            400, f"input {name!r}: value {v!r} at position {i} is not a number ({datatype})"
        )
    return np.array([np.nan if v is None else v for v in flat], dtype=np.float64), offset


def _check_input(inp: Any, i: int) -> dict[str, Any]:
    if type(inp) is not dict:
        raise ProtocolError(400, f"inputs[{i}] must be a JSON object")
    name = inp.get("name")
    if type(name) is not str or not name:
        raise ProtocolError(400, f"inputs[{i}]: 'name' must be a non-empty string")
    shape = inp.get("shape")
    if type(shape) is not list or not all(type(d) is int and d >= 0 for d in shape):
        raise ProtocolError(400, f"input {name!r}: 'shape' must be a list of sizes, got {shape!r}")
    datatype = inp.get("datatype")
    if type(datatype) is not str:
        raise ProtocolError(400, f"input {name!r}: 'datatype' must be a string")
    return inp


def _parse(
    doc: dict[str, Any], binary: bytes, max_rows: int
) -> tuple[ValidatedPatients, list[str]]:
    """(validated patients, the output names to return) of an infer request."""
    raw = doc.get("inputs")
    if type(raw) is not list or not raw:
        raise ProtocolError(400, "'inputs' must be a non-empty list of input tensors")
    inputs = [_check_input(inp, i) for i, inp in enumerate(raw)]
    outputs = _outputs(doc.get("outputs"))
    params = doc.get("parameters")
    pd_form = (
        (isinstance(params, dict) and params.get("content_type") == "pd")
        or len(inputs) > 1
        or feature_for(inputs[0]["name"]) is not None
    )
    X, ids = _columns(inputs, binary) if pd_form else (_matrix(inputs[0], binary), None)
    if pd_form:

        def where(e: RowError) -> str:
            value = "" if e.value in (None, "") else f"value {e.value}: "
            return f"input {e.column!r}: patient {e.row - 1}: {value}{e.reason}"

    else:

        def where(e: RowError) -> str:
            column = FEATURE_CODES.index(e.column) if e.column in FEATURE_CODES else None
            value = "" if e.value in (None, "") else f"value {e.value}: "
            return (
                f"input {inputs[0]['name']!r}: patient {e.row - 1}, {e.column} (column "
                f"{column}): {value}{e.reason}"
            )

    return validated_matrix(X, ids, where=where, max_rows=max_rows), outputs


def _matrix(inp: dict[str, Any], binary: bytes) -> np.ndarray:
    name, shape, datatype = inp["name"], inp["shape"], inp["datatype"]
    if datatype not in _TENSOR_TYPES:
        raise ProtocolError(
            400, f"input {name!r}: datatype {datatype} is not supported; send FP64 or FP32"
        )
    if len(shape) != 2 or shape[1] != len(FEATURES):
        raise ProtocolError(
            400,
            f"input {name!r}: shape {shape} is not [N, {len(FEATURES)}] (one row per patient, "
            f"columns {', '.join(FEATURE_CODES)}); or send one input per feature with "
            "content_type 'pd'",
        )
    values, end = _values(inp, binary, 0)
    if end != len(binary):
        raise ProtocolError(400, f"{len(binary) - end} bytes of binary data belong to no input")
    return values.reshape(shape)


def _columns(
    inputs: list[dict[str, Any]], binary: bytes
) -> tuple[np.ndarray, list[str | None] | None]:
    """MLServer's pandas form: one input per feature (and optionally ID), each of shape [N]."""
    columns: dict[str, np.ndarray] = {}
    ids: list[str | None] | None = None
    offset, n = 0, None
    for inp in inputs:
        name, shape, datatype = inp["name"], inp["shape"], inp["datatype"]
        if len(shape) not in (1, 2) or (len(shape) == 2 and shape[1] != 1):
            raise ProtocolError(400, f"input {name!r}: shape {shape} is not [N] or [N, 1]")
        if n is not None and shape[0] != n:
            raise ProtocolError(
                400, f"input {name!r}: {shape[0]} values where the inputs before hold {n}"
            )
        n = shape[0]
        if name == ID_COLUMN:
            if datatype != "BYTES" or "data" not in inp:
                raise ProtocolError(400, "input 'ID': send patient ids as BYTES in 'data'")
            ids = list(_flat(inp["data"]))
            if len(ids) != n or not all(type(v) is str for v in ids):
                raise ProtocolError(400, f"input 'ID': shape {shape} needs {n} strings")
            continue
        feature = feature_for(name)
        if feature is None:
            raise ProtocolError(
                400,
                f"unknown input {name!r}; with content_type 'pd' the inputs are named by "
                f"feature: {', '.join(FEATURE_CODES)} (and optionally ID)",
            )
        if feature.code in columns:
            raise ProtocolError(400, f"input {name!r}: {feature.code} is given twice")
        if datatype not in _NUMERIC:
            raise ProtocolError(
                400, f"input {name!r}: datatype {datatype} is not a number type (FP64, INT64...)"
            )
        columns[feature.code], offset = _values(inp, binary, offset)
    if offset != len(binary):
        raise ProtocolError(400, f"{len(binary) - offset} bytes of binary data belong to no input")
    missing = [c for c in FEATURE_CODES if c not in columns]
    if missing:
        raise ProtocolError(
            400,
            f"missing input(s) {', '.join(missing)}: with content_type 'pd' send one input per "
            f"feature, named {', '.join(FEATURE_CODES)}",
        )
    return np.column_stack([columns[c] for c in FEATURE_CODES]), ids


def _outputs(raw: Any) -> list[str]:
    if raw is None:
        return list(OUTPUTS)
    if type(raw) is not list or not all(type(o) is dict for o in raw):
        raise ProtocolError(400, "'outputs' must be a list of objects with a 'name'")
    names = [o.get("name") for o in raw]
    for name in names:
        if name not in OUTPUTS:
            raise ProtocolError(
                400, f"unknown output {name!r}; this model's outputs: {', '.join(OUTPUTS)}"
            )
    return [str(n) for n in names] or list(OUTPUTS)
