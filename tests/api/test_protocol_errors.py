"""Replies made before any route runs (size limit, key check, unknown path or method) are in
the error shape of the protocol whose root the path is under, and in /v1's elsewhere."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from factories import PATIENT

LIMIT = 2_000  # max_body_bytes of these clients
BIG = b'{"pad": "' + b"x" * (LIMIT + 10) + b'"}'

V2 = ("/v2/models/default/infer", {"error"})
MLFLOW = ("/invocations", {"error_code", "message"})
FHIR = ("/fhir/RiskAssessment/$predict", {"resourceType", "issue"})
V1 = ("/v1/predict/batch", {"detail", "errors", "request_id"})


def _streamed(body: bytes) -> Iterator[bytes]:
    yield body[: len(body) // 2]
    yield body[len(body) // 2 :]


def _shape(r: Any, keys: set[str]) -> dict[str, Any]:
    body: dict[str, Any] = r.json()
    assert set(body) == keys, (r.request.url.path, body)
    return body


def _message(body: dict[str, Any]) -> str:
    if body.get("resourceType") == "OperationOutcome":
        [issue] = body["issue"]
        return str(issue["diagnostics"])
    return str(body.get("error") or body.get("message") or body.get("detail"))


@pytest.fixture
def limited(make_client):
    return make_client(max_body_bytes=LIMIT)


@pytest.mark.parametrize(
    ("path", "keys"), [V2, MLFLOW, FHIR, V1], ids=["v2", "mlflow", "fhir", "v1"]
)
def test_oversize_body_is_413_in_the_protocols_shape(limited, path, keys):
    for content in (BIG, _streamed(BIG)):  # with Content-Length, and streamed without
        r = limited.post(path, content=content, headers={"content-type": "application/json"})
        assert r.status_code == 413, r.text
        assert f"limit of {LIMIT} bytes" in _message(_shape(r, keys))
    if path == "/invocations":
        assert r.json()["error_code"] == "BAD_REQUEST"
    if path.startswith("/fhir/"):
        assert r.headers["content-type"] == "application/fhir+json"
        assert r.json()["issue"][0]["code"] == "too-long"


@pytest.mark.parametrize(
    ("path", "keys"),
    [
        ("/v2/no-such-thing", {"error"}),
        ("/v2/models/default/no-such-operation", {"error"}),
        ("/invocations/extra", {"error_code", "message"}),
        ("/fhir/Patient/1", {"resourceType", "issue"}),
        ("/v1/no-such-thing", {"detail", "errors", "request_id"}),
    ],
)
def test_unknown_path_is_404_in_the_protocols_shape_naming_it(client, path, keys):
    r = client.get(path)
    assert r.status_code == 404
    body = _shape(r, keys)
    assert f"no such path: {path}" == _message(body)
    if "error_code" in body:
        assert body["error_code"] == "RESOURCE_DOES_NOT_EXIST"
    if "issue" in body:
        assert body["issue"][0]["code"] == "not-found"


def test_wrong_method_is_405_in_the_protocols_shape(client):
    v2 = client.get("/v2/models/default/infer")
    assert v2.status_code == 405
    _shape(v2, {"error"})
    mlflow = client.get("/invocations")
    assert mlflow.status_code == 405
    assert _shape(mlflow, {"error_code", "message"})["error_code"] == "BAD_REQUEST"


def test_paths_that_only_start_like_a_protocol_root_keep_v1s_shape(client):
    r = client.get("/v2x")
    assert r.status_code == 404
    _shape(r, {"detail", "errors", "request_id"})
    r = client.post("/invocationsfoo", json={"dataframe_records": [PATIENT]})
    assert r.status_code == 404
    _shape(r, {"detail", "errors", "request_id"})


def test_openapi_documents_each_protocols_own_error_body(client):
    spec = client.get("/openapi.json").json()

    def schemas(path: str) -> dict[str, str]:
        responses = spec["paths"][path]["post"]["responses"]
        return {
            code: r["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]
            for code, r in responses.items()
            if code.startswith("4")
        }

    assert set(schemas("/v2/models/{model}/infer").values()) == {"V2Error"}
    assert set(schemas("/invocations").values()) == {"MLflowError"}
    assert set(schemas("/v1/predict").values()) == {"ErrorResponse"}
    assert spec["components"]["schemas"]["V2Error"]["required"] == ["error"]
    assert spec["components"]["schemas"]["MLflowError"]["required"] == ["error_code", "message"]
