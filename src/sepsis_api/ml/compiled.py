"""The serving form of a fitted pipeline: plain arrays plus a compiled scoring kernel.

A fitted scikit-learn pipeline (zeros -> missing -> impute [-> scale] -> LR / RF / GB
[-> sigmoid calibration]) is flattened (ml/flatten.py) into numeric arrays that are stored with
``np.savez`` and loaded with ``allow_pickle=False``: loading never executes code. Scoring is
numpy for the linear model and a numba kernel for tree ensembles (no Python loop over trees).
Its probabilities match scikit-learn's within 1e-14 on every row of the data set and on 5,000
random patients (asserted by tests/ml/test_compiled.py).

Tree parity detail: scikit-learn compares float32 inputs with float64 thresholds. For a
float32 ``x``, ``x <= t`` equals ``x <= t32`` where ``t32`` is the largest float32 not above
``t``, so thresholds are stored that way and the kernel runs in float32.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from functools import cached_property
from pathlib import Path

import numba
import numpy as np
import numpy.typing as npt

FORMAT = "sepsis-api-compiled/1"
_PARALLEL_MIN_ROWS = 2048  # below this, thread start-up costs more than it saves


_LANES = 16  # rows walked through a tree together: independent loads overlap in the CPU


@numba.njit(cache=True, nogil=True)
def _forest_rows(
    X: npt.NDArray[np.float32],
    feature: npt.NDArray[np.int32],
    threshold: npt.NDArray[np.float32],
    left: npt.NDArray[np.int32],
    right: npt.NDArray[np.int32],
    value: npt.NDArray[np.float64],
    roots: npt.NDArray[np.int32],
    depth: npt.NDArray[np.int32],
    bias: float,
    divisor: float,
    out: npt.NDArray[np.float64],
    lo: int,
    hi: int,
) -> None:
    """Sum the trees' leaf values for rows lo..hi; leaves point to themselves (fixed depth)."""
    nodes = np.empty(_LANES, np.int32)
    acc = np.empty(_LANES, np.float64)
    for start in range(lo, hi, _LANES):
        m = min(start + _LANES, hi) - start
        acc[:m] = bias
        for t in range(roots.shape[0]):
            nodes[:m] = roots[t]
            for _ in range(depth[t]):
                for r in range(m):
                    n = nodes[r]
                    nodes[r] = left[n] if X[start + r, feature[n]] <= threshold[n] else right[n]
            for r in range(m):
                acc[r] += value[nodes[r]]
        for r in range(m):
            out[start + r] = acc[r] / divisor


