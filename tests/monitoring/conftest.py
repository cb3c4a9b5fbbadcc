"""Shared by the monitoring tests: an audit log on SQLite and on PostgreSQL."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest

from sepsis_api.config import Settings
from sepsis_api.db.audit import AuditLog, open_audit

_databases = itertools.count()


@pytest.fixture(params=["sqlite", "postgresql"])
def audit(request: pytest.FixtureRequest, tmp_path: object) -> Iterator[AuditLog]:
    if request.param == "sqlite":
        settings = Settings(_env_file=None, data_dir=tmp_path)
    else:
        url = request.getfixturevalue("postgres").create_database(f"mon_{next(_databases)}")
        settings = Settings(_env_file=None, database_url=url)
    log = open_audit(settings)
    yield log
    log.engine.dispose()
