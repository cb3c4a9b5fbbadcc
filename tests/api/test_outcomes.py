"""Outcomes recorded against estimates, on SQLite and on a real PostgreSQL: one at a time and in
batches (JSON, CSV), revisions, idempotence, unknown ids, all or nothing, RFC 3339 times, keys."""

from __future__ import annotations

import itertools
from datetime import datetime
from typing import Any

import pytest
from sqlalchemy.exc import OperationalError

from factories import PATIENT, patients
from sepsis_api.db.outcomes import OutcomeLog

_names = itertools.count()
KEY = "k" * 24


@pytest.fixture(params=["sqlite", "postgresql"])
def api(request, make_client):
    """A started app on a fresh audit database of each kind."""
    if request.param == "sqlite":
        return make_client()
    url = request.getfixturevalue("postgres").create_database(f"outcomes_{next(_names)}")
    return make_client(database_url=url)


def predict(client, n: int = 1) -> list[str]:
    """Prediction ids of ``n`` fresh estimates."""
    if n == 1:
        r = client.post("/v1/predict", json=PATIENT)
        assert r.status_code == 200, r.text
        return [r.json()["predictions"][0]["prediction_id"]]
    r = client.post("/v1/predict/batch", json={"patients": patients(n)})
    assert r.status_code == 200, r.text
    return [item["prediction_id"] for item in r.json()["results"]]


def outcome(client, pid: str, **body: Any):
    return client.post(f"/v1/predictions/{pid}/outcome", json=body)


def revisions(client, pid: str) -> list[dict[str, Any]]:
    r = client.get(f"/v1/predictions/{pid}/outcomes")
    assert r.status_code == 200, r.text
    return r.json()["revisions"]


def csv_post(client, text: str, *, bom: bool = False, **kwargs: Any):
    data = ("\ufeff" if bom else "") + text
    return client.post(
        "/v1/outcomes", content=data.encode(), headers={"Content-Type": "text/csv"}, **kwargs
    )


# -- one outcome ----------------------------------------------------------------------------


def test_an_outcome_is_recorded_and_shown_on_the_record(api):
    [pid] = predict(api)
    assert api.get(f"/v1/predictions/{pid}").json()["outcome"] is None
    r = outcome(
        api,
        pid,
        outcome="Positive",
        observed_at="2026-11-27T15:00:00+01:00",
        source="lab",
        note="culture positive",
    )
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["prediction_id"] == pid and body["revision"] == 1 and body["revisions"] == 1
    assert body["outcome"] == "Positive" and body["source"] == "lab"
    assert body["note"] == "culture positive" and body["recorded_by"] == "anonymous"
    assert body["observed_at"] == "2026-11-27T14:00:00+00:00"  # the same instant, in UTC
    assert datetime.fromisoformat(body["recorded_at"]).utcoffset().total_seconds() == 0

    record = api.get(f"/v1/predictions/{pid}").json()
    assert record["outcome"] == body
    # every field the record had before outcomes existed is still there, unchanged in kind
    assert record["prediction_id"] == pid and record["inputs"]["PL"] == 148
    [item] = api.get("/v1/predictions").json()["items"]
    assert item["outcome"] == body


def test_a_later_outcome_supersedes_the_earlier_and_both_are_kept(api):
    [pid] = predict(api)
    first = outcome(api, pid, outcome="Negative").json()
    second = outcome(api, pid, outcome="Positive", note="revised after culture")
    assert second.status_code == 201
    assert second.json()["revision"] == 2 and second.json()["revisions"] == 2
    record = api.get(f"/v1/predictions/{pid}").json()
    assert record["outcome"]["outcome"] == "Positive" and record["outcome"]["revisions"] == 2
    kept = revisions(api, pid)
    assert [(r["revision"], r["outcome"]) for r in kept] == [(1, "Negative"), (2, "Positive")]
    assert kept[0] == {k: v for k, v in first.items() if k != "revisions"}
    # back to the first value: a third revision, not a return to the first one
    assert outcome(api, pid, outcome="Negative").json()["revision"] == 3


