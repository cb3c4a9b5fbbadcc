"""``sepsis-api serve | ui | up``: the HTTP API (uvicorn over ``api.app``), the web UI
(``ui.launch``) and both together.

``serve`` hands its options on as arguments: host, port and workers to ``uvicorn.run``, the
settings they change to the ``Settings`` the app is built from (``plan_serve`` works them out).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, TypedDict

import typer

from sepsis_api.cli import _fail, console
from sepsis_api.config import Settings, env_name, get_settings

if TYPE_CHECKING:
    from fastapi import FastAPI

APP_FACTORY = "sepsis_api.api.app:create_app"
LOOPBACK = {"127.0.0.1", "localhost", "::1"}
GRACEFUL_SHUTDOWN_SECONDS = 30  # in-flight requests may finish (and be committed) this long
UP_STOP_SECONDS = 20.0  # `up`: how long API and UI may take to stop before they are killed


class UvicornArgs(TypedDict):
    """Keyword arguments of ``uvicorn.run`` besides the app."""

    host: str
    port: int
    workers: int
    factory: bool
    log_level: str
    access_log: bool
    timeout_graceful_shutdown: int


@dataclass(frozen=True)
class ServePlan:
    """How ``serve`` starts the server: the app's settings and uvicorn's arguments.

    With one worker the app is built here from ``settings`` and handed to uvicorn. With more,
    uvicorn needs an import string and starts each worker as a fresh process that builds its
    own app with ``create_app()``, which reads the settings from the environment, so the
    options reach those processes as the variables in ``worker_env`` (empty with one worker).
    """

    settings: Settings
    uvicorn: UvicornArgs
    worker_env: dict[str, str]


def plan_serve(
    base: Settings,
    *,
    host: str | None = None,
    port: int | None = None,
    workers: int | None = None,
    access_log: bool | None = None,
    log_level: str = "info",
) -> ServePlan:
    """``base`` with the options given (not None) applied, and uvicorn's arguments."""
    given = {"host": host, "port": port, "workers": workers, "access_log": access_log}
    overrides = {name: value for name, value in given.items() if value is not None}
    settings = base.model_copy(update=overrides)
    several = settings.workers > 1
    return ServePlan(
        settings=settings,
        uvicorn=UvicornArgs(
            host=settings.host,
            port=settings.port,
            workers=settings.workers,
            factory=several,
            log_level=log_level,
            access_log=False,  # the app writes its own JSON access lines (settings.access_log)
            timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
        ),
        worker_env={env_name(k): str(v) for k, v in overrides.items()} if several else {},
    )


def app_for(plan: ServePlan) -> FastAPI | str:
    """What ``uvicorn.run`` serves: the app itself, or with several workers its factory."""
    if plan.uvicorn["factory"]:
        return APP_FACTORY
    from sepsis_api.api.app import create_app

    return create_app(plan.settings)


def serve(
    host: Annotated[str | None, typer.Option(help="Bind address (default: settings).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default: settings).")] = None,
    workers: Annotated[int | None, typer.Option(help="Worker processes.")] = None,
    insecure: Annotated[
        bool, typer.Option(help="Allow a non-loopback address without API keys.")
    ] = False,
    log_level: Annotated[str, typer.Option(help="Server log level.")] = "info",
    access_log: Annotated[
        bool | None, typer.Option(help="One JSON line a request on stdout (default: settings).")
    ] = None,
) -> None:
    """Start the HTTP API (uvicorn)."""
    import logging

    import uvicorn

    from sepsis_api.api.metrics import share_between_workers
    from sepsis_api.api.protocols.fhir_mapping import MappingFileError, load_mapping
    from sepsis_api.keys import parse_keys

    plan = plan_serve(
        get_settings(),
        host=host,
        port=port,
        workers=workers,
        access_log=access_log,
        log_level=log_level,
    )
    settings = plan.settings
    try:
        keys = parse_keys(settings.api_keys, settings.api_keys_file)
        parse_keys(settings.admin_keys, settings.admin_keys_file)
    except (OSError, ValueError) as e:
        raise _fail(f"API keys: {e}") from None
    try:
        load_mapping(settings.fhir_mapping)
    except MappingFileError as e:
        raise _fail(f"{env_name('fhir_mapping')}: {e}") from None
    if not keys:
        if settings.host not in LOOPBACK and not insecure:
            raise _fail(
                f"no API keys are configured, so the API would be open to anyone on "
                f"{settings.host}; set SEPSIS_API_KEYS (or SEPSIS_API_KEYS_FILE), bind "
                f"to 127.0.0.1, or pass --insecure"
            )
        console.print(
            f"[yellow]no API keys configured: authentication is off[/]"
            f"{'' if insecure else ' (listening on loopback only)'}"
        )
    else:
        console.print(f"API keys required ({len(keys)} configured)")
    logging.basicConfig(level=log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
    if settings.workers > 1:
        # Worker processes build their own app from the environment (see ServePlan).
        os.environ.update(plan.worker_env)
        share_between_workers()
    console.print(f"Sepsis Risk API on http://{settings.host}:{settings.port} (docs at /docs)")
    uvicorn.run(app_for(plan), **plan.uvicorn)


def ui(
    host: Annotated[str | None, typer.Option(help="Bind address (default: settings).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default: settings).")] = None,
    api_url: Annotated[str | None, typer.Option(help="API address (default: settings).")] = None,
) -> None:
    """Start the web UI (Streamlit); it talks to the API at --api-url."""
    from sepsis_api.ui.launch import run_ui

    settings = get_settings()
    host, port = host or settings.ui_host, port or settings.ui_port
    url = api_url or settings.ui_api_url
    console.print(f"Sepsis Risk web UI on http://{host}:{port} (API at {url})")
    raise typer.Exit(run_ui(host, port, url, settings.ui_key()))


def up() -> None:
    """Start the API and the web UI together on loopback; Ctrl-C stops both."""
    import signal
    import subprocess
    import time

    from sepsis_api.ui.launch import stop, ui_command, ui_env

    settings = get_settings()
    api_url = f"http://{settings.host}:{settings.port}"
    api = subprocess.Popen(
        [sys.executable, "-m", "sepsis_api.cli", "serve", "--log-level", "warning"]
    )
    web = subprocess.Popen(
        ui_command(settings.ui_host, settings.ui_port), env=ui_env(api_url, settings.ui_key())
    )
    console.print(
        f"API     {api_url}  (docs at /docs)\n"
        f"web UI  http://{settings.ui_host}:{settings.ui_port}\nCtrl-C stops both."
    )
    try:
        while api.poll() is None and web.poll() is None:
            time.sleep(0.5)  # the poll interval of this wait for either child to end
    except KeyboardInterrupt:
        pass
    finally:
        codes = stop(api, web, timeout=UP_STOP_SECONDS)
    stopped = (0, -signal.SIGINT, -signal.SIGTERM)  # exited, or ended by Ctrl-C or by stop
    raise typer.Exit(0 if all(code in stopped for code in codes) else 1)
