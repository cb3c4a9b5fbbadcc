"""A small typed client for the Sepsis Risk API: the UI's only way to reach the model and log.

Every call either returns the decoded reply or raises one of two errors the pages know how to
show: ``APIUnreachable`` (nothing answered at the address) or ``APIError`` (the API answered
with an error status; ``errors`` lists the fields at fault, as the API reports them).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, TypedDict, cast

import httpx

Band = Literal["low", "moderate", "high"]


class FeatureInfo(TypedDict):
    code: str
    name: str
    description: str
    unit: str | None
    minimum: float
    maximum: float
    choices: list[int] | None
    zero_means_missing: bool
    integer: bool
    rule: str


class FeaturesInfo(TypedDict):
    features: list[FeatureInfo]
    provenance: str
    disclaimer: str


class ModelSummary(TypedDict):
    name: str
    display_name: str
    version: str
    default: bool
    calibration: str
    threshold: float
    risk_bands: dict[str, float]
    metrics: dict[str, dict[str, float]]
    operating_point: dict[str, dict[str, float]]


class ModelsInfo(TypedDict):
    version: str
    default_model: str
    models: list[ModelSummary]


class ModelDetail(ModelSummary):
    card: dict[str, Any]


class Contribution(TypedDict):
    feature: str
    name: str
    value: float | None
    contribution: float


class Prediction(TypedDict):
    prediction_id: str
    model: str
    model_version: str
    probability: float
    label: str
    risk_band: Band
    threshold: float
    contributions: list[Contribution] | None


class PredictResult(TypedDict):
    patient_id: str | None
    predictions: list[Prediction]
    contribution_scale: str


class CurrentOutcome(TypedDict):
    prediction_id: str
    revision: int
    outcome: Literal["Positive", "Negative"]
    observed_at: str | None
    source: str | None
    note: str | None
    recorded_at: str
    recorded_by: str
    revisions: int


class HistoryRecord(TypedDict):
    prediction_id: str
    created_at: str
    caller: str
    source: str
    request_id: str
    patient_id: str | None
    model: str
    model_version: str
    probability: float
    threshold: float
    label: str
    risk_band: Band
    inputs: dict[str, float | None]
    contributions: list[Contribution] | None
    outcome: CurrentOutcome | None


class HistoryPage(TypedDict):
    items: list[HistoryRecord]
    next_cursor: str | None


class Figure(TypedDict):
    estimate: float | None
    ci_low: float | None
    ci_high: float | None


class BandFigures(TypedDict):
    band: Band
    n: int
    events: int
    event_rate: Figure


class Minimum(TypedDict):
    events: int
    non_events: int


class PerformanceFigures(TypedDict):
    n: int
    events: int
    status: Literal["ok", "insufficient_data"]
    reason: str | None
    minimum: Minimum
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
    by_band: list[BandFigures]


class CardFigures(TypedDict):
    source: str
    interval: str | None
    operating_point_interval: str | None
    threshold: float | None
    risk_bands: dict[str, float] | None
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


class PerformanceWindow(PerformanceFigures):
    start: str
    end: str


class ReliabilityBin(TypedDict):
    n: int
    predicted: float
    estimate: float | None
    ci_low: float | None
    ci_high: float | None


class PerformanceReport(PerformanceFigures):
    model_version: str
    model: str
    since: str | None
    until: str | None
    card: CardFigures | None
    methods: dict[str, str]
    every: Literal["week", "month"] | None
    windows: list[PerformanceWindow] | None
    reliability: list[ReliabilityBin]


class FeatureDrift(TypedDict):
    feature: str
    n: int
    observed: int
    psi: float | None
    status: str  # ok, warn, alert, insufficient_data, no_reference
    missing_fraction: float | None
    reference_missing_fraction: float
    out_of_range_fraction: float | None
    mean: float | None
    reference_mean: float


class PredictedRiskDrift(TypedDict):
    n: int
    psi: float | None
    status: str
    edges: list[float]  # the card's out-of-fold deciles; one more count than edges
    reference_counts: list[int]
    counts: list[int]


class AlertRateDrift(TypedDict):
    n: int
    alerts: int
    estimate: float | None
    ci_low: float | None
    ci_high: float | None
    reference: dict[str, float] | None  # the card's value, low, high
    status: str  # ok, above, below, insufficient_data


class DayAlerts(TypedDict):
    date: str
    n: int
    alerts: int
    alert_rate: float


class DriftReport(TypedDict):
    model: str
    model_version: str
    since: str
    until: str
    n: int
    status: str
    detail: str | None
    thresholds: dict[str, float]
    features: list[FeatureDrift]
    predicted_risk: PredictedRiskDrift
    alert_rate: AlertRateDrift
    alerts_per_day: list[DayAlerts]


class Readiness(TypedDict, total=False):
    status: str
    model_version: str
    reason: str


class FieldError(TypedDict, total=False):
    field: str | None
    row: int | None
    value: Any
    expected: str
    message: str


class APIUnreachable(Exception):
    """Nothing usable answered at ``url`` (refused, timed out, DNS, TLS...)."""

    def __init__(self, url: str, reason: str = "") -> None:
        super().__init__(f"cannot reach the API at {url}" + (f": {reason}" if reason else ""))
        self.url, self.reason = url, reason


class APIError(Exception):
    """The API answered with an error status; ``detail`` and ``errors`` are its own words."""

    def __init__(
        self,
        status: int,
        detail: str,
        errors: list[FieldError] | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(f"{status}: {detail}")
        self.status, self.detail, self.errors = status, detail, errors or []
        self.request_id = request_id

    @property
    def refused_key(self) -> bool:
        """The API rejected (or wanted) the UI's API key."""
        return self.status == 401


