"""The Alembic migrations and the SQLAlchemy models describe the same schema, on both databases."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from sepsis_api.db import migrate
from sepsis_api.db.models import Base


def _diff(engine):
    with engine.connect() as conn:
        return compare_metadata(MigrationContext.configure(conn), Base.metadata)


def test_migrations_at_head_match_the_models(engine):
    migrate.upgrade(engine)
    assert migrate.is_current(engine)
    assert _diff(engine) == []


def test_history_indexes_are_patient_and_time_only(engine):
    migrate.upgrade(engine)
    indexed = {tuple(ix["column_names"]) for ix in inspect(engine).get_indexes("predictions")}
    assert indexed == {("created_at",), ("patient_id",)}


def test_downgrade_and_upgrade_again(engine):
    migrate.upgrade(engine)
    migrate.downgrade(engine, "0002")
    assert migrate.current_revision(engine) == "0002"
    assert len(inspect(engine).get_indexes("predictions")) == 5
    migrate.upgrade(engine)
    assert _diff(engine) == []
