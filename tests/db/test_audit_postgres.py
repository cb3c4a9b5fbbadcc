"""The audit log on a real PostgreSQL: records, one-transaction batches, outage and recovery."""

from __future__ import annotations

import itertools

import psycopg
import pytest

from factories import PATIENT, patient, patients

_names = itertools.count()


@pytest.fixture
def pg_client(postgres, make_client):
    """An app whose audit log is a fresh database on the throwaway cluster."""
    url = postgres.create_database(f"audit_{next(_names)}")
    client = make_client(database_url=url)
    client.pg_url = url  # type: ignore[attr-defined]
    return client


def _count(postgres, url: str) -> int:
    with psycopg.connect(postgres.dsn.replace(postgres.db, url.rsplit("/", 1)[1])) as conn:
        return conn.execute("SELECT count(*) FROM predictions").fetchone()[0]


def test_predictions_are_recorded_and_read_back(pg_client):
    r = pg_client.post("/v1/predict", params={"model": "all", "explain": "true"}, json=PATIENT)
    assert r.status_code == 200
    ids = [p["prediction_id"] for p in r.json()["predictions"]]
    page = pg_client.get("/v1/predictions").json()
    assert [i["prediction_id"] for i in page["items"]] == ids[::-1]
    one = pg_client.get(f"/v1/predictions/{ids[0]}").json()
    assert one["inputs"]["PL"] == 148 and one["contributions"][0]["feature"]
    assert one["created_at"].endswith("+00:00")


def test_batch_records_are_read_back_with_not_measured_as_null(pg_client):
    sent = [patient(ID="N1", SK=None), patient(ID="N2", PL=120)]
    reply = pg_client.post("/v1/predict/batch", json={"patients": sent}).json()
    for body, result in zip(sent, reply["results"], strict=True):
        rec = pg_client.get(f"/v1/predictions/{result['prediction_id']}").json()
        assert rec["patient_id"] == body["ID"] and rec["source"] == "batch"
        assert rec["probability"] == result["probability"]
        assert rec["inputs"]["SK"] == body["SK"] and rec["inputs"]["PL"] == body["PL"]
        assert rec["contributions"] is None and rec["created_at"].endswith("+00:00")


def test_a_batch_spanning_several_insert_statements_is_recorded_whole(pg_client, postgres):
    n = 2 * pg_client.app.state.service.audit.insert.rows_per_statement + 7
    r = pg_client.post("/v1/predict/batch", json={"patients": patients(n)})
    assert r.status_code == 200 and r.json()["count"] == n
    assert _count(postgres, pg_client.pg_url) == n


def test_migrations_create_the_schema_at_head(pg_client, postgres):
    from sqlalchemy import create_engine

    from sepsis_api.db import migrate

    engine = create_engine(pg_client.pg_url)
    try:
        assert migrate.is_current(engine)
    finally:
        engine.dispose()


def test_a_batch_commits_all_rows_or_none(pg_client, postgres):
    # A trigger that fails on one patient in the middle of a batch: the whole batch must vanish.
    dsn = postgres.dsn.replace(postgres.db, pg_client.pg_url.rsplit("/", 1)[1])
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("""
            CREATE FUNCTION refuse_boom() RETURNS trigger AS $$
            BEGIN
              IF NEW.patient_id = 'BOOM' THEN RAISE EXCEPTION 'refused'; END IF;
              RETURN NEW;
            END $$ LANGUAGE plpgsql;
            CREATE TRIGGER refuse_boom BEFORE INSERT ON predictions
              FOR EACH ROW EXECUTE FUNCTION refuse_boom();
        """)
    good = patients(100)
    ok = pg_client.post("/v1/predict/batch", json={"patients": good})
    assert ok.status_code == 200 and _count(postgres, pg_client.pg_url) == 100
    bad = patients(100, prefix="Q")
    bad[50]["ID"] = "BOOM"
    refused = pg_client.post("/v1/predict/batch", json={"patients": bad})
    assert refused.status_code == 503
    assert "no estimate was returned" in refused.json()["detail"]
    assert _count(postgres, pg_client.pg_url) == 100  # none of the second batch


def test_database_outage_gives_503_then_recovers_by_itself(pg_client, postgres):
    assert pg_client.post("/v1/predict", json=PATIENT).status_code == 200
    postgres.stop()
    try:
        down = pg_client.post("/v1/predict", json=PATIENT)
        assert down.status_code == 503
        assert down.headers.get("retry-after") == "5"
        assert "audit database is unavailable" in down.json()["detail"]
        ready = pg_client.get("/readyz")
        assert ready.status_code == 503 and "unreachable" in ready.json()["reason"]
        assert pg_client.get("/v1/predictions").status_code == 503
        assert pg_client.get("/healthz").status_code == 200  # alive, just not ready
    finally:
        postgres.start()
    assert pg_client.get("/readyz").status_code == 200
    assert pg_client.post("/v1/predict", json=PATIENT).status_code == 200
    assert _count(postgres, pg_client.pg_url) == 2  # the refused call left nothing behind
