"""API keys: every /v1 route and POST /predict needs one; the audit log records the key's id,
never the key; health, readiness, metrics, the OpenAPI document and / stay open."""

from __future__ import annotations

import re

import pytest

from cds import hook_request, prefetch
from factories import CASE_STUDY_BODY, PATIENT, patients

UI_KEY = "a" * 20
EHR_KEY = "b" * 20
KEYS = f"ui:{UI_KEY},ehr:{EHR_KEY}"
UI = {"Authorization": f"Bearer {UI_KEY}"}
EHR = {"X-API-Key": EHR_KEY}

V2_BODY = {
    "inputs": [
        {
            "name": "features",
            "datatype": "FP64",
            "shape": [1, 9],
            "data": [6, 148, 72, 35, 0, 33.6, 0.627, 50, 0],
        }
    ]
}
# (method, path, JSON body); {id} is replaced by the id of a recorded prediction.
PROTECTED = [
    ("GET", "/v1/features", None),
    ("GET", "/v1/models", None),
    ("GET", "/v1/models/logistic_regression", None),
    ("GET", "/v1/predictions", None),
    ("GET", "/v1/predictions/{id}", None),
    ("POST", "/v1/predict", PATIENT),
    ("POST", "/v1/predict/batch", {"patients": patients(2)}),
    ("POST", "/predict", CASE_STUDY_BODY),
    ("GET", "/v2/models/default", None),
    ("GET", "/v2/models/default/ready", None),
    ("POST", "/v2/models/default/infer", V2_BODY),
    ("POST", "/invocations", {"dataframe_records": [PATIENT]}),
    # CDS Hooks without SEPSIS_API_CDS_ISSUERS: the API keys, like /v1 (its feedback route is
    # refused without a key in the walk over the OpenAPI document below)
    ("POST", "/cds-services/sepsis-risk", hook_request(prefetch())),
]
ROUTE_IDS = [f"{m} {p}" for m, p, _ in PROTECTED]
# The protocols' probes and server metadata stay open, like /healthz (api/security.py).
OPEN = ["/healthz", "/readyz", "/metrics", "/openapi.json", "/"]
OPEN += ["/v2", "/v2/health/live", "/v2/health/ready", "/ping", "/health", "/version"]
OPEN += ["/fhir/metadata", "/fhir/OperationDefinition/RiskAssessment-predict"]
OPEN += ["/cds-services"]  # CDS Hooks discovery
WRONG = [
    {"Authorization": "Bearer " + "c" * 20},
    {"X-API-Key": "c" * 20},
    {"X-API-Key": UI_KEY[:-1]},  # a prefix of a real key
]
MALFORMED = [
    "Bearer",  # no key
    f"Basic {UI_KEY}",  # another scheme
    f"Token {UI_KEY}",
    UI_KEY,  # no scheme
    f"Bearer {UI_KEY} extra",  # trailing text
]


@pytest.fixture
def secured(make_client):
    return make_client(api_keys=KEYS)


def call(client, method, path, body, headers=None):
    if "{id}" in path:
        made = client.post("/v1/predict", json=PATIENT, headers=UI)
        assert made.status_code == 200, made.text
        path = path.replace("{id}", made.json()["predictions"][0]["prediction_id"])
    return client.request(method, path, json=body, headers=headers or {})


def assert_unauthorized(r):
    """A 401 in the shape the path's callers read: a protocol's own, or ErrorResponse."""
    assert r.status_code == 401, (r.request.method, r.request.url.path, r.request.headers, r.text)
    assert r.headers["www-authenticate"] == "Bearer"
    body, path = r.json(), r.request.url.path
    if path.startswith("/v2/"):
        assert set(body) == {"error"} and "API key" in body["error"]
    elif path == "/invocations":
        assert body == {"error_code": "UNAUTHENTICATED", "message": body["message"]}
        assert "API key" in body["message"]
    else:
        assert "API key" in body["detail"]
        assert body["errors"] == []
        assert body["request_id"] == r.headers["x-request-id"]


def history(client, headers=UI):
    r = client.get("/v1/predictions", headers=headers)
    assert r.status_code == 200, r.text
    return r