class APIClient:
    """``APIClient("http://127.0.0.1:8000", api_key=None)``; one connection pool per client."""

    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        *,
        timeout: float = 15.0,
        batch_timeout: float = 120.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.batch_timeout = batch_timeout
        headers = {"Accept": "application/json", "User-Agent": "sepsis-api-ui"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        self._http = httpx.Client(
            base_url=self.base_url, headers=headers, timeout=timeout, transport=transport
        )

    def close(self) -> None:
        self._http.close()

    # -- plumbing -------------------------------------------------------------------------

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as e:  # connect/read errors, timeouts, bad URLs
            raise APIUnreachable(self.base_url, type(e).__name__) from None
        except httpx.InvalidURL as e:
            raise APIUnreachable(self.base_url, str(e)) from None
        if response.status_code >= 400:
            raise _error_from(response)
        return response

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._send(method, path, **kwargs)
        try:
            return response.json()
        except ValueError:
            raise APIError(
                response.status_code,
                "the API sent a reply that is not JSON; is "
                f"{self.base_url} really the Sepsis Risk API?",
            ) from None

    # -- the API ----------------------------------------------------------------------------

    def readiness(self) -> Readiness:
        """``GET /readyz``: ``status`` is "ready", or "not ready" with a ``reason``."""
        try:
            response = self._http.get("/readyz", timeout=5.0)
        except httpx.TransportError as e:
            raise APIUnreachable(self.base_url, type(e).__name__) from None
        except httpx.InvalidURL as e:
            raise APIUnreachable(self.base_url, str(e)) from None
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict) or "status" not in body:
            raise APIError(
                response.status_code,
                f"{self.base_url}/readyz did not answer like the Sepsis Risk API",
            )
        return cast(Readiness, body)

    def features(self) -> FeaturesInfo:
        """``GET /v1/features``: the input features, provenance and disclaimer."""
        return cast(FeaturesInfo, self._json("GET", "/v1/features"))

    def models(self) -> ModelsInfo:
        """``GET /v1/models``: the served version, its default and every model's summary."""
        return cast(ModelsInfo, self._json("GET", "/v1/models"))

    def model(self, name: str) -> ModelDetail:
        """``GET /v1/models/{name}``: one model's summary plus the version's full card."""
        return cast(ModelDetail, self._json("GET", f"/v1/models/{name}"))

    def model_plot(self, name: str) -> bytes:
        """``GET /v1/model-files/plots/{name}``: a PNG from the served version's report."""
        return self._send(
            "GET", f"/v1/model-files/plots/{name}", headers={"Accept": "image/png"}
        ).content

    def predict(
        self,
        patient: Mapping[str, float | str | None],
        model: str | None = None,
        explain: bool = True,
    ) -> PredictResult:
        """``POST /v1/predict``; ``model`` None = default, a name, or "all"."""
        params: dict[str, str] = {"explain": "true" if explain else "false"}
        if model:
            params["model"] = model
        return cast(
            PredictResult, self._json("POST", "/v1/predict", params=params, json=dict(patient))
        )

    def batch_csv(self, data: bytes, model: str | None = None) -> str:
        """``POST /v1/predict/batch`` with a CSV body; the reply as CSV text."""
        params = {"model": model} if model else {}
        response = self._send(
            "POST",
            "/v1/predict/batch",
            params=params,
            content=data,
            headers={"Content-Type": "text/csv", "Accept": "text/csv"},
            timeout=self.batch_timeout,
        )
        return response.text

    def history(self, params: Mapping[str, str | int | None]) -> HistoryPage:
        """``GET /v1/predictions`` (newest first); None-valued filters are left out."""
        query = {k: v for k, v in params.items() if v not in (None, "")}
        return cast(HistoryPage, self._json("GET", "/v1/predictions", params=query))

    def record(self, prediction_id: str) -> HistoryRecord:
        """``GET /v1/predictions/{id}``: one audit record with inputs and outputs."""
        return cast(HistoryRecord, self._json("GET", f"/v1/predictions/{prediction_id}"))

    def record_outcome(
        self,
        prediction_id: str,
        outcome: Literal["Positive", "Negative"],
        *,
        note: str | None = None,
        source: str | None = None,
    ) -> CurrentOutcome:
        """``POST /v1/predictions/{id}/outcome``: the current outcome afterwards (a new
        revision, or the current one unchanged when it already says the same)."""
        body: dict[str, str] = {"outcome": outcome}
        if note:
            body["note"] = note
        if source:
            body["source"] = source
        return cast(
            CurrentOutcome,
            self._json("POST", f"/v1/predictions/{prediction_id}/outcome", json=body),
        )

    def performance(self, params: Mapping[str, str | None]) -> PerformanceReport:
        """``GET /v1/monitoring/performance`` (model_version, model, since, until, every);
        None-valued parameters are left out."""
        query = {k: v for k, v in params.items() if v not in (None, "")}
        return cast(
            PerformanceReport, self._json("GET", "/v1/monitoring/performance", params=query)
        )

    def drift(self, params: Mapping[str, str | None]) -> DriftReport:
        """``GET /v1/monitoring/drift`` (since, until, model_version, model)."""
        query = {k: v for k, v in params.items() if v not in (None, "")}
        return cast(DriftReport, self._json("GET", "/v1/monitoring/drift", params=query))


def _error_from(response: httpx.Response) -> APIError:
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("detail"), str):
        errors = body.get("errors") if isinstance(body.get("errors"), list) else []
        return APIError(response.status_code, body["detail"], errors, body.get("request_id"))
    text = response.reason_phrase or "error"
    return APIError(response.status_code, f"HTTP {response.status_code} {text}")