def test_the_same_outcome_twice_adds_nothing(api):
    [pid] = predict(api)
    sent = {"outcome": "Positive", "observed_at": "2026-11-27T14:00:00Z", "source": "lab"}
    first = outcome(api, pid, **sent)
    assert first.status_code == 201
    again = outcome(api, pid, **sent)
    assert again.status_code == 200 and again.json() == first.json()
    # the same instant written another way is the same outcome
    same = outcome(api, pid, **{**sent, "observed_at": "2026-11-27T15:00:00+01:00"})
    assert same.status_code == 200 and same.json()["revision"] == 1
    assert len(revisions(api, pid)) == 1
    # anything different is a new revision: the note, the source, the time
    assert outcome(api, pid, **sent, note="n").json()["revision"] == 2
    assert outcome(api, pid, **{**sent, "source": None}).json()["revision"] == 3
    assert outcome(api, pid, **{**sent, "source": None}).status_code == 200


def test_an_unknown_prediction_is_a_404_naming_it(api):
    r = outcome(api, "no-such-id", outcome="Positive")
    assert r.status_code == 404
    body = r.json()
    assert "'no-such-id'" in body["detail"] and body["request_id"] == r.headers["x-request-id"]
    [error] = body["errors"]
    assert error["field"] == "prediction_id" and error["value"] == "no-such-id"
    assert api.get("/v1/predictions/no-such-id/outcomes").status_code == 404


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"outcome": "positive"}, "outcome"),
        ({"outcome": 1}, "outcome"),
        ({}, "outcome"),
        ({"outcome": "Positive", "extra": 1}, "extra"),
        ({"outcome": "Positive", "note": "x" * 2001}, "note"),
        ({"outcome": "Positive", "source": 5}, "source"),
    ],
)
def test_an_invalid_outcome_is_a_422_naming_the_field(client, body, field):
    [pid] = predict(client)
    r = outcome(client, pid, **body)
    assert r.status_code == 422, r.text
    errors = r.json()["errors"]
    assert [e["field"] for e in errors] == [field]
    assert errors[0].keys() == {"field", "row", "value", "expected", "message"}
    if field == "extra":
        assert "prediction_id, outcome, observed_at, source, note" in errors[0]["expected"]
    assert revisions(client, pid) == []


def test_only_json_is_accepted_for_one_outcome(client):
    [pid] = predict(client)
    r = client.post(f"/v1/predictions/{pid}/outcome", content=b"Positive")
    assert r.status_code == 415
    r = client.post(
        f"/v1/predictions/{pid}/outcome",
        content=b'{"outcome": "Pos',
        headers={"Content-Type": "application/json"},
    )
    assert r.status_code == 422 and r.json()["errors"][0]["expected"] == "a valid JSON document"


# -- RFC 3339 -------------------------------------------------------------------------------

NOT_RFC3339 = [
    "1700000000",
    "",
    "2026-11-27",
    "2026-11-27T14:00:00",  # no offset: names no instant
    "2026-11-27 14:00:00Z",
    "2026-11-27T14:00:00+0100",
    "2026-13-01T08:00:00Z",
    "0001-01-01T00:00:00+01:00",
]


@pytest.mark.parametrize("value", [*NOT_RFC3339, 1700000000])
def test_observed_at_must_be_an_rfc3339_date_time(client, value):
    [pid] = predict(client)
    r = outcome(client, pid, outcome="Positive", observed_at=value)
    assert r.status_code == 422, r.text
    [error] = r.json()["errors"]
    assert error["field"] == "observed_at" and error["value"] == value
    assert error["expected"].startswith("an RFC 3339 date-time")


@pytest.mark.parametrize(
    ("value", "stored"),
    [
        ("2026-11-27t14:00:00z", "2026-11-27T14:00:00+00:00"),  # lower case t and z
        ("2026-11-27T14:00:00.123456-05:30", "2026-11-27T19:30:00.123456+00:00"),
        ("2016-12-31T23:59:60Z", "2016-12-31T23:59:59+00:00"),  # a leap second
    ],
)
def test_rfc3339_forms_are_read_as_the_instant_they_name(client, value, stored):
    [pid] = predict(client)
    r = outcome(client, pid, outcome="Negative", observed_at=value)
    assert r.status_code == 201, r.text
    assert r.json()["observed_at"] == stored
    assert revisions(client, pid)[0]["observed_at"] == stored


