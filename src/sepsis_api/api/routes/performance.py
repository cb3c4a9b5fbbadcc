"""GET /v1/monitoring/performance: how one model's estimates matched their recorded outcomes.

The rows are read and the figures computed in a worker thread (monitoring/labelled.py,
monitoring/performance.py), never on the event loop, so predictions are not held up.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from sepsis_api.api.errors import ERRORS, APIError, json_response
from sepsis_api.api.routes.monitoring_query import ModelName, ModelVersion, Since, Until
from sepsis_api.api.routes.predictions import read_off_loop
from sepsis_api.api.security import caller_id
from sepsis_api.ml.scoring import Predictor
from sepsis_api.ml.store import ArtifactError, registry_for
from sepsis_api.monitoring import curves, labelled
from sepsis_api.monitoring.performance import report

router = APIRouter(prefix="/v1/monitoring", tags=["monitoring"], dependencies=[Depends(caller_id)])


class Figure(BaseModel):
    estimate: float | None
    ci_low: float | None
    ci_high: float | None


class BandFigures(BaseModel):
    band: Literal["low", "moderate", "high"]
    n: int
    events: int
    event_rate: Figure


class Minimum(BaseModel):
    events: int
    non_events: int


class Metrics(BaseModel):
    """The figures reported both from outcomes and from the card's cross-validation."""

    roc_auc: Figure
    brier: Figure
    calibration_intercept: Figure
    calibration_slope: Figure
    observed_expected_ratio: Figure
    sensitivity: Figure
    specificity: Figure
    ppv: Figure
    npv: Figure
    alert_rate: Figure


class Figures(Metrics):
    n: int = Field(description="Estimates with a recorded outcome (their latest revision).")
    events: int = Field(description="Of them, outcomes Positive.")
    status: Literal["ok", "insufficient_data"]
    reason: str | None = Field(description="Why the data are insufficient, else null.")
    minimum: Minimum
    by_band: list[BandFigures]


class CardFigures(Metrics):
    source: str
    interval: str | None
    operating_point_interval: str | None
    threshold: float | None
    risk_bands: dict[str, float] | None


class Window(Figures):
    start: str
    end: str


class ReliabilityBin(BaseModel):
    n: int
    predicted: float = Field(description="Mean predicted risk in the bin.")
    estimate: float | None = Field(description="Observed event rate in the bin.")
    ci_low: float | None
    ci_high: float | None


class PerformanceReport(Figures):
    model_version: str
    model: str
    since: str | None
    until: str | None
    card: CardFigures | None = Field(description="The model card's cross-validation figures.")
    methods: dict[str, str]
    every: Literal["week", "month"] | None = None
    windows: list[Window] | None = None
    reliability: list[ReliabilityBin] = Field(
        description="Reliability diagram over the whole selection: per decile of predicted "
        "risk, its mean and the observed event rate with its Wilson interval."
    )


def _bad(field: str, value: str, expected: str) -> APIError:
    return APIError(
        422,
        f"{field}: {value!r} {expected.split(';')[0]}",
        [
            {
                "field": field,
                "row": None,
                "value": value,
                "expected": expected,
                "message": f"{field}: unknown value {value!r}",
            }
        ],
    )


def _card(request: Request, version: str | None) -> tuple[str, dict[str, Any]]:
    """The version (default: the served one) and its card; an unknown one is a 422."""
    served: Predictor = request.app.state.service.predictor
    if version is None or version == served.version.version:
        return served.version.version, served.version.card
    try:
        cards = registry_for(request.app.state.settings).cards()
    except ArtifactError as e:
        raise APIError(503, f"the model registry cannot be read: {e}") from None
    if version not in cards:
        raise _bad("model_version", version, f"a version in the registry: {', '.join(cards)}")
    return version, cards[version]


@router.get(
    "/performance",
    response_model=PerformanceReport,
    responses=ERRORS,
    summary="Discrimination, calibration and the operating point against recorded outcomes",
)
async def performance(
    request: Request,
    model_version: ModelVersion = None,
    model: ModelName = None,
    since: Since = None,
    until: Until = None,
    every: Annotated[
        Literal["week", "month"] | None,
        Query(description="Also the figures per calendar week (from Monday) or month, UTC."),
    ] = None,
) -> Response:
    """Each figure is {estimate, ci_low, ci_high} with a 95% interval (`methods` says how
    each is computed), over the latest outcome revision of each estimate of one model.
    `status` is `insufficient_data` below 100 events or 100 non-events (`minimum`): the
    figures are then given where they can be computed, but they are not a verdict. `card`
    holds the model card's cross-validation figures under the same keys."""
    version, card = _card(request, model_version)
    name = model or card["default_model"]
    if name not in card["models"]:
        raise _bad("model", name, f"one of the models of {version}: {', '.join(card['models'])}")
    selection = labelled.Selection(version, name, since, until)
    engine = request.app.state.service.audit.engine

    def compute() -> dict[str, Any]:
        data = labelled.read(engine, selection, times=every is not None)
        out = report(
            data,
            model_card=card["models"][name],
            validation=card.get("validation"),
            every=every,
        )
        out["reliability"] = curves.reliability(data.outcome, data.probability)
        return out

    figures = await read_off_loop(compute)
    return json_response(
        {
            "model_version": version,
            "model": name,
            "since": None if since is None else since.isoformat(),
            "until": None if until is None else until.isoformat(),
            **figures,
        }
    )
