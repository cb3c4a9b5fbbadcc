"""The FastAPI application: ``create_app(settings)``; the lifespan loads the model and the DB."""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp

from sepsis_api import __version__
from sepsis_api.api import errors
from sepsis_api.api.access_log import AccessLog
from sepsis_api.api.fastpath import PredictFastPath
from sepsis_api.api.metrics import Metrics
from sepsis_api.api.middleware import RequestContext
from sepsis_api.api.monitor import refresh_monitoring
from sepsis_api.api.protocols import cds_hooks, fhir, mlflow, v2
from sepsis_api.api.protocols.fhir_mapping import load_mapping
from sepsis_api.api.routes import (
    admin,
    artifacts,
    compat,
    drift,
    feedback,
    meta,
    models,
    outcomes,
    performance,
    predict,
    predictions,
)
from sepsis_api.api.schemas import ErrorResponse
from sepsis_api.api.security import RequireAPIKey
from sepsis_api.api.service import Service
from sepsis_api.config import Settings, get_settings
from sepsis_api.db.audit import open_audit
from sepsis_api.db.checkpoint import Checkpointer
from sepsis_api.db.group_commit import AuditWriter
from sepsis_api.db.loop_writer import LoopWriter
from sepsis_api.keys import parse_keys
from sepsis_api.ml.scoring import Predictor
from sepsis_api.ml.store import ArtifactError, Registry, registry_for
from sepsis_api.schema import NOT_A_DEVICE

log = logging.getLogger("sepsis_api")
PROTOCOLS = (v2, mlflow, fhir)  # each: a router, its ROOTS and its ERROR_SHAPE
CHECKPOINT_SECONDS = 1.0  # SQLite: WAL copied back into the database file this often

DESCRIPTION = f"""
Calibrated sepsis-risk estimates with reasons and an audit trail.

**{NOT_A_DEVICE}**

Every estimate returned with a 2xx status has been committed to the audit log
(`GET /v1/predictions`). Features are accepted by dataset code (`PRG`...) or descriptive name
(`plasma_glucose`...); see `GET /v1/features` for units, valid ranges and which features may be
left out as "not measured". With API keys configured, send `Authorization: Bearer <key>` or
`X-API-Key: <key>`.
"""


async def follow_activations(service: Service, registry: Registry, settings: Settings) -> None:
    """Every few seconds, switch to the version activated in the database (all replicas)."""
    failed: str | None = None
    while True:
        await asyncio.sleep(settings.model_poll_seconds)
        try:
            wanted = await run_in_threadpool(service.audit.active_version)
        except SQLAlchemyError:
            continue  # /readyz reports the database; keep serving
        if wanted in (None, failed, service.predictor.version.version):
            continue
        try:
            await service.switch_to(registry, wanted)
        except ArtifactError as e:
            failed = wanted
            log.error("cannot switch to activated version %s: %s", wanted, e)