@numba.njit(cache=True, nogil=True, parallel=True)
def _forest_parallel(
    X: npt.NDArray[np.float32],
    feature: npt.NDArray[np.int32],
    threshold: npt.NDArray[np.float32],
    left: npt.NDArray[np.int32],
    right: npt.NDArray[np.int32],
    value: npt.NDArray[np.float64],
    roots: npt.NDArray[np.int32],
    depth: npt.NDArray[np.int32],
    bias: float,
    divisor: float,
    out: npt.NDArray[np.float64],
) -> None:
    n = X.shape[0]
    step = 1024
    for b in numba.prange((n + step - 1) // step):
        lo = b * step
        _forest_rows(
            X,
            feature,
            threshold,
            left,
            right,
            value,
            roots,
            depth,
            bias,
            divisor,
            out,
            lo,
            min(lo + step, n),
        )


@numba.njit(cache=True, nogil=True)
def _prepare(
    X: npt.NDArray[np.float64],
    missing_if_zero: npt.NDArray[np.bool_],
    medians: npt.NDArray[np.float64],
    center: npt.NDArray[np.float64],
    scale: npt.NDArray[np.float64],
    out: npt.NDArray[np.float64] | npt.NDArray[np.float32],
) -> None:
    """zeros -> missing -> median -> (x - center) / scale, into ``out`` (float64 or float32)."""
    for i in range(X.shape[0]):
        for j in range(X.shape[1]):
            v = X[i, j]
            if missing_if_zero[j] and v == 0.0:
                v = np.nan
            if np.isnan(v):
                v = medians[j]
            out[i, j] = (v - center[j]) / scale[j]


@numba.njit(cache=True, nogil=True)
def _linear(
    Z: npt.NDArray[np.float64],
    coef: npt.NDArray[np.float64],
    bias: float,
    out: npt.NDArray[np.float64],
) -> None:
    for i in range(Z.shape[0]):
        acc = 0.0
        for j in range(Z.shape[1]):
            acc += Z[i, j] * coef[j]
        out[i] = acc + bias


@numba.njit(cache=True, nogil=True)
def _to_probability(raw: npt.NDArray[np.float64], mode: int, a: float, b: float) -> None:
    """In place. mode 0: raw is a probability; 1: raw is log-odds; 2: Platt calibration."""
    for i in range(raw.shape[0]):
        if mode == 2:
            raw[i] = 1.0 / (1.0 + np.exp(a * raw[i] + b))
        elif mode == 1:
            raw[i] = 1.0 / (1.0 + np.exp(-raw[i]))


@dataclass(frozen=True)
class CompiledModel:
    kind: str  # "linear" or "trees"
    response: str  # "decision" (raw output is log-odds) or "proba" (raw output is P(positive))
    calibration: str  # "none" or "sigmoid"
    zero_missing: np.ndarray  # int64 column indices where 0 means missing
    medians: np.ndarray  # float64 imputation values, one per feature
    center: np.ndarray  # float64 standardisation (zeros / ones when the pipeline has no scaler)
    scale: np.ndarray
    coef: np.ndarray  # linear: float64 coefficients; trees: empty
    bias: float  # linear: intercept; GB: initial log-odds; RF: 0
    divisor: float  # RF: number of trees (averaging); otherwise 1
    calib_a: float  # sigmoid calibration p = 1 / (1 + exp(a * raw + b))
    calib_b: float
    feature: np.ndarray  # int32 per node (0 at leaves, which loop to themselves)
    threshold: np.ndarray  # float32 per node
    left: np.ndarray  # int32 per node
    right: np.ndarray  # int32 per node
    value: np.ndarray  # float64 per node (leaf contributions, already weighted)
    roots: np.ndarray  # int32 index of each tree's root
    depth: np.ndarray  # int32 depth of each tree

    # -- scoring ---------------------------------------------------------------------------
    @cached_property
    def _missing_if_zero(self) -> np.ndarray:
        mask = np.zeros(len(self.medians), dtype=np.bool_)
        mask[self.zero_missing] = True
        return mask

    @cached_property
    def _mode(self) -> int:
        if self.calibration == "sigmoid":
            return 2
        return 1 if self.response == "decision" else 0

    def prepare(self, X: np.ndarray, dtype: type = np.float64) -> np.ndarray:
        """zeros -> missing -> impute -> scale, exactly as the fitted pipeline does."""
        X = np.asarray(X, dtype=np.float64)
        if X.ndim == 1:
            X = X.reshape(1, -1)
        out: np.ndarray = np.empty(X.shape, dtype=dtype)
        _prepare(X, self._missing_if_zero, self.medians, self.center, self.scale, out)
        return out

    def raw(self, X: np.ndarray) -> np.ndarray:
        """The model's output before calibration (log-odds or probability, see ``response``)."""
        if self.kind == "linear":
            Z = self.prepare(X)
            out = np.empty(len(Z), dtype=np.float64)
            _linear(Z, self.coef, self.bias, out)
            return out
        Z32 = self.prepare(X, np.float32)  # scikit-learn's trees compare in float32
        out = np.empty(len(Z32), dtype=np.float64)
        args = (
            Z32,
            self.feature,
            self.threshold,
            self.left,
            self.right,
            self.value,
            self.roots,
            self.depth,
            self.bias,
            self.divisor,
            out,
        )
        if len(Z32) >= _PARALLEL_MIN_ROWS:
            _forest_parallel(*args)
        else:
            _forest_rows(*args, 0, len(Z32))
        return out

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Calibrated probability of the positive class, shape (n,)."""
        raw = self.raw(X)
        _to_probability(raw, self._mode, self.calib_a, self.calib_b)
        return raw

    def warm_up(self) -> None:
        """Compile (or load from numba's cache) both kernels before the first real call."""
        for n in (1, _PARALLEL_MIN_ROWS):
            self.predict_proba(np.tile(self.medians, (n, 1)))

    # -- storage -----------------------------------------------------------------------------
    def save(self, path: Path) -> None:
        arrays = {f.name: np.asarray(getattr(self, f.name)) for f in fields(self)}
        arrays["format"] = np.asarray(FORMAT)
        with open(path, "wb") as fh:
            # numpy's stubs match a ** mapping against the keyword allow_pickle: bool too; the
            # keys here are field names and "format", never allow_pickle
            np.savez(fh, **arrays)  # type: ignore[arg-type]  # **arrays matched to allow_pickle

    @classmethod
    def load(cls, path: Path) -> CompiledModel:
        with np.load(path, allow_pickle=False) as data:
            if "format" not in data or str(data["format"]) != FORMAT:
                raise ValueError(f"{path}: not a {FORMAT} file")
            values = {}
            for f in fields(cls):
                a = data[f.name]
                values[f.name] = a.item() if a.ndim == 0 else a
        values["kind"], values["response"], values["calibration"] = (
            str(values["kind"]),
            str(values["response"]),
            str(values["calibration"]),
        )
        return cls(**values)


# -- conversion from scikit-learn ------------------------------------------------------------
