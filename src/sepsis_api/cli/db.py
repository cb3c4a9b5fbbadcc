"""``sepsis-api db upgrade | current``: the audit database's schema (``db.migrate``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from sepsis_api.cli import out
from sepsis_api.config import get_settings

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

app: typer.Typer = typer.Typer(
    help="The audit database's schema (Alembic migrations).", no_args_is_help=True
)


def _engine(url: str | None = None) -> Engine:
    from sepsis_api.db.session import make_engine

    return make_engine(url or get_settings().effective_database_url)


@app.command("upgrade")
def upgrade() -> None:
    """Apply every pending migration to the audit database."""
    from sepsis_api.db import migrate

    engine = _engine()
    before = migrate.current_revision(engine)
    migrate.upgrade(engine)
    out.print(
        f"audit database {engine.url.render_as_string(hide_password=True)}: "
        f"{before or 'empty'} -> {migrate.current_revision(engine)}"
    )


@app.command("current")
def current() -> None:
    """Show the audit database's schema revision and whether it is up to date."""
    from pathlib import Path

    from sepsis_api.db import migrate
    from sepsis_api.db.session import sqlite_file

    url = get_settings().effective_database_url
    path = sqlite_file(url)
    if path is not None and not Path(path).exists():  # a look must not create the file
        out.print(f"{url}: no database yet - run `sepsis-api db upgrade`")
        raise typer.Exit(1)
    engine = _engine(url)
    revision, head = migrate.current_revision(engine), migrate.head_revision(engine)
    state = "up to date" if revision == head else "behind: run `sepsis-api db upgrade`"
    out.print(
        f"{engine.url.render_as_string(hide_password=True)}: revision "
        f"{revision or 'none'} (this release: {head}) - {state}"
    )
    if revision != head:
        raise typer.Exit(1)