# -- batches --------------------------------------------------------------------------------


def test_a_json_batch_records_every_outcome(api):
    a, b, c = predict(api, 3)
    outcome(api, c, outcome="Negative")
    r = api.post(
        "/v1/outcomes",
        json={
            "outcomes": [
                {"prediction_id": a, "outcome": "Positive", "observed_at": "2026-11-27T14:00:00Z"},
                {"prediction_id": b, "outcome": "Negative", "source": "ehr"},
                {"prediction_id": c, "outcome": "Negative"},  # already so: unchanged
                {"prediction_id": a, "outcome": "Negative"},  # a later revision in the batch
            ]
        },
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["count"], body["created"], body["unchanged"]) == (4, 3, 1)
    assert [(o["prediction_id"], o["revision"]) for o in body["outcomes"]] == [
        (a, 1),
        (b, 1),
        (c, 1),
        (a, 2),
    ]
    assert api.get(f"/v1/predictions/{a}").json()["outcome"]["outcome"] == "Negative"
    assert [r["outcome"] for r in revisions(api, a)] == ["Positive", "Negative"]
    assert api.get(f"/v1/predictions/{b}").json()["outcome"]["source"] == "ehr"
    # the same batch again adds nothing
    again = api.post(
        "/v1/outcomes",
        json={"outcomes": [{"prediction_id": b, "outcome": "Negative", "source": "ehr"}]},
    )
    assert again.json()["created"] == 0 and len(revisions(api, b)) == 1


@pytest.mark.parametrize("newline", ["\r", "\r\n", "\n"], ids=["CR", "CRLF", "LF"])
@pytest.mark.parametrize("bom", [True, False], ids=["BOM", "no BOM"])
def test_a_csv_batch_is_read_with_any_line_ending_and_a_bom(client, newline, bom):
    a, b = predict(client, 2)
    text = newline.join(
        [
            "prediction_id,outcome,observed_at,source",
            f"{a},Positive,2026-11-27T14:00:00Z,lab",
            f"{b},Negative,,",  # empty cells: left out
            "",
        ]
    )
    r = csv_post(client, text, bom=bom)
    assert r.status_code == 200, r.text
    assert r.json()["created"] == 2
    first = client.get(f"/v1/predictions/{a}").json()["outcome"]
    assert first["outcome"] == "Positive" and first["source"] == "lab"
    assert first["observed_at"] == "2026-11-27T14:00:00+00:00"
    second = client.get(f"/v1/predictions/{b}").json()["outcome"]
    assert second["outcome"] == "Negative" and second["observed_at"] is None
    assert second["source"] is None


def test_a_csv_batch_on_postgresql(api):
    a, b = predict(api, 2)
    r = csv_post(api, f"outcome,prediction_id\r\nPositive,{a}\r\nNegative,{b}\r\n", bom=True)
    assert r.status_code == 200, r.text
    assert [o["outcome"] for o in r.json()["outcomes"]] == ["Positive", "Negative"]
    assert len(revisions(api, a)) == len(revisions(api, b)) == 1


def test_a_json_batch_is_all_or_nothing_with_every_bad_row_listed(api):
    good, other = predict(api, 2)
    r = api.post(
        "/v1/outcomes",
        json={
            "outcomes": [
                {"prediction_id": good, "outcome": "Positive"},
                {"prediction_id": "unknown-1", "outcome": "Positive"},
                {"prediction_id": other, "outcome": "maybe"},
                {"prediction_id": good, "outcome": "Negative", "observed_at": "yesterday"},
                {"outcome": "Negative"},
                {"prediction_id": "unknown-2", "outcome": "Negative"},
            ]
        },
    )
    assert r.status_code == 422, r.text
    body = r.json()
    assert "nothing was recorded" in body["detail"] and "5 invalid row(s)" in body["detail"]
    found = {(e["row"], e["field"], e["value"]) for e in body["errors"]}
    assert found == {
        (1, "prediction_id", "unknown-1"),
        (2, "outcome", "maybe"),
        (3, "observed_at", "yesterday"),
        (4, "prediction_id", None),
        (5, "prediction_id", "unknown-2"),
    }
    assert all(e["message"].startswith(f"outcomes[{e['row']}].") for e in body["errors"])
    assert revisions(api, good) == [] and revisions(api, other) == []


