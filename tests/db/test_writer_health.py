"""A real app whose audit writer thread dies or is stuck: /readyz says so, and every predict
call that would wait on the thread answers a 503 within SEPSIS_API_AUDIT_WAIT_SECONDS instead
of hanging (SQLite with the loop writer's fall-back forced by a lock, and PostgreSQL)."""

from __future__ import annotations

import itertools
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from factories import PATIENT, patients
from sepsis_api.api.service import ON_LOOP_ROWS
from sepsis_api.db.group_commit import WriterStopped

WAIT = 30  # seconds; only ever reached when a test is failing
_names = itertools.count()


def kill_writer(service, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the writer thread die for real: SystemExit escapes its loop."""

    def fatal(*_args: object) -> None:
        raise SystemExit("killed by the test")

    monkeypatch.setattr(service.audit, "record", fatal)
    monkeypatch.setattr(service.audit, "record_chunks", fatal)
    with pytest.raises(WriterStopped):
        service.writer.submit([]).result(timeout=WAIT)
    assert not service.writer.alive


def assert_503(reply, *words: str) -> None:
    assert reply.status_code == 503, reply.text
    assert reply.headers.get("retry-after") == "5"
    detail = reply.json()["detail"]
    for word in (*words, "no estimate was returned"):
        assert word in detail, detail


def test_readyz_names_the_writer_thread_once_it_died(make_client, monkeypatch):
    client = make_client(audit_wait_seconds=0.5)
    assert client.get("/readyz").status_code == 200
    kill_writer(client.app.state.service, monkeypatch)
    ready = client.get("/readyz")
    assert ready.status_code == 503
    assert "audit writer thread (audit-writer)" in ready.json()["reason"]
    assert client.get("/healthz").status_code == 200  # alive, just not ready


def test_predict_waiting_on_a_dead_writer_thread_is_a_503_naming_it(
    make_client, monkeypatch, write_lock
):
    client = make_client(audit_wait_seconds=0.5)
    service = client.app.state.service
    kill_writer(service, monkeypatch)
    died = "audit writer thread (audit-writer) died (SystemExit"
    with write_lock(service.audit.sqlite_file):  # the loop writer hands over to the thread
        assert_503(client.post("/v1/predict", json=PATIENT), died)
    # A batch larger than the loop takes streams through the writer thread.
    big = {"patients": patients(ON_LOOP_ROWS + 1)}
    assert_503(client.post("/v1/predict/batch", json=big), died)
    # A commit the loop writer makes itself needs no thread: answered, and recorded (a single
    # prediction, and a batch small enough to be committed on the loop).
    ok = client.post("/v1/predict", json=PATIENT)
    assert ok.status_code == 200
    small = client.post("/v1/predict/batch", json={"patients": patients(3)})
    assert small.status_code == 200
    history = client.get("/v1/predictions").json()["items"]
    assert [i["prediction_id"] for i in history] == [
        *[r["prediction_id"] for r in reversed(small.json()["results"])],
        ok.json()["predictions"][0]["prediction_id"],
    ]


def test_requests_queued_when_the_writer_thread_dies_get_their_503(
    make_client, monkeypatch, write_lock, wait_until
):
    # A generous bound: these calls must end by the thread's death, not by the timer.
    client = make_client(audit_wait_seconds=WAIT)
    service = client.app.state.service
    inside, release = threading.Event(), threading.Event()

    def fatal(*_args: object) -> None:
        inside.set()
        release.wait(WAIT)
        raise SystemExit("killed by the test")

    monkeypatch.setattr(service.audit, "record", fatal)
    with write_lock(service.audit.sqlite_file), ThreadPoolExecutor(2) as pool:
        first = pool.submit(client.post, "/v1/predict", json=PATIENT)
        assert inside.wait(WAIT)  # the thread holds the first request's rows
        second = pool.submit(client.post, "/v1/predict", json=PATIENT)
        wait_until(lambda: service.writer._queue.qsize() == 1, "the second request to queue")
        release.set()
        for reply in (first.result(WAIT), second.result(WAIT)):
            assert_503(reply, "audit writer thread (audit-writer) died")
    assert not service.writer.alive


def test_a_writer_thread_stuck_on_a_lock_is_given_up_on_after_the_bound(make_client, write_lock):
    client = make_client(audit_wait_seconds=0.2)
    service = client.app.state.service
    within = "did not confirm the commit within 0.2 s"
    with write_lock(service.audit.sqlite_file):  # the thread waits for it, up to 30 s
        assert_503(client.post("/v1/predict", json=PATIENT), within)
        assert_503(client.post("/v1/predict/batch", json={"patients": patients(3)}), within)
        assert service.writer.alive
        assert client.get("/readyz").status_code == 200  # a lock is not a dead writer
    assert client.post("/v1/predict", json=PATIENT).status_code == 200


def test_postgresql_every_commit_waits_on_the_writer_thread(postgres, make_client, monkeypatch):
    url = postgres.create_database(f"writer_health_{next(_names)}")
    client = make_client(database_url=url, audit_wait_seconds=0.5)
    assert client.post("/v1/predict", json=PATIENT).status_code == 200
    kill_writer(client.app.state.service, monkeypatch)
    died = "audit writer thread (audit-writer) died (SystemExit"
    assert_503(client.post("/v1/predict", json=PATIENT), died)
    assert_503(client.post("/v1/predict", params={"model": "all"}, json=PATIENT), died)
    assert_503(client.post("/v1/predict/batch", json={"patients": patients(3)}), died)
    assert client.get("/readyz").status_code == 503
