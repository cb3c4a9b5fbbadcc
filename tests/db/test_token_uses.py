"""CDS Hooks JWT ids seen (db/token_uses.py): once per issuer until expiry, in the shared
database, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from sepsis_api.db import migrate
from sepsis_api.db.models import CDSTokenUse
from sepsis_api.db.session import make_engine
from sepsis_api.db.token_uses import TokenUses

T0 = datetime(2026, 12, 2, 8, 0, tzinfo=UTC)


def _held(engine) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(CDSTokenUse)).scalar_one()


def test_a_token_is_let_in_once_per_issuer_until_it_expires(engine):
    migrate.upgrade(engine)
    uses = TokenUses(engine)
    until = T0 + timedelta(minutes=5)
    assert uses.first_use("https://ehr-a", "j1", until, T0)
    assert not uses.first_use("https://ehr-a", "j1", until, T0 + timedelta(minutes=1))
    assert uses.first_use("https://ehr-b", "j1", until, T0)  # keyed by issuer and jti
    # Expired: forgotten (with every other expired one), and the id may be used again.
    later = until + timedelta(seconds=1)
    assert uses.first_use("https://ehr-a", "j1", later + timedelta(minutes=5), later)
    assert _held(engine) == 1


def test_two_processes_sharing_the_database_let_a_token_in_once(engine):
    """Two engines (as two worker processes hold) race for one token: exactly one wins."""
    migrate.upgrade(engine)
    other = make_engine(engine.url.render_as_string(hide_password=False))
    barrier = threading.Barrier(2, timeout=30)
    results: list[bool] = []

    def use(e) -> None:
        barrier.wait()
        results.append(TokenUses(e).first_use("https://ehr-a", "race", T0 + timedelta(1), T0))

    threads = [threading.Thread(target=use, args=(e,)) for e in (engine, other)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sorted(results) == [False, True]
    other.dispose()


def test_the_migration_adds_and_removes_the_table(engine):
    migrate.upgrade(engine, "0007")
    migrate.upgrade(engine)
    assert TokenUses(engine).first_use("i", "j", T0 + timedelta(1), T0)
    migrate.downgrade(engine, "0007")
    migrate.upgrade(engine)
    assert _held(engine) == 0