def test_a_batch_of_only_unknown_ids_lists_each(api):
    [good] = predict(api)
    rows = [{"prediction_id": good, "outcome": "Positive"}]
    rows += [{"prediction_id": f"missing-{i}", "outcome": "Negative"} for i in range(3)]
    r = api.post("/v1/outcomes", json={"outcomes": rows})
    assert r.status_code == 422
    assert [(e["row"], e["value"]) for e in r.json()["errors"]] == [
        (1, "missing-0"),
        (2, "missing-1"),
        (3, "missing-2"),
    ]
    assert revisions(api, good) == []


def test_a_csv_batch_is_all_or_nothing_with_every_bad_row_listed(api):
    good, other = predict(api, 2)
    text = "\n".join(
        [
            "prediction_id,outcome,observed_at",
            f"{good},Positive,",
            "nope,Positive,",
            f"{other},Negative,2026-11-27T14:00:00",  # no offset
            f"{other},Sepsis,",
            f"{good},Negative",  # a cell short
            "",
        ]
    )
    r = csv_post(api, text)
    assert r.status_code == 422, r.text
    errors = r.json()["errors"]
    assert {(e["row"], e["field"]) for e in errors} == {
        (2, "prediction_id"),
        (3, "observed_at"),
        (4, "outcome"),
        (5, None),
    }
    assert all(e["message"].startswith(f"row {e['row']}") for e in errors)
    assert revisions(api, good) == [] and revisions(api, other) == []


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("", "empty"),
        ("prediction_id,outcome\n", "no data rows"),
        ("prediction_id\nx\n", "outcome: column missing"),
        ("prediction_id,outcome,ward\nx,Positive,4\n", "unknown column 'ward'"),
        ("prediction_id,outcome,outcome\nx,Positive,Positive\n", "appears twice"),
    ],
)
def test_a_csv_without_the_columns_is_a_422(client, text, words):
    r = csv_post(client, text)
    assert r.status_code == 422, r.text
    assert words in r.json()["detail"]


@pytest.mark.parametrize(
    "body",
    [{}, {"outcomes": []}, {"outcomes": {}}, [], {"outcomes": [], "x": 1}, "outcomes"],
)
def test_a_json_batch_that_is_not_a_list_of_outcomes_is_a_422(client, body):
    r = client.post("/v1/outcomes", json=body)
    assert r.status_code == 422, r.text
    assert r.json()["errors"]


def test_batch_content_types_and_size_limit(make_client):
    client = make_client(max_batch_rows=2)
    a, b, c = (predict(client)[0] for _ in range(3))
    rows = [{"prediction_id": p, "outcome": "Positive"} for p in (a, b, c)]
    assert client.post("/v1/outcomes", json={"outcomes": rows}).status_code == 413
    lines = "prediction_id,outcome\n" + "".join(f"{p},Positive\n" for p in (a, b, c))
    assert csv_post(client, lines).status_code == 413
    r = client.post("/v1/outcomes", content=b"x", headers={"Content-Type": "text/plain"})
    assert r.status_code == 415
    assert client.post("/v1/outcomes", json={"outcomes": rows[:2]}).status_code == 200


# -- keys and failures ----------------------------------------------------------------------


