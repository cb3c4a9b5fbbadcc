"""Scoring plus audit: what every predict route does.

Scoring one patient takes microseconds and runs on the event loop; its audit rows are committed
on the loop with an SQLite file (db/loop_writer.py) or by the group-commit writer thread.
A batch is validated and scored chunk by chunk in a worker thread while the writer thread
inserts the chunks before. An estimate is returned only after its rows are committed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Protocol

import numpy as np
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool

from sepsis_api.api.errors import APIError
from sepsis_api.api.metrics import Metrics
from sepsis_api.db.audit import AuditLog
from sepsis_api.db.group_commit import AuditWriter, WriterStopped
from sepsis_api.db.loop_writer import LoopWriter
from sepsis_api.ids import new_id, new_ids
from sepsis_api.ml.scoring import Predictor, ServedModel, UnknownModel, resolve, score
from sepsis_api.ml.store import Registry
from sepsis_api.schema import BY_CODE, FEATURES

log = logging.getLogger("sepsis_api")
BATCH_CHUNK_ROWS = 1_000  # validated, scored and inserted at a time; a batch is pipelined
ON_LOOP_ROWS = 16  # a batch this small is scored and committed on the event loop


@dataclass
class Service:
    predictor: Predictor
    audit: AuditLog
    writer: AuditWriter
    metrics: Metrics
    loop_writer: LoopWriter | None = None  # SQLite file: single predictions commit on the loop
    audit_wait_seconds: float = 5.0  # longest wait for the writer thread, then a 503

    async def switch_to(self, registry: Registry, version: str) -> Predictor:
        """Load and verify ``version`` off the loop, then serve it from the next request on.

        Requests already running keep the models they resolved, so none fails and every reply
        names the version that produced it.
        """
        if version == self.predictor.version.version:
            return self.predictor
        loaded = await run_in_threadpool(lambda: Predictor(registry.open(version)))
        previous, self.predictor = self.predictor.version.version, loaded
        log.info("switched model version %s -> %s", previous, version)
        return loaded

    def resolve(self, ref: str | None, *, allow_all: bool = True) -> list[ServedModel]:
        """The served models ``ref`` names (ml/scoring.resolve); unknown ones are a 422."""
        try:
            return resolve(ref, self.predictor, allow_all=allow_all)
        except UnknownModel as e:
            raise APIError(422, e.detail, [model_error(e)]) from None

    async def commit(self, rows: list[Any]) -> None:
        """Wait until the rows (``audit.insert.params``) are committed; see ``_audited``.
        The loop writer's own commit is not timed, only its hand-over to the thread."""
        with self._audited(len(rows)):
            if self.loop_writer is not None:
                await self.loop_writer.commit(rows, self.audit_wait_seconds)
            else:
                await self._bounded(self.writer.submit(rows))

    async def _bounded(self, done: Future[None]) -> None:
        """Wait for a future of the writer thread at most ``audit_wait_seconds``; shielded, so
        giving up leaves the thread's future alone."""
        await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(done)), self.audit_wait_seconds)

    def _audited(self, n: int) -> _Audited:
        """An unreachable database, a stopped writer thread or no commit within
        ``audit_wait_seconds``: a 503, and the estimates are counted as refused."""
        return _Audited(self, n)

    async def predict_one(
        self,
        x: np.ndarray,
        inputs: dict[str, float | None],
        patient_id: str | None,
        models: list[ServedModel],
        *,
        explain: bool,
        caller: str,
        request_id: str,
        source: str,
    ) -> list[dict[str, Any]]:
        """Score one patient with each model; commit one audit row per model; return rows."""
        rows: list[dict[str, Any]] = []
        for m in models:
            scores = score(m, x, explain=explain)
            contributions = None
            if scores.contributions is not None:
                contributions = [
                    {
                        "feature": c.code,
                        "name": BY_CODE[c.code].name,
                        "value": None if np.isnan(c.value) else c.value,
                        "contribution": c.log_odds,
                    }
                    for c in scores.contributions[0]
                ]
            rows.append(
                {
                    "id": new_id(),
                    "model_name": m.name,
                    "model_version": m.version,
                    "probability": float(scores.probability[0]),
                    "threshold": m.threshold,
                    "label": scores.label[0],
                    "risk_band": scores.band[0],
                    "contributions": contributions,
                }
            )
        each = {key: [r[key] for r in rows] for key in rows[0]}
        await self.commit(
            self.audit.insert.params(
                len(rows),
                each,
                {
                    "created_at": datetime.now(UTC),
                    "request_id": request_id,
                    "caller": caller,
                    "source": source,
                    "patient_id": patient_id,
                    "inputs": inputs,
                },
            )
        )
        for r in rows:
            self.metrics.count(r["model_name"], r["model_version"], [r["label"]], [r["risk_band"]])
        return rows

    async def predict_batch(
        self,
        patients: PatientChunks,
        model: ServedModel,
        *,
        caller: str,
        request_id: str,
        source: str = "batch",
    ) -> dict[str, Any]:
        """Score many patients with one model; all audit rows commit in one transaction.
        ``source`` names the route or protocol in the audit rows.

        A few patients (the protocols' usual one-patient call) are scored on the loop and
        committed like a single prediction: two thread hand-overs would cost more than the
        work. More are pipelined through a worker thread and the writer thread's stream."""
        with self._audited(len(patients)):
            if len(patients) <= ON_LOOP_ROWS:
                rows: list[tuple[Any, ...]] = []
                reply, labels, bands = self._batch_rows(
                    rows.extend, _nothing, patients, model, caller, request_id, source
                )
                await self.commit(rows)
            else:
                stream = self.writer.stream()
                try:
                    reply, labels, bands = await run_in_threadpool(
                        self._batch_rows,
                        stream.put,
                        stream.close,
                        patients,
                        model,
                        caller,
                        request_id,
                        source,
                    )
                except BaseException:
                    stream.abort()
                    raise
                await self._bounded(stream.future)
        self.metrics.count(model.name, model.version, labels, bands)
        self.metrics.batch_size.observe(len(patients))
        return reply

    def _batch_rows(
        self,
        put: Callable[[list[tuple[Any, ...]]], None],
        done: Callable[[], None],
        patients: PatientChunks,
        model: ServedModel,
        caller: str,
        request_id: str,
        source: str,
    ) -> tuple[dict[str, Any], list[str], list[str]]:
        """Validate and score chunk by chunk, handing each chunk's audit rows to ``put``; call
        ``done`` after the last, then build the reply (while the last rows commit)."""
        codes = [f.code for f in FEATURES]
        same = {
            "created_at": datetime.now(UTC),
            "request_id": request_id,
            "caller": caller,
            "source": source,
            "model_name": model.name,
            "model_version": model.version,
            "threshold": model.threshold,
            "contributions": None,
        }
        pred_ids: list[str] = []
        patient_ids: list[str | None] = []
        probs: list[float] = []
        labels: list[str] = []
        bands: list[str] = []
        for X, ids in patients.chunks(BATCH_CHUNK_ROWS):
            scores = score(model, X)  # the model resolved once, for every chunk
            chunk = {
                "id": new_ids(len(ids)),
                "patient_id": ids,
                "probability": scores.probability.tolist(),
                "label": scores.label.tolist(),
                "risk_band": scores.band.tolist(),
                # NaN (not measured) is stored as JSON null: orjson writes NaN as null.
                "inputs": [dict(zip(codes, row, strict=True)) for row in X.tolist()],
            }
            put(self.audit.insert.params(len(ids), chunk, same))
            pred_ids += chunk["id"]
            patient_ids += ids
            probs += chunk["probability"]
            labels += chunk["label"]
            bands += chunk["risk_band"]
        done()
        reply = {
            "model": model.name,
            "model_version": model.version,
            "threshold": model.threshold,
            "count": len(probs),
            "results": [
                {
                    "index": i,
                    "patient_id": pat,
                    "prediction_id": pid,
                    "probability": p,
                    "label": lab,
                    "risk_band": band,
                }
                for i, (pat, pid, p, lab, band) in enumerate(
                    zip(patient_ids, pred_ids, probs, labels, bands, strict=True)
                )
            ],
        }
        return reply, labels, bands


