"""The FastAPI application: ``create_app(settings)``; the lifespan loads the model and the DB."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from sepsis_api import __version__
from sepsis_api.api import errors
from sepsis_api.api.fastpath import PredictFastPath
from sepsis_api.api.metrics import Metrics
from sepsis_api.api.middleware import RequestContext
from sepsis_api.api.routes import artifacts, compat, meta, models, predict, predictions
from sepsis_api.api.schemas import ErrorResponse
from sepsis_api.api.security import RequireAPIKey, parse_keys
from sepsis_api.api.service import Service
from sepsis_api.config import Settings, get_settings
from sepsis_api.db import migrate
from sepsis_api.db.audit import AuditLog
from sepsis_api.db.session import make_engine
from sepsis_api.db.writer import AuditWriter
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


def _openapi_with_our_errors(app: FastAPI) -> Callable[[], dict[str, Any]]:
    """Every 422 in the document is our ErrorResponse, not FastAPI's default shape."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            spec = get_openapi(title=app.title, version=app.version,
                               description=app.description, routes=app.routes)
            ours = {"$ref": "#/components/schemas/ErrorResponse"}
            for operations in spec.get("paths", {}).values():
                for op in operations.values():
                    for code, response in op.get("responses", {}).items():
                        if code.startswith("4") and response.get("content"):
                            response["content"] = {"application/json": {"schema": ours}}
            schemas = spec.setdefault("components", {}).setdefault("schemas", {})
            schemas.setdefault("ErrorResponse", ErrorResponse.model_json_schema(
                ref_template="#/components/schemas/{model}"))
            for name, schema in ErrorResponse.model_json_schema(
                    ref_template="#/components/schemas/{model}").get("$defs", {}).items():
                schemas.setdefault(name, schema)
            schemas["ErrorResponse"].pop("$defs", None)
            schemas.pop("HTTPValidationError", None)
            schemas.pop("ValidationError", None)
            app.openapi_schema = spec
        return app.openapi_schema

    return openapi


def create_app(settings: Settings | None = None, *, fast_path: bool = True) -> FastAPI:
    settings = settings or get_settings()
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        start = time.perf_counter()
        predictor = Predictor(settings.registry().open(settings.model_version))
        metrics.model_load.set(time.perf_counter() - start)
        audit = open_audit(settings)
        writer = AuditWriter(audit)
        app.state.service = Service(predictor=predictor, audit=audit, writer=writer,
                                    metrics=metrics)
        log.info("serving model version %s (default %s); audit log at %s",
                 predictor.version.version, predictor.version.default_model,
                 audit.engine.url.render_as_string(hide_password=True))
        try:
            yield
        finally:
            writer.close()  # commit whatever is still queued before the engine goes
            audit.engine.dispose()

    app = FastAPI(
        title="Sepsis Risk API", version=__version__, description=DESCRIPTION,
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.metrics = metrics
    app.state.api_keys = parse_keys(settings.api_keys, settings.api_keys_file)
    errors.install(app)
    app.openapi = _openapi_with_our_errors(app)  # type: ignore[method-assign]
    for module in (meta, predict, predictions, models, artifacts, compat):
        app.include_router(module.router)
    # Added last = outermost: request id and size limit, then the key check, then the lean
    # path for well-formed single predictions (everything else goes through FastAPI).
    if fast_path:
        app.add_middleware(PredictFastPath)
    app.add_middleware(RequireAPIKey, keys=app.state.api_keys)
    app.add_middleware(RequestContext, metrics=metrics, max_body_bytes=settings.max_body_bytes)
    return app