def _openapi_with_our_errors(
    app: FastAPI, shapes: errors.ErrorShapes
) -> Callable[[], dict[str, Any]]:
    """Every 4xx in the document is our ErrorResponse, not FastAPI's default shape, except
    under a protocol's roots, which document their own error bodies."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            spec = get_openapi(
                title=app.title, version=app.version, description=app.description, routes=app.routes
            )
            ours = {"$ref": "#/components/schemas/ErrorResponse"}
            for path, operations in spec.get("paths", {}).items():
                if shapes.shape_for(path) is not None:
                    for op in operations.values():  # their routes answer it as a 400
                        responses = op.get("responses", {})
                        if "HTTPValidationError" in str(responses.get("422", "")):
                            del responses["422"]
                    continue
                for op in operations.values():
                    for code, response in op.get("responses", {}).items():
                        if code.startswith("4") and response.get("content"):
                            response["content"] = {"application/json": {"schema": ours}}
            schemas = spec.setdefault("components", {}).setdefault("schemas", {})
            schemas.setdefault(
                "ErrorResponse",
                ErrorResponse.model_json_schema(ref_template="#/components/schemas/{model}"),
            )
            for name, schema in (
                ErrorResponse.model_json_schema(ref_template="#/components/schemas/{model}")
                .get("$defs", {})
                .items()
            ):
                schemas.setdefault(name, schema)
            schemas["ErrorResponse"].pop("$defs", None)
            schemas.pop("HTTPValidationError", None)
            schemas.pop("ValidationError", None)
            app.openapi_schema = spec
        return app.openapi_schema

    return openapi


class SepsisAPI(FastAPI):
    """FastAPI with this service's own ASGI layers outside the framework's.

    Request id, size limit, metrics and access log; then the key check; then the lean path for
    well-formed single predictions. They answer their own errors, so a request on the lean path
    crosses no framework layer at all, and everything else reaches FastAPI as before.
    """

    def __init__(self, *, outer: Callable[[ASGIApp], ASGIApp], **kwargs: Any) -> None:
        self._outer = outer
        super().__init__(**kwargs)

    def build_middleware_stack(self) -> ASGIApp:
        return self._outer(super().build_middleware_stack())


def create_app(settings: Settings | None = None, *, fast_path: bool = True) -> FastAPI:
    settings = settings or get_settings()
    metrics = Metrics()
    api_keys = parse_keys(settings.api_keys, settings.api_keys_file)
    admin_keys = parse_keys(settings.admin_keys, settings.admin_keys_file)
    access_log = AccessLog() if settings.access_log else None
    cds_tokens = cds_hooks.ehr_tokens(settings)
    shapes = errors.ErrorShapes(
        {root: protocol.ERROR_SHAPE for protocol in PROTOCOLS for root in protocol.ROOTS}
    )

    def outer(framework: ASGIApp) -> ASGIApp:
        inner = PredictFastPath(framework) if fast_path else framework
        inner = RequireAPIKey(
            inner,
            keys=api_keys,
            admin_keys=admin_keys,
            shapes=shapes,
            jwt_prefix=cds_hooks.PREFIX + "/" if cds_tokens else None,
        )
        inner = cds_hooks.with_cors(inner, settings.cds_cors_origins)
        return RequestContext(
            inner,
            metrics=metrics,
            max_body_bytes=settings.max_body_bytes,
            access_log=access_log,
            shapes=shapes,
        )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        audit = open_audit(settings, background_checkpoints=True)
        registry = registry_for(settings)
        wanted = audit.active_version() or settings.model_version
        start = time.perf_counter()
        try:
            predictor = Predictor(registry.open(wanted))
        except ArtifactError as e:  # activated elsewhere but not present in this replica
            log.error("cannot serve the activated version %s (%s); serving the default", wanted, e)
            predictor = Predictor(registry.open(settings.model_version))
        metrics.model_load.set(time.perf_counter() - start)
        writer = AuditWriter(audit)
        loop_writer = checkpointer = None
        if audit.sqlite_file:
            loop_writer = LoopWriter(audit, writer, synchronous=settings.sqlite_synchronous)
            checkpointer = Checkpointer(audit, CHECKPOINT_SECONDS)
        service = Service(
            predictor=predictor,
            audit=audit,
            writer=writer,
            metrics=metrics,
            loop_writer=loop_writer,
            audit_wait_seconds=settings.audit_wait_seconds,
        )
        app.state.service = service
        log.info(
            "serving model version %s (default %s); audit log at %s",
            predictor.version.version,
            predictor.version.default_model,
            audit.engine.url.render_as_string(hide_password=True),
        )
        # What is loaded now lives as long as the process. Freezing it keeps it out of the
        # collector's full passes, which otherwise walk every object of numba, scikit-learn
        # and pandas and stall all requests for ~150 ms every few seconds under load.
        gc.collect()
        gc.freeze()
        follower = asyncio.create_task(follow_activations(service, registry, settings))
        monitor = None
        if settings.monitoring_interval_seconds > 0:
            monitor = asyncio.create_task(
                refresh_monitoring(
                    service, metrics.monitoring, settings.monitoring_interval_seconds
                )
            )
        try:
            yield
        finally:
            follower.cancel()
            if monitor is not None:
                monitor.cancel()
            writer.close()  # commit whatever is still queued before the engine goes
            if loop_writer is not None:
                loop_writer.close()
            if checkpointer is not None:
                checkpointer.close()
            audit.engine.dispose()

    app = SepsisAPI(
        title="Sepsis Risk API",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        outer=outer,
    )
    app.state.settings = settings
    app.state.metrics = metrics
    app.state.api_keys = api_keys
    app.state.cds_tokens = cds_tokens
    app.state.fhir_mapping = load_mapping(settings.fhir_mapping)  # a bad file: no start
    errors.install(app, shapes)
    app.openapi = _openapi_with_our_errors(app, shapes)  # type: ignore[method-assign]  # FastAPI documents replacing it
    for module in (
        meta,
        predict,
        predictions,
        outcomes,
        drift,
        performance,
        feedback,
        models,
        artifacts,
        compat,
        admin,
        *PROTOCOLS,
        cds_hooks,  # the /v1 error shape
    ):
        app.include_router(module.router)
    return app