def _nothing() -> None:
    return None


class _Audited:
    """The context of one audit commit (Service._audited); a class, not a generator, because
    it sits on every prediction's path."""

    __slots__ = ("n", "service")

    def __init__(self, service: Service, n: int) -> None:
        self.service, self.n = service, n

    def __enter__(self) -> None:
        return None

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, _tb: TracebackType | None
    ) -> None:
        if exc is None:
            return
        if isinstance(exc, SQLAlchemyError):
            reason, cause = "the audit database is unavailable", f" ({type(exc).__name__})"
        elif isinstance(exc, WriterStopped):
            reason, cause = str(exc), ""
        elif isinstance(exc, TimeoutError):
            wait = self.service.audit_wait_seconds
            reason, cause = f"the audit log did not confirm the commit within {wait:g} s", ""
        else:
            return
        self.service.metrics.audit_failures.inc(self.n)
        raise APIError(
            503,
            f"{reason}, so no estimate was returned; retry later{cause}",
            headers={"Retry-After": "5"},
        ) from None


class PatientChunks(Protocol):
    """The patients of a batch, handed out validated in chunks (see routes/predict.py)."""

    def __len__(self) -> int: ...

    def chunks(self, size: int) -> Iterator[tuple[np.ndarray, list[str | None]]]:
        """(feature matrix, patient ids) per chunk, in order; raises APIError when invalid."""
        ...


class ValidatedPatients:
    """A batch validated as a whole (CSV, the protocol adapters), handed out in chunks."""

    def __init__(self, X: np.ndarray, ids: list[str | None]) -> None:
        self.X, self.ids = X, ids

    def __len__(self) -> int:
        return len(self.ids)

    def chunks(self, size: int) -> Iterator[tuple[np.ndarray, list[str | None]]]:
        for start in range(0, len(self.ids), size):
            yield self.X[start : start + size], self.ids[start : start + size]


def model_error(e: UnknownModel) -> dict[str, Any]:
    """The field error of an unknown model reference (ErrorResponse.errors item)."""
    return {
        "field": "model",
        "row": None,
        "value": e.ref,
        "expected": e.expected,
        "message": e.message,
    }
