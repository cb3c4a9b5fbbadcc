"""GET /v1/predictions?since=&until=: RFC 3339 date-times only, as the OpenAPI document says."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from factories import PATIENT

EXPECTED = "an RFC 3339 date-time, e.g. 2026-11-01T08:00:00Z"
PLUS_ONE = timezone(timedelta(hours=1))

NOT_RFC3339 = [
    "0.5",  # a number was read as a Unix time
    "1700000000",
    "0",
    "-1",
    "1e9",
    "yesterday",
    "",
    "2026-11-01",  # a date without a time
    "2026-11-01T08:00:00",  # no UTC offset: names no instant
    "2026-11-01T08:00Z",  # no seconds
    "2026-11-01 08:00:00Z",  # a space for T
    "2026-11-01T08:00:00+0100",  # ISO 8601 basic offset, not RFC 3339
    "20261101T080000Z",  # ISO 8601 basic format
    "2026-W44-7T08:00:00Z",  # ISO 8601 week date
    "2026-11-01T08:00:00+01",  # offset without minutes
    "2026-13-01T08:00:00Z",  # no month 13
    "2026-02-30T08:00:00Z",  # no 30 February
    "2026-11-01T24:00:00Z",
    "2026-11-01T08:00:00+24:00",
    "0001-01-01T00:00:00+01:00",  # before year 1 in UTC (was a 500)
    "9999-12-31T23:59:59-01:00",  # after year 9999 in UTC (was a 500)
    "٢٠٢٦-11-01T08:00:00Z",  # non-ASCII digits
]


def _items(client, **params: str) -> list[dict[str, Any]]:
    r = client.get("/v1/predictions", params=params)
    assert r.status_code == 200, r.text
    return r.json()["items"]


@pytest.mark.parametrize("field", ["since", "until"])
@pytest.mark.parametrize("value", NOT_RFC3339)
def test_anything_but_an_rfc3339_date_time_is_a_422_naming_field_and_value(client, field, value):
    r = client.get("/v1/predictions", params={field: value})
    assert r.status_code == 422, r.text
    body = r.json()
    assert body.keys() == {"detail", "errors", "request_id"}
    assert body["request_id"] == r.headers["x-request-id"]
    [error] = body["errors"]
    assert error.keys() == {"field", "row", "value", "expected", "message"}
    assert error["field"] == field and error["row"] is None
    assert error["value"] == value
    assert error["expected"].startswith(EXPECTED)
    assert "zone" in error["expected"]  # the offset is part of what is asked for
    assert error["message"].startswith(f"{field}: ")
    assert field in body["detail"] and EXPECTED in body["detail"]


def test_both_bad_bounds_are_reported_together(client):
    r = client.get("/v1/predictions", params={"since": "0.5", "until": "yesterday"})
    assert r.status_code == 422
    errors = r.json()["errors"]
    assert [(e["field"], e["value"]) for e in errors] == [("since", "0.5"), ("until", "yesterday")]


def test_a_date_time_with_z_or_an_offset_is_the_instant_it_names(client):
    r = client.post("/v1/predict", json=PATIENT)
    assert r.status_code == 200, r.text
    [record] = _items(client)
    created = datetime.fromisoformat(record["created_at"])
    assert created.utcoffset() == timedelta(0)
    as_z = created.isoformat().replace("+00:00", "Z")
    as_plus_one = created.astimezone(PLUS_ONE).isoformat()
    assert as_z.endswith("Z") and as_plus_one.endswith("+01:00")
    for instant in (as_z, as_plus_one, as_z.lower()):
        # since is inclusive, until exclusive: the bound at the record's own time tells an
        # offset read correctly from one an hour out either way
        assert len(_items(client, since=instant)) == 1, instant
        assert _items(client, until=instant) == [], instant
    hour_later = (created + timedelta(hours=1)).astimezone(PLUS_ONE).isoformat()
    assert _items(client, since=hour_later) == []
    assert len(_items(client, since=as_z, until=hour_later)) == 1


def test_a_leap_second_is_accepted(client):
    assert _items(client, since="2016-12-31T23:59:60Z") == []
    assert _items(client, until="2016-12-31T23:59:60.5+00:00") == []


def test_the_openapi_document_still_says_date_time(client):
    params = client.get("/openapi.json").json()["paths"]["/v1/predictions"]["get"]["parameters"]
    for p in params:
        if p["name"] in ("since", "until"):
            assert {"type": "string", "format": "date-time"} in p["schema"]["anyOf"], p
