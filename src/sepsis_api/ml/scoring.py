"""THE scoring function and THE model resolver.

``score(served_model, X)`` is the only way anything in the project turns features into
estimates: single predictions, ``model=all``, batches, the offline engine and every protocol
adapter. ``resolve(ref, served)`` is the only way a model reference (``NAME``, ``VERSION``,
``VERSION/NAME``, ``all``) becomes served models, with one error wording; ``open_model`` is
the same over a registry, for code that serves no version (the command line, batch engines).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import numpy.typing as npt

from sepsis_api.ml.compiled import CompiledModel
from sepsis_api.ml.store import ModelVersion, Registry
from sepsis_api.schema import FEATURES, LABELS  # LABELS[positive]: Negative, Positive

_EPS = 1e-12


BANDS = ("low", "moderate", "high")  # in the order of ``RiskBands.index``
_BANDS = np.array(BANDS, dtype=object)  # Python strings: no conversion
_LABELS = np.array(LABELS, dtype=object)


@dataclass(frozen=True)
class RiskBands:
    """low: p < moderate_from; moderate: moderate_from <= p < high_from; high: p >= high_from."""

    moderate_from: float
    high_from: float

    @cached_property
    def _cuts(self) -> np.ndarray:
        return np.array([self.moderate_from, self.high_from])

    def index(self, p: np.ndarray) -> np.ndarray:
        """0 (low), 1 (moderate) or 2 (high) per probability: ``BANDS[index]`` is the band."""
        index = np.empty(np.shape(p), dtype=np.intp)
        index[...] = np.searchsorted(self._cuts, p, side="right")
        return index

    def band(self, p: np.ndarray) -> np.ndarray:
        band: np.ndarray = _BANDS[self.index(p)]
        return band


@dataclass(frozen=True)
class ServedModel:
    name: str
    display_name: str
    version: str
    threshold: float
    bands: RiskBands
    compiled: CompiledModel


@dataclass(frozen=True)
class Contribution:
    code: str
    value: float  # the patient's value as given (NaN = not measured)
    log_odds: float  # change in log-odds of the calibrated risk against the reference value


@dataclass(frozen=True)
class Scores:
    """What ``score`` returns: one entry per row of X, all from ``model``."""

    model: ServedModel
    probability: np.ndarray  # calibrated P(sepsis), shape (n,)
    contributions: list[list[Contribution]] | None = None  # per row, largest first

    @property
    def positive(self) -> np.ndarray:
        return self.probability >= self.model.threshold

    @property
    def label(self) -> np.ndarray:
        return _LABELS[self.positive.view(np.int8)]

    @property
    def band(self) -> np.ndarray:
        return self.model.bands.band(self.probability)


def score(served: ServedModel, X: np.ndarray, *, explain: bool = False) -> Scores:
    """Calibrated probabilities (and, with ``explain``, per-feature reasons) for each row."""
    probability = served.compiled.predict_proba(X)
    contributions = [_explain(served, row) for row in np.asarray(X)] if explain else None
    return Scores(served, probability, contributions)


def _logit(p: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    p = np.clip(p, _EPS, 1 - _EPS)
    return np.log(p / (1 - p))


def _explain(served: ServedModel, x: np.ndarray) -> list[Contribution]:
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


def served_model_of(version: ModelVersion, name: str) -> ServedModel:
    """One model of an opened (hash-verified) version, its kernel compiled and warmed up."""
    card = version.model_card(name)
    bands = card["risk_bands"]
    served = ServedModel(
        name=name,
        display_name=card["display_name"],
        version=version.version,
        threshold=float(card["threshold"]),
        bands=RiskBands(float(bands["moderate_from"]), float(bands["high_from"])),
        compiled=version.load_compiled(name),
    )
    served.compiled.warm_up()
    return served


class Predictor:
    """All models of one version, loaded and compiled once; safe to share between threads."""

    def __init__(self, version: ModelVersion) -> None:
        self.version = version
        self.models = {name: served_model_of(version, name) for name in version.model_names}

    @property
    def default(self) -> ServedModel:
        return self.models[self.version.default_model]


class UnknownModel(LookupError):
    """A model reference that names nothing served here (or ``all`` where one is needed)."""

    def __init__(self, ref: str, choices: list[str], *, all_refused: bool = False) -> None:
        self.ref, self.choices = ref, choices
        reason = "is not available for this call" if all_refused else "is not a served model"
        self.detail = (
            "model=all is not available here; choose one model"
            if all_refused
            else f"unknown model {ref!r}"
        )
        self.expected = f"one of {', '.join(choices)}"
        self.message = f"model: {ref!r} {reason}"
        super().__init__(f"{self.message}; expected {self.expected}")


def resolve(ref: str | None, served: Predictor, *, allow_all: bool = True) -> list[ServedModel]:
    """The models a reference names, against the served version.

    ``None`` is the served version's default model; ``all`` its every model (where
    ``allow_all``); ``NAME`` one of its models; ``VERSION`` its default model and
    ``VERSION/NAME`` one of its models.
    """
    if ref is None:
        return [served.default]
    if ref in served.models:
        return [served.models[ref]]
    if ref == "all" and allow_all:
        return list(served.models.values())
    version, _, name = ref.partition("/")
    if ref == "all" or version != served.version.version:
        # Only a refused reference pays for listing the choices.
        choices = [*served.models, served.version.version, *(["all"] if allow_all else [])]
        raise UnknownModel(ref, choices, all_refused=ref == "all")
    if not name:
        return [served.default]
    if name not in served.models:
        raise UnknownModel(ref, [f"{version}/{n}" for n in served.models])
    return [served.models[name]]


def open_model(
    ref: str | None, registry: Registry, default_version: str | None = None
) -> ServedModel:
    """One model from a registry (the command line and offline engines): the version that
    ``ref`` starts with if it is one, else ``default_version`` (else the registry's), loaded
    and verified, then ``resolve``."""
    version = (ref or "").partition("/")[0]
    if version not in registry.version_dirs():
        version = default_version or registry.default_version()
    return resolve(ref, Predictor(registry.open(version)), allow_all=False)[0]
