"""SQLite connection settings: every server connection runs with the configured durability."""

from __future__ import annotations

import pytest

from factories import PATIENT

SYNCHRONOUS = {"NORMAL": 1, "FULL": 2}  # what PRAGMA synchronous reads back


@pytest.mark.parametrize("level", ["NORMAL", "FULL"])
def test_server_connections_run_with_the_configured_synchronous(make_client, level):
    client = make_client(sqlite_synchronous=level)
    assert client.post("/v1/predict", json=PATIENT).status_code == 200
    service = client.app.state.service
    with service.audit.engine.connect() as conn:  # the engine's (writer thread, reads)
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == SYNCHRONOUS[level]
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    raw = service.loop_writer._connection()  # the loop writer's own, as it just committed
    assert raw.execute("PRAGMA synchronous").fetchone()[0] == SYNCHRONOUS[level]