# -- refused ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("method", "path", "body"), PROTECTED, ids=ROUTE_IDS)
def test_protected_route_without_a_key_is_401(secured, method, path, body):
    assert_unauthorized(call(secured, method, path, body))


@pytest.mark.parametrize(("method", "path", "body"), PROTECTED, ids=ROUTE_IDS)
def test_protected_route_with_a_wrong_key_is_401(secured, method, path, body):
    for headers in WRONG:
        r = call(secured, method, path, body, headers)
        assert_unauthorized(r)
        assert "c" * 20 not in r.text


@pytest.mark.parametrize(("method", "path", "body"), PROTECTED, ids=ROUTE_IDS)
def test_protected_route_with_a_malformed_authorization_header_is_401(secured, method, path, body):
    for authorization in MALFORMED:
        assert_unauthorized(call(secured, method, path, body, {"Authorization": authorization}))


def test_every_documented_operation_outside_the_open_ones_needs_a_key(secured):
    spec = secured.get("/openapi.json").json()
    checked = 0
    for path, operations in spec["paths"].items():
        if path in OPEN:
            continue
        concrete = re.sub(r"\{[^}]+\}", "x", path)
        for method in operations:
            r = secured.request(
                method.upper(), concrete, json={} if method in ("post", "put", "patch") else None
            )
            # admin routes are switched off entirely without admin keys
            expected = 403 if path.startswith("/v1/admin/") else 401
            assert r.status_code == expected, f"{method.upper()} {path}: {r.status_code} {r.text}"
            checked += 1
    assert checked >= len(PROTECTED)


def test_refused_calls_record_nothing(secured):
    for method, path, body in PROTECTED:
        if "{id}" not in path:
            secured.request(method, path, json=body)
    assert history(secured).json()["items"] == []


@pytest.mark.parametrize(
    ("content", "ctype"),
    [
        (b'{"PRG": 6,', "application/json"),
        (b"PRG=6", "text/plain"),
    ],
    ids=["malformed json", "plain text"],
)
def test_key_is_checked_before_the_body(secured, content, ctype):
    assert_unauthorized(
        secured.post("/v1/predict", content=content, headers={"content-type": ctype})
    )


# -- accepted --------------------------------------------------------------------------------


@pytest.mark.parametrize(("method", "path", "body"), PROTECTED, ids=ROUTE_IDS)
@pytest.mark.parametrize("headers", [UI, EHR], ids=["bearer", "x-api-key"])
def test_protected_route_with_a_valid_key_succeeds(secured, method, path, body, headers):
    r = call(secured, method, path, body, headers)
    assert r.status_code == 200, r.text


def test_bearer_key_is_recorded_as_its_id(secured):
    assert secured.post("/v1/predict", json=PATIENT, headers=UI).status_code == 200
    [item] = history(secured).json()["items"]
    assert item["caller"] == "ui"


def test_x_api_key_is_recorded_as_its_id(secured):
    assert secured.post("/v1/predict", json=PATIENT, headers=EHR).status_code == 200
    [item] = history(secured).json()["items"]
    assert item["caller"] == "ehr"


def test_bearer_scheme_is_case_insensitive(secured):
    r = secured.post("/v1/predict", json=PATIENT, headers={"Authorization": f"bearer {UI_KEY}"})
    assert r.status_code == 200, r.text


def test_keys_never_appear_in_the_audit_log(secured):
    for headers in (UI, EHR):
        assert secured.post("/v1/predict", json=PATIENT, headers=headers).status_code == 200
        r = secured.post("/v1/predict/batch", json={"patients": patients(2)}, headers=headers)
        assert r.status_code == 200
        assert secured.post("/predict", json=CASE_STUDY_BODY, headers=headers).status_code == 200
    listing = history(secured)
    items = listing.json()["items"]
    assert {i["caller"] for i in items} == {"ui", "ehr"}
    texts = [listing.text] + [
        secured.get(f"/v1/predictions/{i['prediction_id']}", headers=EHR).text for i in items
    ]
    for text in texts:
        assert UI_KEY not in text and EHR_KEY not in text


def test_keys_never_appear_in_metrics_or_the_root_document(secured):
    secured.post("/v1/predict", json=PATIENT, headers=UI)
    for path in ("/metrics", "/"):
        text = secured.get(path).text
        assert UI_KEY not in text and EHR_KEY not in text


