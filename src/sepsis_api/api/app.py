"""The FastAPI application: ``create_app(settings)``; the lifespan loads the model and the DB."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from sepsis_api import __version__
from sepsis_api.api import errors
from sepsis_api.api.metrics import Metrics
from sepsis_api.api.middleware import RequestContext
from sepsis_api.api.routes import compat, meta, models, predict, predictions
from sepsis_api.api.security import RequireAPIKey, parse_keys
from sepsis_api.api.service import Service
from sepsis_api.config import Settings, get_settings
from sepsis_api.db import migrate
from sepsis_api.db.audit import AuditLog
from sepsis_api.db.session import make_engine
from sepsis_api.ml.predictor import Predictor
from sepsis_api.schema import NOT_A_DEVICE

log = logging.getLogger("sepsis_api")

DESCRIPTION = f"""
Calibrated sepsis-risk estimates with reasons and an audit trail.

**{NOT_A_DEVICE}**

Every estimate returned with a 2xx status has been committed to the audit log
(`GET /v1/predictions`). Features are accepted by dataset code (`PRG`...) or descriptive name
(`plasma_glucose`...); see `GET /v1/features` for units, valid ranges and which features may be
left out as "not measured". With API keys configured, send `Authorization: Bearer <key>` or
`X-API-Key: <key>`.
"""


class SchemaBehind(RuntimeError):
    pass


def open_audit(settings: Settings) -> AuditLog:
    """Connect to the audit database and make sure its schema is current."""
    engine = make_engine(settings.effective_database_url)
    if settings.db_auto_upgrade:
        migrate.upgrade(engine)
    elif not migrate.is_current(engine):
        raise SchemaBehind(
            f"the audit database schema is at {migrate.current_revision(engine) or 'nothing'}, "
            f"this release needs {migrate.head_revision(engine)}: run `sepsis-api db upgrade`"
        )
    return AuditLog(engine)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        start = time.perf_counter()
        predictor = Predictor(settings.registry().open(settings.model_version))
        metrics.model_load.set(time.perf_counter() - start)
        audit = open_audit(settings)
        app.state.service = Service(predictor=predictor, audit=audit, metrics=metrics)
        log.info("serving model version %s (default %s); audit log at %s",
                 predictor.version.version, predictor.version.default_model,
                 audit.engine.url.render_as_string(hide_password=True))
        try:
            yield
        finally:
            audit.engine.dispose()

    app = FastAPI(
        title="Sepsis Risk API", version=__version__, description=DESCRIPTION,
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.metrics = metrics
    app.state.api_keys = parse_keys(settings.api_keys, settings.api_keys_file)
    errors.install(app)
    for module in (meta, predict, predictions, models, compat):
        app.include_router(module.router)
    # Added last = outermost: the request id and size limit apply before the key check.
    app.add_middleware(RequireAPIKey, keys=app.state.api_keys)
    app.add_middleware(RequestContext, metrics=metrics, max_body_bytes=settings.max_body_bytes)
    return app