def test_keys_are_required_when_configured_and_the_key_id_is_recorded(make_client):
    client = make_client(api_keys=f"ward4:{KEY}")
    auth = {"Authorization": f"Bearer {KEY}"}
    r = client.post("/v1/predict", json=PATIENT, headers=auth)
    pid = r.json()["predictions"][0]["prediction_id"]
    body = {"outcome": "Positive"}
    batch = {"outcomes": [{"prediction_id": pid, **body}]}
    for method, path, payload in [
        ("POST", f"/v1/predictions/{pid}/outcome", body),
        ("POST", "/v1/outcomes", batch),
        ("GET", f"/v1/predictions/{pid}/outcomes", None),
    ]:
        for headers in ({}, {"X-API-Key": "w" * 24}):
            r = client.request(method, path, json=payload, headers=headers)
            assert r.status_code == 401, (method, path, r.text)
    assert client.get(f"/v1/predictions/{pid}/outcomes", headers=auth).json()["revisions"] == []
    r = client.post(f"/v1/predictions/{pid}/outcome", json=body, headers={"X-API-Key": KEY})
    assert r.status_code == 201 and r.json()["recorded_by"] == "ward4"
    r = client.post("/v1/outcomes", json=batch, headers=auth)
    assert r.status_code == 200 and r.json()["unchanged"] == 1


def test_a_database_error_is_a_503_and_records_nothing(client, monkeypatch):
    [pid] = predict(client)

    def unavailable(*_args: Any) -> Any:
        raise OperationalError("INSERT", {}, Exception("database is locked"))

    monkeypatch.setattr(OutcomeLog, "record", unavailable)
    for r in (
        outcome(client, pid, outcome="Positive"),
        client.post(
            "/v1/outcomes", json={"outcomes": [{"prediction_id": pid, "outcome": "Positive"}]}
        ),
    ):
        assert r.status_code == 503, r.text
        assert r.headers["retry-after"] == "5"
        assert "no outcome was recorded" in r.json()["detail"]
    monkeypatch.undo()
    assert revisions(client, pid) == []


def test_a_lost_race_for_a_revision_number_is_retried(api, monkeypatch):
    """Two writers reading the same current revision: the unique (prediction, revision) index
    refuses the second insert, which reads again and adds the next revision."""
    [pid] = predict(api)
    log = OutcomeLog(api.app.state.service.audit.engine)
    real = OutcomeLog._current
    raced = []

    def stale_once(conn, ids):
        found = real(conn, ids)
        if not raced:  # another writer adds revision 1 after this one has read
            raced.append(True)
            with log.engine.begin() as other:
                real_record = OutcomeLog._record
                real_record(log, other, [_item(pid, "Negative")], "other")
        return found

    monkeypatch.setattr(OutcomeLog, "_current", staticmethod(stale_once))
    [(row, created)] = log.record([_item(pid, "Positive")], "me")
    monkeypatch.undo()
    assert created and row["revision"] == 2
    assert [(r["recorded_by"], r["outcome"]) for r in revisions(api, pid)] == [
        ("other", "Negative"),
        ("me", "Positive"),
    ]


def _item(pid: str, value: str):
    from sepsis_api.db.outcomes import OutcomeIn

    return OutcomeIn(pid, value)


def test_nul_characters_are_refused_or_unknown_not_a_database_error(api):
    """PostgreSQL cannot store or compare text with NUL: a 422 for the text fields, and an id
    with one is simply unknown."""
    [pid] = predict(api)
    r = outcome(api, pid, outcome="Positive", note="a\x00b")
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "note"
    assert outcome(api, "a%00b", outcome="Positive").status_code == 404
    assert api.get("/v1/predictions/a%00b").status_code == 404
    r = api.post(
        "/v1/outcomes", json={"outcomes": [{"prediction_id": "x\x00", "outcome": "Positive"}]}
    )
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "prediction_id"
    assert revisions(api, pid) == []


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("/v1/predictions?patient_id=a%00b", "patient_id"),
        ("/v1/predictions?model=a%00b", "model"),
        ("/v1/predictions?model_version=a%00b", "model_version"),
        ("/v1/predictions?cursor=a%00b", "cursor"),
        ("/v1/monitoring/performance?model_version=a%00b", "model_version"),
        ("/v1/monitoring/drift?model=a%00b", "model"),
        ("/v1/monitoring/feedback?model_version=a%00b", "model_version"),
    ],
)
def test_a_nul_in_a_text_filter_is_a_422_naming_it(api, path, field):
    """A filter PostgreSQL could not compare is the client's mistake, named, on either database."""
    predict(api)
    r = api.get(path)
    assert r.status_code == 422, r.text
    [error] = r.json()["errors"]
    assert error["field"] == field and error["value"] == "a\x00b", error
