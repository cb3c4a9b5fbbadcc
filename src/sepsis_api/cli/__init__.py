"""The ``sepsis-api`` command line: one module per command group, each command a few lines over
the module that does the work.

    train.py    train                       ml.train, ml.publish
    predict.py  predict                     batch.offline.score_file
    evaluate.py  evaluate                   monitoring.local, monitoring.performance,
                                            ml.validation_report
    recalibrate.py  recalibrate             monitoring.calibration, ml.recalibrate
    serve.py    serve, ui, up               api.app, ui.launch
    models.py   models list | show | activate   ml.store, db.audit
    db.py       db upgrade | current        db.migrate
    config.py   config                      config.settings_table
    traffic.py  traffic                     HTTP to a running server (httpx), ml.scoring

Start-up stays light: this package imports typer, rich and the settings only; every command
imports what it needs (numpy, pandas, the model code, uvicorn, the API) when it runs.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape

from sepsis_api.config import get_settings

if TYPE_CHECKING:
    from sepsis_api.ml.store import Registry

app = typer.Typer(
    help="Sepsis Risk API: calibrated, explained sepsis-risk estimates.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
console = Console(stderr=True, soft_wrap=True)  # messages stay on one greppable line
# Tables stay unwrapped when piped to a file or another program.
out = Console(width=None if sys.stdout.isatty() else 200)


def _fail(message: str, code: int = 2) -> typer.Exit:
    """Print ``message`` as an error; the exit to raise (``raise _fail(...) from None``)."""
    # Escaped: messages quote user input and file contents, which may hold [brackets].
    console.print(f"[bold red]error:[/] {escape(message)}", highlight=False)
    return typer.Exit(code)


def _registry(registry: Path | None) -> Registry:
    """The settings' registry, with ``--registry`` searched first when given."""
    from sepsis_api.ml.store import Registry, registry_for

    settings = get_settings()
    if registry is not None:
        return Registry([registry, *registry_for(settings).roots])
    return registry_for(settings)


RegistryOpt = Annotated[
    Path | None,
    typer.Option("--registry", help="Model directory to search first (default: settings)."),
]

# The groups use the helpers above, so they are imported after them.
from sepsis_api.cli import (  # noqa: E402
    config,
    db,
    evaluate,
    models,
    predict,
    recalibrate,
    serve,
    traffic,
    train,
)

app.add_typer(models.app, name="models")
app.add_typer(db.app, name="db")
app.command()(train.train)
app.command()(predict.predict)
app.command()(evaluate.evaluate)
app.command()(recalibrate.recalibrate)
app.command()(serve.serve)
app.command()(serve.ui)
app.command()(serve.up)
app.command()(config.config)
app.command()(traffic.traffic)

__all__ = ["RegistryOpt", "app", "console", "out"]
