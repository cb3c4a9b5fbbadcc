"""The lean path for POST /v1/predict answers exactly as the FastAPI route does."""

from __future__ import annotations

import pytest

from factories import PATIENT, patient
from sepsis_api.api.app import create_app
from sepsis_api.config import Settings

REQUESTS = [
    ({}, PATIENT),
    ({"explain": "true"}, patient(SK=None, TS=0)),
    ({"model": "all"}, PATIENT),
    ({"model": "random_forest", "explain": "1"}, PATIENT),
    ({"model": "nope"}, PATIENT),  # 422 from the service, rendered by the lean path
    ({}, patient(Age=500)),  # validation error: handed to FastAPI
    ({"explain": "maybe"}, PATIENT),  # unusual query: handed to FastAPI
    ({"other": "x"}, PATIENT),
]
VOLATILE = {"prediction_id", "request_id"}


def _strip(value):
    if isinstance(value, dict):
        return {k: _strip(v) for k, v in value.items() if k not in VOLATILE}
    if isinstance(value, list):
        return [_strip(v) for v in value]
    return value


@pytest.fixture
def both(tmp_path):
    from fastapi.testclient import TestClient

    clients = []
    for fast in (True, False):
        settings = Settings(_env_file=None, data_dir=tmp_path / f"fast{fast}")
        clients.append(TestClient(create_app(settings, fast_path=fast)).__enter__())
    yield clients
    for c in clients:
        c.__exit__(None, None, None)


def test_lean_and_framework_paths_give_the_same_replies(both):
    fast, framework = both
    for params, body in REQUESTS:
        a = fast.post("/v1/predict", params=params, json=body)
        b = framework.post("/v1/predict", params=params, json=body)
        assert a.status_code == b.status_code, (params, a.text, b.text)
        assert _strip(a.json()) == _strip(b.json()), params
        assert a.headers["content-type"] == b.headers["content-type"]
    history_fast = fast.get("/v1/predictions").json()["items"]
    history_framework = framework.get("/v1/predictions").json()["items"]
    assert len(history_fast) == len(history_framework) > 0
    text = fast.get("/metrics").text
    assert 'route="/v1/predict",status="200"' in text  # labelled like the route
