"""CDS Hooks 2.0 (api/protocols/cds_hooks.py): discovery, cards from prefetch and from a FHIR
server process, 412, the EHR's JWT (keys made here, JWKS served by a loopback EHR process),
feedback, CORS and errors."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from pydantic import ValidationError

from cds import (
    FHIR_TOKEN,
    ISSUER,
    PATIENT_ID,
    PUBLIC_URL,
    SERVICE_URL,
    EHRKeys,
    bearer,
    fhir_authorization,
    hook_request,
    prefetch,
    resources,
)
from ehr_server import EHRProcess
from factories import PATIENT
from sepsis_api.config import Settings
from sepsis_api.db.cds_feedback import FeedbackLog
from sepsis_api.db.session import make_engine
from sepsis_api.monitoring.stats import wilson
from sepsis_api.schema import NOT_A_DEVICE

SERVICE = "/cds-services/sepsis-risk"
FEEDBACK = SERVICE + "/feedback"
UI = "https://sepsis-ui.example.org"
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "cds-hook-request.json"


def no_nulls(value: Any, where: str = "body") -> None:
    """The spec: optional fields are omitted, never null or empty."""
    assert value not in (None, "", [], {}), where
    if isinstance(value, dict):
        for k, v in value.items():
            no_nulls(v, f"{where}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            no_nulls(v, f"{where}[{i}]")


@pytest.fixture(scope="module")
def keys() -> EHRKeys:
    return EHRKeys()


@pytest.fixture(scope="module")
def ehr(keys, tmp_path_factory):
    """The EHR: its JWKS and a FHIR server holding PATIENT as pat-1 (and an older glucose)."""
    held = resources()
    older = copy.deepcopy(next(r for r in held if r.get("id") == "obs-PL"))
    older.update(id="obs-PL-old", effectiveDateTime="2023-01-01T08:00:00+00:00")
    older["valueQuantity"]["value"] = 90
    with EHRProcess(tmp_path_factory.mktemp("ehr"), keys.jwks(), FHIR_TOKEN, [*held, older]) as e:
        yield e


@pytest.fixture
def cds_settings(ehr) -> dict[str, Any]:
    return {
        "public_url": PUBLIC_URL,
        "cds_issuers": {ISSUER: ehr.url + "/jwks.json"},
        "cds_fhir_servers": ehr.url + "/fhir",
        "ui_public_url": UI,
    }


@pytest.fixture
def cds(make_client, cds_settings):
    return make_client(**cds_settings)


def call(client, keys, body, alg="ES384", **claims):
    return client.post(SERVICE, json=body, headers=bearer(keys.token(alg, **claims)))


def v1_probability(client) -> float:
    return client.post("/v1/predict", json=PATIENT).json()["predictions"][0]["probability"]


# --- discovery ---------------------------------------------------------------------------


def test_discovery_offers_a_patient_view_service_with_prefetch_templates(client):
    r = client.get("/cds-services")
    assert r.status_code == 200
    body = r.json()
    no_nulls(body)
    (service,) = body["services"]
    assert service["id"] == "sepsis-risk" and service["hook"] == "patient-view"
    assert NOT_A_DEVICE in service["description"]
    templates = service["prefetch"]
    assert templates["patient"] == "Patient/{{context.patientId}}"
    assert templates["PL"].startswith("Observation?patient={{context.patientId}}&code=")
    assert "http://loinc.org|1518-0" in templates["PL"]  # the FHIR mapping's codes
    assert "http://loinc.org|14995-5" in templates["PL"]  # glucose in mmol/L too
    assert set(templates) == {"patient", "PRG", "PL", "PR", "SK", "TS", "M11", "BD2", "Insurance"}


def test_discovery_needs_no_token(cds):
    assert cds.get("/cds-services").status_code == 200


# --- a call --------------------------------------------------------------------------------


def test_a_call_with_full_prefetch_answers_one_card_with_v1s_estimate(cds, keys):
    r = call(cds, keys, hook_request(prefetch()))
    assert r.status_code == 200, r.text
    body = r.json()
    no_nulls(body)
    (card,) = body["cards"]
    record = cds.get(f"/v1/predictions/{card['uuid']}").json()
    assert record["probability"] == v1_probability(cds)
    assert record["source"] == "cds-hooks" and record["caller"] == ISSUER
    assert record["patient_id"] == PATIENT_ID
    assert len(card["summary"]) < 140
    pct = f"{100 * record['probability']:.0f}%"
    assert pct in card["summary"] and record["risk_band"] in card["summary"]
    assert (
        card["indicator"]
        == {"low": "info", "moderate": "warning", "high": "critical"}[record["risk_band"]]
    )
    assert card["source"]["url"] == f"{PUBLIC_URL}/v1/models/{record['model_version']}"
    assert card["links"] == [
        {
            "label": "Open this estimate in the Sepsis Risk web UI",
            "url": f"{UI}/history?prediction_id={card['uuid']}",
            "type": "absolute",
        }
    ]
    detail = card["detail"]
    assert NOT_A_DEVICE in detail and "Top reasons" in detail
    assert f"{100 * record['threshold']:.1f}%" in detail  # the alert threshold
    top = record["contributions"][0]["feature"]  # reasons are recorded, largest first
    assert f"({top}) =" in detail
    assert "`Observation/obs-PL`" in detail  # the basis


def test_without_links_or_url_settings_the_card_omits_the_link(client):
    r = client.post(SERVICE, json=hook_request(prefetch()))
    assert r.status_code == 200, r.text
    (card,) = r.json()["cards"]
    assert "links" not in card
    assert card["source"]["url"].startswith("http://testserver/v1/models/")


def test_a_call_without_prefetch_is_served_from_the_fhir_server(cds, keys, ehr):
    full = call(cds, keys, hook_request(prefetch())).json()["cards"][0]
    body = hook_request(fhirServer=ehr.url + "/fhir", fhirAuthorization=fhir_authorization())
    before = len(ehr.requests())
    r = call(cds, keys, body)
    assert r.status_code == 200, r.text
    (card,) = r.json()["cards"]
    a = cds.get(f"/v1/predictions/{card['uuid']}").json()
    b = cds.get(f"/v1/predictions/{full['uuid']}").json()
    assert a["probability"] == b["probability"] and a["inputs"] == b["inputs"]
    assert a["inputs"]["PL"] == 148  # the newest glucose, not the older 90
    fetched = [q for q in ehr.requests()[before:] if q["path"].startswith("/fhir/")]
    assert {q["path"] for q in fetched} == {"/fhir/Patient/pat-1", "/fhir/Observation"}
    assert len(fetched) == 9  # the Patient and one search per feature
    assert all(q["auth"] == f"Bearer {FHIR_TOKEN}" for q in fetched)


def test_only_the_missing_prefetch_keys_are_fetched(cds, keys, ehr):
    given = prefetch()
    del given["PL"]
    body = hook_request(
        given, fhirServer=ehr.url + "/fhir/", fhirAuthorization=fhir_authorization()
    )
    before = len(ehr.requests())
    assert call(cds, keys, body).status_code == 200
    fetched = [q for q in ehr.requests()[before:] if q["path"].startswith("/fhir/")]
    assert len(fetched) == 1 and "1518-0" in fetched[0]["query"]


@pytest.mark.parametrize(
    "case",
    ["no fhirServer", "server not allowed", "wrong token", "server down"],
)
def test_412_when_the_prefetch_lacks_data_that_cannot_be_fetched(cds, keys, ehr, case):
    given = prefetch()
    del given["BD2"]
    fields: dict[str, Any] = {
        "no fhirServer": {},
        "server not allowed": {"fhirServer": "http://127.0.0.1:9/fhir"},
        "wrong token": {
            "fhirServer": ehr.url + "/fhir",
            "fhirAuthorization": fhir_authorization("not-the-token"),
        },
        "server down": {"fhirServer": ehr.url + "/fhir"},  # no token: the server refuses
    }[case]
    r = call(cds, keys, hook_request(given, **fields))
    assert r.status_code == 412, r.text
    body = r.json()
    assert body["errors"][0]["field"] == "prefetch" and "BD2" in body["detail"]
    expected = {
        "no fhirServer": "names no fhirServer",
        "server not allowed": "SEPSIS_API_CDS_FHIR_SERVERS",
        "wrong token": "HTTP 401",
        "server down": "HTTP 401",
    }[case]
    assert expected in body["detail"]


def test_a_null_prefetch_key_is_no_data_and_a_required_one_is_named(cds, keys):
    given = prefetch()
    given["PL"] = None  # not measured: allowed
    assert call(cds, keys, hook_request(given)).status_code == 200
    given["BD2"] = None  # required
    r = call(cds, keys, hook_request(given))
    assert r.status_code == 422, r.text
    assert [e["field"] for e in r.json()["errors"]] == ["prefetch.BD2"]


def test_a_bad_observation_value_is_a_422_naming_where_it_is(cds, keys):
    given = prefetch()
    given["PL"]["entry"][0]["resource"]["valueQuantity"].update(code="g", unit="g")
    r = call(cds, keys, hook_request(given))
    assert r.status_code == 422, r.text
    (error,) = r.json()["errors"]
    assert error["field"] == "prefetch.PL.entry[0].resource.valueQuantity.code"
    assert error["value"] == "g" and "mg/dL" in error["expected"]


@pytest.mark.parametrize(
    ("change", "status", "field"),
    [
        (lambda b: b.update(hook="order-sign"), 400, "hook"),
        (lambda b: b.pop("hookInstance"), 400, "hookInstance"),
        (lambda b: b.update(hookInstance="not-a-uuid"), 400, "hookInstance"),
        (lambda b: b["context"].update(patientId="../x"), 400, "context.patientId"),
        (lambda b: b.update(fhirServer="ftp://x"), 400, "fhirServer"),
        (lambda b: b.update(fhirAuthorization=fhir_authorization()), 400, "fhirServer"),
        (lambda b: b["prefetch"].update(patient=[1]), 400, "prefetch.patient"),
        (lambda b: b["prefetch"]["patient"].update(id="other"), 400, "prefetch.patient.id"),
        (lambda b: b["prefetch"].update(PL={"resourceType": "Patient"}), 400, "prefetch.PL"),
    ],
    ids=[
        "hook",
        "no hookInstance",
        "hookInstance",
        "patientId",
        "fhirServer",
        "auth without server",
        "patient not a resource",
        "other patient",
        "not a bundle",
    ],
)
def test_bad_requests_name_the_field(client, change, status, field):
    body = hook_request(prefetch())
    change(body)
    r = client.post(SERVICE, json=body)
    assert r.status_code == status, r.text
    errors = r.json()["errors"]
    assert errors and errors[0]["field"] == field, errors


def test_unknown_service_not_json_and_nothing_audited(client):
    r = client.post("/cds-services/other", json=hook_request(prefetch()))
    assert r.status_code == 404 and r.json()["errors"][0]["field"] == "id"
    r = client.post(SERVICE, content=b"hook=x", headers={"Content-Type": "text/plain"})
    assert r.status_code == 415
    r = client.post(SERVICE, content=b"{", headers={"Content-Type": "application/json"})
    assert r.status_code == 400
    assert client.get("/v1/predictions").json()["items"] == []


# --- the EHR's JWT -------------------------------------------------------------------------


@pytest.mark.parametrize("alg", ["ES384", "RS384", "ES256"])
def test_tokens_signed_with_asymmetric_algorithms_are_accepted(cds, keys, alg):
    r = call(cds, keys, hook_request(prefetch()), alg)
    assert r.status_code == 200, r.text


def test_the_discovery_url_is_accepted_as_aud(cds, keys):
    r = call(cds, keys, hook_request(prefetch()), aud=f"{PUBLIC_URL}/cds-services")
    assert r.status_code == 200, r.text


REFUSED = {
    "alg none": (lambda k: k.forged("none"), "alg 'none'"),
    "HMAC with the public key": (
        lambda k: k.forged("HS256", k.public_pem("ES384")),
        "alg 'HS256'",
    ),
    "wrong aud": (lambda k: k.token(aud="https://other.example.org/cds-services/x"), "aud"),
    "aud of another service": (lambda k: k.token(aud=f"{PUBLIC_URL}/cds-services/x"), "aud"),
    "expired": (lambda k: k.token(exp=1_700_000_000, iat=1_699_999_700), "expired"),
    "issued in the future": (lambda k: k.token(iat=4_000_000_000, exp=4_000_000_300), "iat"),
    "no jti": (lambda k: k.token(jti=...), "jti"),
    "lives too long": (lambda k: k.token(exp=4_000_000_000), "at most"),
    "unknown issuer": (lambda k: k.token(iss="https://evil.example.org"), "not allowed"),
    "not a JWT": (lambda k: "abc", "not a JWT"),
    "unknown key id": (lambda k: k.token(kid="key-unknown"), "key-unknown"),
    "alg not the key's": (
        lambda k: k.token("RS384", kid="key-ES384"),
        "does not match the key's algorithm",
    ),
    "signed by another key": (
        lambda k: k.token(key=ec.generate_private_key(ec.SECP384R1())),
        "Signature verification failed",
    ),
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_tokens_are_refused(cds, keys, case):
    make, words = REFUSED[case]
    r = cds.post(SERVICE, json=hook_request(prefetch()), headers=bearer(make(keys)))
    assert r.status_code == 401, r.text
    assert r.headers["www-authenticate"].startswith("Bearer")
    body = r.json()
    assert words in body["detail"] and body["errors"][0]["field"] == "Authorization"
    assert cds.get("/v1/predictions").json()["items"] == []


def test_a_replayed_jti_is_refused(cds, keys):
    token = keys.token()
    first = cds.post(SERVICE, json=hook_request(prefetch()), headers=bearer(token))
    assert first.status_code == 200, first.text
    again = cds.post(SERVICE, json=hook_request(prefetch()), headers=bearer(token))
    assert again.status_code == 401 and "used before" in again.json()["detail"]


def test_without_a_token_or_with_an_api_key_instead(make_client, cds_settings, keys):
    secured = make_client(**cds_settings, api_keys="ops:" + "k" * 24)
    r = secured.post(SERVICE, json=hook_request(prefetch()))
    assert r.status_code == 401 and "JWT" in r.json()["detail"]
    r = secured.post(SERVICE, json=hook_request(prefetch()), headers={"X-API-Key": "k" * 24})
    assert r.status_code == 401  # issuers configured: the CDS routes take only their JWTs
    assert call(secured, keys, hook_request(prefetch())).status_code == 200


def test_without_issuers_the_cds_routes_take_the_api_keys(make_client):
    secured = make_client(api_keys="ehr:" + "k" * 24)
    assert secured.get("/cds-services").status_code == 200  # discovery stays open
    assert secured.post(SERVICE, json=hook_request(prefetch())).status_code == 401
    r = secured.post(SERVICE, json=hook_request(prefetch()), headers={"X-API-Key": "k" * 24})
    assert r.status_code == 200, r.text
    record = secured.get(
        f"/v1/predictions/{r.json()['cards'][0]['uuid']}", headers={"X-API-Key": "k" * 24}
    ).json()
    assert record["caller"] == "ehr"


def test_an_unreachable_jwks_is_a_503(make_client, keys):
    dead = make_client(public_url=PUBLIC_URL, cds_issuers={ISSUER: "http://127.0.0.1:9/jwks"})
    r = call(dead, keys, hook_request(prefetch()))
    assert r.status_code == 503 and "JWKS" in r.json()["detail"]


def test_issuers_need_the_public_url():
    with pytest.raises(ValidationError, match="PUBLIC_URL"):
        Settings(_env_file=None, cds_issuers={ISSUER: "https://ehr.example.org/jwks"})
    with pytest.raises(ValidationError, match="JWKS URL"):
        Settings(_env_file=None, public_url=PUBLIC_URL, cds_issuers={ISSUER: "file:///etc"})


def test_a_token_replayed_to_another_process_sharing_the_database_is_refused(
    make_client, cds_settings, keys, tmp_path
):
    """Two apps on one audit database, as two worker processes are: the replay is refused by
    the one that did not see the token first."""
    url = f"sqlite:///{tmp_path / 'shared' / 'audit.db'}"
    one, two = (make_client(**cds_settings, database_url=url) for _ in range(2))
    token = keys.token()
    first = one.post(SERVICE, json=hook_request(prefetch()), headers=bearer(token))
    assert first.status_code == 200, first.text
    again = two.post(SERVICE, json=hook_request(prefetch()), headers=bearer(token))
    assert again.status_code == 401 and "used before" in again.json()["detail"]
    assert call(two, keys, hook_request(prefetch())).status_code == 200  # a fresh token is fine


# --- feedback ------------------------------------------------------------------------------


def _feedback(card: str, outcome: str = "overridden", **fields: Any) -> dict[str, Any]:
    item = {"card": card, "outcome": outcome, "outcomeTimestamp": "2026-12-02T03:00:00Z"}
    item.update(fields)
    return {"feedback": [item]}


REASON = {
    "reason": {
        "system": "urn:sepsis-risk-api:cds-hooks:override-reason",
        "code": "clinical-assessment",
        "display": "My clinical assessment differs",
    },
    "userComment": "Seen this morning; stable.",
}


def _stored_and_read_back(client, keys, engine) -> None:
    card = call(client, keys, hook_request(prefetch())).json()["cards"][0]["uuid"]
    send = _feedback(card, overrideReason=REASON)
    r = client.post(FEEDBACK, json=send, headers=bearer(keys.token(aud=SERVICE_URL + "/feedback")))
    assert r.status_code == 200, r.text
    assert r.json() == {"received": 1, "stored": 1}
    again = client.post(FEEDBACK, json=send, headers=bearer(keys.token()))
    assert again.json() == {"received": 1, "stored": 0}  # a retry adds nothing
    accepted = _feedback(card, "accepted", outcomeTimestamp="2026-12-02T03:05:00+01:00")
    assert client.post(FEEDBACK, json=accepted, headers=bearer(keys.token())).status_code == 200
    rows = FeedbackLog(engine).of_cards([card])
    assert [(r["outcome"], r["outcome_at"].isoformat()) for r in rows] == [
        ("overridden", "2026-12-02T03:00:00+00:00"),
        ("accepted", "2026-12-02T02:05:00+00:00"),
    ]
    first = rows[0]
    assert first["override_code"] == "clinical-assessment"
    assert first["override_display"] == "My clinical assessment differs"
    assert first["user_comment"] == "Seen this morning; stable."
    assert first["recorded_by"] == ISSUER and first["service"] == "sepsis-risk"


def test_feedback_is_stored_and_read_back(cds, keys, cds_settings, tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'data1' / 'audit.db'}")
    _stored_and_read_back(cds, keys, engine)
    engine.dispose()


def test_feedback_is_stored_and_read_back_on_postgresql(make_client, cds_settings, keys, postgres):
    url = postgres.create_database("cds_feedback")
    client = make_client(**cds_settings, database_url=url)
    engine = make_engine(url)
    _stored_and_read_back(client, keys, engine)
    engine.dispose()


def test_feedback_is_counted_in_monitoring(cds, keys):
    cards = [call(cds, keys, hook_request(prefetch())).json()["cards"][0]["uuid"] for _ in range(3)]
    sent = [
        _feedback(cards[0], "accepted"),
        _feedback(cards[1], overrideReason=REASON),
        _feedback(cards[2], overrideReason=REASON),
        # the latest feedback of a card is what counts
        _feedback(cards[2], "accepted", outcomeTimestamp="2026-12-02T04:00:00Z"),
    ]
    for body in sent:
        assert cds.post(FEEDBACK, json=body, headers=bearer(keys.token())).status_code == 200
    r = cds.get("/v1/monitoring/feedback")
    assert r.status_code == 200, r.text
    got = r.json()
    assert (got["cards"], got["accepted"], got["overridden"]) == (3, 2, 1)
    assert got["acceptance_rate"] == wilson(2, 3).as_dict()
    reason = REASON["reason"]
    assert got["override_reasons"] == [
        {"system": reason["system"], "code": reason["code"], "display": reason["display"], "n": 1}
    ]
    bad = cds.get("/v1/monitoring/feedback", params={"model": "nope"})
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "model"


def test_feedback_on_cards_not_issued_here_is_refused_whole(cds, keys):
    card = call(cds, keys, hook_request(prefetch())).json()["cards"][0]["uuid"]
    v1 = cds.post("/v1/predict", json=PATIENT).json()["predictions"][0]["prediction_id"]
    body = {"feedback": [*_feedback(card)["feedback"], *_feedback(v1)["feedback"]]}
    r = cds.post(FEEDBACK, json=body, headers=bearer(keys.token()))
    assert r.status_code == 422, r.text
    assert [e["field"] for e in r.json()["errors"]] == ["feedback[1].card"]
    other = keys.token(iss=ISSUER)  # same issuer: allowed; the /v1 estimate never is
    assert cds.post(FEEDBACK, json=_feedback(card), headers=bearer(other)).status_code == 200


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"feedback": []}, "feedback"),
        (_feedback("x", "ignored"), "feedback.0.outcome"),
        (_feedback("x", outcomeTimestamp="2026-12-02T03:00:00"), "feedback.0.outcomeTimestamp"),
    ],
)
def test_bad_feedback_names_the_field(cds, keys, body, field):
    r = cds.post(FEEDBACK, json=body, headers=bearer(keys.token()))
    assert r.status_code == 400, r.text
    assert r.json()["errors"][0]["field"] == field


# --- CORS ----------------------------------------------------------------------------------


def test_cors_is_off_by_default_and_answers_configured_origins_on_the_cds_routes(make_client):
    origin = "https://ehr.example.org"
    preflight = {
        "Origin": origin,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type",
    }
    plain = make_client()
    assert (
        "access-control-allow-origin" not in plain.get("/cds-services", headers=preflight).headers
    )
    allowed = make_client(cds_cors_origins=origin, api_keys="k:" + "k" * 24)
    r = allowed.options(SERVICE, headers=preflight)  # a preflight carries no key
    assert r.status_code == 200 and r.headers["access-control-allow-origin"] == origin
    r = allowed.get("/cds-services", headers={"Origin": origin})
    assert r.headers["access-control-allow-origin"] == origin
    other = allowed.get("/cds-services", headers={"Origin": "https://evil.example.org"})
    assert "access-control-allow-origin" not in other.headers
    assert "access-control-allow-origin" not in allowed.get("/healthz", headers=preflight).headers


def test_the_documented_example_request_answers_v1s_estimate(client):
    spec = client.get("/openapi.json").json()
    body = spec["paths"]["/cds-services/{service_id}"]["post"]["requestBody"]["content"]
    example = body["application/json"]["example"]
    assert example == json.loads(EXAMPLE.read_text()), "examples/cds-hook-request.json is stale"
    r = client.post(SERVICE, json=example)
    assert r.status_code == 200, r.text
    card = r.json()["cards"][0]
    assert client.get(f"/v1/predictions/{card['uuid']}").json()["probability"] == v1_probability(
        client
    )
