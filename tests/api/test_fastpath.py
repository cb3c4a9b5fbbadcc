"""The lean path for POST /v1/predict answers exactly as the FastAPI route does."""

from __future__ import annotations

import json
from contextlib import ExitStack
from urllib.parse import urlencode

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from factories import PATIENT, patient
from sepsis_api.api.app import create_app
from sepsis_api.api.fastpath import ANSWERED_BY
from sepsis_api.config import Settings
from sepsis_api.schema import FEATURES

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


class Recorder:
    """Wraps an app and notes, per HTTP request, which path answered it (the lean path marks
    the request's state; anything else was answered by the framework)."""

    def __init__(self, app):
        self.app, self.answered = app, []

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        scope["state"] = state = dict(scope.get("state") or {})
        await self.app(scope, receive, send)
        self.answered.append(state.get(ANSWERED_BY, "framework"))


@pytest.fixture
def recorded(tmp_path):
    """(lean app client, its recorder, framework-only client), each with its own database."""
    from fastapi.testclient import TestClient

    with ExitStack() as stack:
        made = []
        for fast in (True, False):
            settings = Settings(_env_file=None, data_dir=tmp_path / f"rec{fast}")
            app = Recorder(create_app(settings, fast_path=fast))
            made.append((stack.enter_context(TestClient(app)), app))
        yield made[0][0], made[0][1], made[1][0]


def test_a_well_formed_predict_is_answered_by_the_lean_path(recorded):
    lean, recorder, _ = recorded
    assert lean.post("/v1/predict", json=PATIENT).status_code == 200
    assert lean.post("/v1/predict?model=all&explain=true", json=PATIENT).status_code == 200
    assert lean.post("/v1/predict", json=patient(Age=500)).status_code == 422
    assert lean.get("/v1/features").status_code == 200
    assert recorder.answered == ["lean", "lean", "framework", "framework"]


def test_a_repeated_content_type_is_read_as_the_framework_reads_it(recorded):
    lean, recorder, framework = recorded
    body = json.dumps(PATIENT).encode()
    for types in (["text/plain", "application/json"], ["application/json", "text/plain"]):
        headers = [("content-type", t) for t in types]
        a = lean.post("/v1/predict", content=body, headers=headers)
        b = framework.post("/v1/predict", content=body, headers=headers)
        assert a.status_code == b.status_code, (types, a.text, b.text)
        assert _strip(a.json()) == _strip(b.json())
    # The first Content-Type counts: text/plain first is a 415 from the framework; JSON first
    # is answered by the lean path.
    assert recorder.answered == ["framework", "lean"]


# -- property: whatever the body and query, both paths give the same status and reply --------
_NUMBERS = st.one_of(
    st.integers(-10, 1000), st.floats(-10, 1000, allow_nan=False), st.sampled_from([0, 0.0, 1e300])
)
_VALUE = st.one_of(
    _NUMBERS,
    st.none(),
    st.booleans(),
    st.sampled_from(["12", "", "abc", "NaN"]),
    st.lists(st.integers(0, 3), max_size=2),
)


def _valid(f):
    if f.choices is not None:
        return st.sampled_from(f.choices)
    if f.integer:
        return st.integers(int(f.minimum), int(f.maximum))
    return st.floats(f.minimum, f.maximum)


@st.composite
def _patient_body(draw) -> bytes:
    """Mostly well-formed patients (by code or name, values in range, not measured), each
    field sometimes absent, doubled or replaced by an odd value."""
    body: dict = {}
    for f in FEATURES:
        how = draw(st.sampled_from(["code"] * 24 + ["name"] * 4 + ["both", "absent"]))
        for key in {"code": [f.code], "name": [f.name], "both": [f.code, f.name]}.get(how, []):
            odd = draw(st.integers(0, 59)) == 30  # not an end: those are drawn often
            missing = f.zero_means_missing and draw(st.integers(0, 4)) == 2
            body[key] = (
                draw(_VALUE)
                if odd
                else draw(st.sampled_from([None, 0]))
                if missing
                else draw(_valid(f))
            )
    if draw(st.booleans()):
        body["ID"] = draw(st.text(max_size=8) | st.text(max_size=8) | st.integers() | st.none())
    if draw(st.integers(0, 19)) == 10:
        body[draw(st.sampled_from(["extra", "prg", "Sepssis"]))] = 1
    return json.dumps(body).encode()


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=6,
)
_BODY = st.one_of(
    *[_patient_body()] * 6,
    _JSON.map(lambda v: json.dumps(v).encode()),
    st.binary(max_size=40),
    st.just(b'{"PRG": NaN}'),
    st.just(json.dumps(PATIENT).encode() + b" trailing"),
)
_QUERY_KEY = st.sampled_from(["model", "model", "explain", "explain", "other", "Model"])
_QUERY_VALUE = st.sampled_from(
    [
        "",
        "all",
        "logistic_regression",
        "random_forest",
        "nope",
        "true",
        "false",
        "1",
        "0",
        "yes",
        "TRUE",
        "maybe",
        "20261202-93f42d15",
        "20261202-93f42d15/random_forest",
        "x/y",
    ]
)
_QUERY = st.sampled_from(["", "model=all", "explain=true", "model=random_forest&explain=1"]) | (
    st.lists(st.tuples(_QUERY_KEY, _QUERY_VALUE), max_size=3).map(urlencode)
)
_CTYPES = st.just(["application/json"]) | st.lists(
    st.sampled_from(
        [
            "application/json",
            "application/json; charset=utf-8",
            "APPLICATION/JSON",
            "text/plain",
            "application/vnd.api+json",
            "",
        ]
    ),
    min_size=0,
    max_size=2,
)


@settings(
    max_examples=400,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(body=_BODY, query=_QUERY, ctypes=_CTYPES)
def test_both_paths_agree_on_any_request(recorded, body, query, ctypes):
    lean, recorder, framework = recorded
    headers = [("content-type", t) for t in ctypes]
    url = f"/v1/predict?{query}" if query else "/v1/predict"
    a = lean.post(url, content=body, headers=headers)
    b = framework.post(url, content=body, headers=headers)
    assert a.status_code == b.status_code, (a.text, b.text)
    assert a.status_code != 500, a.text
    assert _strip(a.json()) == _strip(b.json())
    assert a.headers["content-type"] == b.headers["content-type"]
    event(f"{a.status_code} by the {recorder.answered[-1]} path")  # --hypothesis-show-statistics
