"""The HTTP-stack ceiling for benchmarks/bench_http.py: FastAPI + uvicorn and nothing else.

One POST endpoint validates the same body as ``POST /v1/predict`` (the project's own
``Patient`` model) and returns a constant, pre-encoded JSON object shaped like a real reply:
no model, no audit log, no middleware; start-up objects frozen out of full GC passes, as in
the real server. Served with the same uvicorn settings as
``sepsis-api serve --workers 1`` (one process; loop and HTTP parser left on "auto", which
picks uvloop and httptools when installed).

    python benchmarks/baseline_app.py --port 8001
"""

from __future__ import annotations

import argparse
import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import orjson
import uvicorn
from fastapi import FastAPI
from fastapi.responses import Response

from sepsis_api.api.schemas import Patient

_REPLY = orjson.dumps(
    {
        "patient_id": "B1",
        "predictions": [
            {
                "prediction_id": "00000000-0000-7000-8000-000000000000",
                "model": "baseline",
                "model_version": "0",
                "probability": 0.5,
                "label": "Positive",
                "risk_band": "moderate",
                "threshold": 0.5,
                "contributions": None,
            }
        ],
        "contribution_scale": "log-odds",
    }
)


@asynccontextmanager
async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
    # The same start-up step as the real server (api/app.py): objects loaded so far are kept
    # out of the collector's full passes, so collector pauses do not lower the ceiling.
    gc.collect()
    gc.freeze()
    yield


app = FastAPI(title="bench baseline", lifespan=lifespan)


@app.get("/healthz")
async def healthz() -> dict[str, str]:
    """Liveness, for the benchmark's readiness poll."""
    return {"status": "ok"}


@app.post("/v1/predict")
async def predict(patient: Patient) -> Response:  # type: ignore[valid-type]
    """Validate the body as a Patient; reply with a constant JSON object."""
    return Response(_REPLY, media_type="application/json")


def main() -> None:
    """Serve ``app`` the way ``sepsis-api serve`` serves the real API."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8001)
    ap.add_argument("--log-level", default="info")
    args = ap.parse_args()
    # The arguments `sepsis-api serve` gives uvicorn with one worker (cli/serve.py plan_serve).
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        workers=1,
        log_level=args.log_level,
        access_log=False,
        timeout_graceful_shutdown=30,
    )


if __name__ == "__main__":
    main()