# -- open routes and auth off ----------------------------------------------------------------


@pytest.mark.parametrize("path", OPEN)
def test_open_route_needs_no_key(secured, path):
    assert secured.get(path).status_code == 200


def test_root_says_auth_is_on(secured):
    assert secured.get("/").json()["auth"] is True


def test_without_keys_calls_succeed_as_anonymous(client):
    assert client.post("/v1/predict", json=PATIENT).status_code == 200
    assert client.post("/predict", json=CASE_STUDY_BODY).status_code == 200
    items = client.get("/v1/predictions").json()["items"]
    assert len(items) == 3
    assert {i["caller"] for i in items} == {"anonymous"}
    assert client.get("/").json()["auth"] is False


def test_without_keys_a_presented_key_is_ignored(client):
    assert client.post("/v1/predict", json=PATIENT, headers=UI).status_code == 200
    [item] = client.get("/v1/predictions").json()["items"]
    assert item["caller"] == "anonymous"


# -- key configuration -----------------------------------------------------------------------


def test_key_shorter_than_16_characters_is_refused_at_start(make_client):
    with pytest.raises(ValueError, match=r"API key 'ui' is shorter than 16 characters"):
        make_client(api_keys="ui:" + "a" * 15)


def test_key_of_16_characters_is_accepted(make_client):
    client = make_client(api_keys="ui:" + "a" * 16)
    r = client.get("/v1/models", headers={"X-API-Key": "a" * 16})
    assert r.status_code == 200


def test_short_key_error_does_not_show_the_key(make_client):
    with pytest.raises(ValueError, match="shorter than 16 characters") as caught:
        make_client(api_keys=f"{UI_KEY},tiny-secret-9")
    assert "tiny-secret-9" not in str(caught.value)


def test_short_key_in_a_keys_file_is_refused_at_start(make_client, tmp_path):
    keys = tmp_path / "keys"
    keys.write_text("ward:tiny-secret\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"'ward' is shorter than 16 characters"):
        make_client(api_keys_file=keys)


def test_keys_file_keys_work_and_comments_are_not_keys(make_client, tmp_path):
    comment = "# the ward PC key, rotated monthly"
    keys = tmp_path / "keys"
    keys.write_text(f"{comment}\n\nward:{'c' * 24}\n", encoding="utf-8")
    client = make_client(api_keys_file=keys)
    assert (
        client.post("/v1/predict", json=PATIENT, headers={"X-API-Key": "c" * 24}).status_code == 200
    )
    [item] = client.get("/v1/predictions", headers={"X-API-Key": "c" * 24}).json()["items"]
    assert item["caller"] == "ward"
    assert_unauthorized(client.get("/v1/models", headers={"X-API-Key": comment}))


def test_keys_file_and_keys_setting_are_both_honoured(make_client, tmp_path):
    keys = tmp_path / "keys"
    keys.write_text(f"ward:{'c' * 24}\n", encoding="utf-8")
    client = make_client(api_keys=KEYS, api_keys_file=keys)
    for key in (UI_KEY, EHR_KEY, "c" * 24):
        assert client.get("/v1/models", headers={"X-API-Key": key}).status_code == 200


def test_protocol_routes_refuse_in_their_own_shape_and_record_the_key_id(secured):
    v2 = secured.post("/v2/models/default/infer", json=V2_BODY)
    assert v2.status_code == 401 and "API key" in v2.json()["error"]
    mlflow = secured.post("/invocations", json={"dataframe_records": [PATIENT]})
    assert mlflow.status_code == 401
    assert (
        mlflow.json()["error_code"] == "UNAUTHENTICATED" and "API key" in mlflow.json()["message"]
    )
    ok = secured.post("/v2/models/default/infer", json=V2_BODY, headers=EHR)
    assert ok.status_code == 200, ok.text
    pid = next(o for o in ok.json()["outputs"] if o["name"] == "prediction_id")["data"][0]
    record = secured.get(f"/v1/predictions/{pid}", headers=UI).json()
    assert record["caller"] == "ehr" and record["source"] == "v2"
