"""Scoring with a loaded model version: probabilities, labels, risk bands, contributions."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sepsis_api.ml.compiled import CompiledModel
from sepsis_api.ml.evaluate import RiskBands
from sepsis_api.ml.registry import ArtifactError, ModelVersion
from sepsis_api.schema import FEATURES, LABEL_NEGATIVE, LABEL_POSITIVE

_EPS = 1e-12


@dataclass(frozen=True)
class ServedModel:
    name: str
    display_name: str
    version: str
    threshold: float
    bands: RiskBands
    compiled: CompiledModel


@dataclass(frozen=True)
class Scores:
    model: ServedModel
    probability: np.ndarray  # calibrated P(sepsis), shape (n,)

    @property
    def positive(self) -> np.ndarray:
        return self.probability >= self.model.threshold

    @property
    def label(self) -> np.ndarray:
        return np.where(self.positive, LABEL_POSITIVE, LABEL_NEGATIVE)

    @property
    def band(self) -> np.ndarray:
        return self.model.bands.band(self.probability)


@dataclass(frozen=True)
class Contribution:
    code: str
    value: float  # the patient's value as given (NaN = not measured)
    log_odds: float  # change in log-odds of the calibrated risk against the reference value


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, _EPS, 1 - _EPS)
    return np.log(p / (1 - p))


class Predictor:
    """All models of one version, loaded and compiled once; safe to share between threads."""

    def __init__(self, version: ModelVersion) -> None:
        self.version = version
        self.models: dict[str, ServedModel] = {}
        for name in version.model_names:
            card = version.model_card(name)
            bands = card["risk_bands"]
            self.models[name] = ServedModel(
                name=name,
                display_name=card["display_name"],
                version=version.version,
                threshold=float(card["threshold"]),
                bands=RiskBands(float(bands["moderate_from"]), float(bands["high_from"])),
                compiled=version.load_compiled(name),
            )
        for m in self.models.values():
            m.compiled.warm_up()

    @property
    def default(self) -> ServedModel:
        return self.models[self.version.default_model]

    def get(self, name: str | None = None) -> ServedModel:
        if name is None:
            return self.default
        try:
            return self.models[name]
        except KeyError:
            raise ArtifactError(
                f"unknown model {name!r}; this version has {', '.join(self.models)}"
            ) from None

    def score(self, X: np.ndarray, model: str | None = None) -> Scores:
        served = self.get(model)
        return Scores(served, served.compiled.predict_proba(X))

    def contributions(self, x: np.ndarray, model: str | None = None) -> list[Contribution]:
        return explain_one(self.get(model), x)


def explain_one(served: ServedModel, x: np.ndarray) -> list[Contribution]:
    """Per-feature reasons for one patient, largest first.

    Each feature's contribution is the log-odds of the patient's calibrated risk minus the
    log-odds with that one feature set to "not measured" (which the model imputes with the
    training median). For the logistic regression this is exactly the coefficient times the
    standardised distance from the median; for the tree models it is a one-at-a-time
    attribution. All variants are scored in one call.
    """
    x = np.asarray(x, dtype=np.float64).reshape(1, -1)
    variants = np.repeat(x, len(FEATURES) + 1, axis=0)
    variants[np.arange(1, len(FEATURES) + 1), np.arange(len(FEATURES))] = np.nan
    lo = _logit(served.compiled.predict_proba(variants))
    out = [
        Contribution(f.code, float(x[0, j]), float(lo[0] - lo[j + 1]))
        for j, f in enumerate(FEATURES)
    ]
    return sorted(out, key=lambda c: abs(c.log_odds), reverse=True)
