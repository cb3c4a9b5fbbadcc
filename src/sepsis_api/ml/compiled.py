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

Tree ensembles are scored in a bit-vector layout built at load time from the stored node
arrays (see ``_BitForest``; the stored format does not change). A forest whose trees have more
than 64 leaves, or whose layout would be too large, is walked node by node instead.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from functools import cached_property
from pathlib import Path
from typing import Any, NamedTuple

import numba
import numpy as np
import numpy.typing as npt
from numba.cpython.unsafe import numbers as numba_numbers

FORMAT = "sepsis-api-compiled/1"
# A model with a recalibration map (``sepsis-api recalibrate``). A reader that knows only /1
# refuses such a file rather than serve it without its map.
FORMAT_RECALIBRATED = "sepsis-api-compiled/2"
_RECALIBRATION = ("recal_intercept", "recal_slope")
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


# -- bit-vector layout (QuickScorer-style) -------------------------------------------------
#
# Why it is fast: walking a tree is a chain of dependent, data-dependent loads and branches
# (~7 steps per tree, each waiting for the last). Here a tree's exit leaf is found without
# walking it. Number each tree's leaves left to right; a node whose test fails (x > threshold:
# the row goes right) rules out the leaves of its left subtree, and the exit leaf is the
# leftmost leaf no failed node rules out (QuickScorer, Lucchese et al., SIGIR 2015). For one
# feature, the failed nodes are exactly those whose threshold is below x, so the AND of their
# masks depends only on x's rank among that feature's distinct thresholds: it is precomputed,
# for every rank and every tree, into one table row. Scoring a row is then one binary search
# per feature (its rank), an AND of one table row per feature across all trees at once
# (contiguous, SIMD), and per tree a count of trailing zeros to pick the leaf. Blocks of rows
# are summed tree by tree, in the trees' order, so the sums equal scikit-learn's bit for bit.
# The table is small for these models (random forest: 850 rows x 100 trees x 4 bytes).

_MAX_LEAVES = 64  # a tree's leaves must fit one machine word
_TABLE_MAX_BYTES = 16 << 20  # beyond this the layout is not built: walk the trees instead
_BLOCK = 32  # rows scored together: their masks stay in L1, their sums overlap in the CPU
# count of trailing zero bits, for numba kernels only (typed Any: its stub is the intrinsic's)
_trailing_zeros: Any = numba_numbers.trailing_zeros


class _BitForest(NamedTuple):
    features: npt.NDArray[np.int64]  # the features some node tests
    first_row: npt.NDArray[np.int64]  # each one's first row in ``table``
    first_bound: npt.NDArray[np.int64]  # each one's first threshold in ``bounds``
    n_bounds: npt.NDArray[np.int64]  # how many distinct thresholds each one has (>= 1)
    bounds: npt.NDArray[np.float32]  # each feature's distinct thresholds, ascending
    table: npt.NDArray[np.unsignedinteger[Any]]  # (sum of n_bounds + 1, trees) leaf masks
    leaves: npt.NDArray[np.float64]  # (trees, most leaves) leaf values, left to right


def _bit_forest(
    feature: np.ndarray,
    threshold: np.ndarray,
    left: np.ndarray,
    right: np.ndarray,
    value: np.ndarray,
    roots: np.ndarray,
) -> _BitForest | None:
    """Build the layout from the stored node arrays; None when a tree has too many leaves."""
    n_nodes, n_trees = len(feature), len(roots)
    lefts, rights = left.tolist(), right.tolist()
    first = np.zeros(n_nodes, np.int64)  # leaves left of the node (pre-order, left first)
    tree_of = np.full(n_nodes, -1, np.int64)
    leaf_values: list[list[float]] = []
    for t, root in enumerate(roots.tolist()):
        stack, seen, values = [root], 0, []
        while stack:
            n = stack.pop()
            tree_of[n], first[n] = t, seen
            if lefts[n] == n:
                values.append(float(value[n]))
                seen += 1
                if seen > _MAX_LEAVES:
                    return None
            else:
                stack += (rights[n], lefts[n])
        leaf_values.append(values)
    internal = np.nonzero((left != np.arange(n_nodes)) & (tree_of >= 0))[0]
    most = max((len(v) for v in leaf_values), default=0)
    if len(internal) == 0:
        return None
    word = next(w for w in (np.uint8, np.uint16, np.uint32, np.uint64) if most <= np.iinfo(w).bits)
    ones = np.iinfo(word).max
    features = np.unique(feature[internal])
    bounds = [np.unique(threshold[internal][feature[internal] == j]) for j in features]
    n_rows = sum(len(b) + 1 for b in bounds)
    if n_rows * n_trees * np.dtype(word).itemsize > _TABLE_MAX_BYTES:
        return None
    # node n's left subtree holds the leaves first[n] .. first[right[n]] - 1
    lo = first[internal].astype(np.uint64)
    width = (first[right[internal]] - first[internal]).astype(np.uint64)
    kept = ~(((np.uint64(1) << width) - np.uint64(1)) << lo) & np.uint64(ones)
    tables = []
    for j, b in zip(features, bounds, strict=True):
        on_j = feature[internal] == j
        failed = np.full((len(b), n_trees), ones, word)  # masks of the nodes at each rank
        rank = np.searchsorted(b, threshold[internal][on_j])
        np.bitwise_and.at(failed, (rank, tree_of[internal][on_j]), kept[on_j].astype(word))
        # row r: x above exactly r thresholds -> the AND of the masks of ranks below r
        tables += [np.full((1, n_trees), ones, word), np.bitwise_and.accumulate(failed, axis=0)]
    leaves = np.zeros((n_trees, most), np.float64)
    for t, values in enumerate(leaf_values):
        leaves[t, : len(values)] = values
    counts = np.array([len(b) for b in bounds], np.int64)
    return _BitForest(
        features=features.astype(np.int64),
        first_row=np.concatenate([[0], np.cumsum(counts + 1)[:-1]]).astype(np.int64),
        first_bound=np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64),
        n_bounds=counts,
        bounds=np.concatenate(bounds).astype(np.float32),
        table=np.vstack(tables),
        leaves=leaves,
    )


@numba.njit(cache=True, nogil=True)
def _bitvector_rows(
    X: npt.NDArray[np.float32],
    features: npt.NDArray[np.int64],
    first_row: npt.NDArray[np.int64],
    first_bound: npt.NDArray[np.int64],
    n_bounds: npt.NDArray[np.int64],
    bounds: npt.NDArray[np.float32],
    table: npt.NDArray[np.unsignedinteger[Any]],
    leaves: npt.NDArray[np.float64],
    bias: float,
    divisor: float,
    out: npt.NDArray[np.float64],
    lo: int,
    hi: int,
) -> None:
    """Sum the trees' leaf values for rows lo..hi (see _BitForest)."""
    n_trees = table.shape[1]
    n_feat = features.shape[0]
    block = max(min(_BLOCK, hi - lo), 1)  # one patient allocates for one row
    masks = np.empty((block, n_trees), table.dtype)
    rows = np.empty((n_feat, block), np.int64)
    acc = np.empty(block, np.float64)
    for start in range(lo, hi, block):
        m = min(start + block, hi) - start
        for q in range(n_feat):  # rank of x among the feature's thresholds: # of them < x
            j, b0, k = features[q], first_bound[q], n_bounds[q]
            for r in range(m):
                x = X[start + r, j]
                base, n = b0, k
                while n > 1:  # branch-free lower bound: the trip count depends on k only
                    half = n >> 1
                    base = base + half if bounds[base + half] < x else base
                    n -= half
                rank = base - b0 + (bounds[base] < x)
                rows[q, r] = first_row[q] + (k if x != x else rank)  # NaN goes right always
        for r in range(m):
            row = rows[0, r]
            for t in range(n_trees):
                masks[r, t] = table[row, t]
            for q in range(1, n_feat):
                row = rows[q, r]
                for t in range(n_trees):
                    masks[r, t] &= table[row, t]
        acc[:m] = bias
        for t in range(n_trees):
            for r in range(m):
                acc[r] += leaves[t, _trailing_zeros(masks[r, t])]
        for r in range(m):
            out[start + r] = acc[r] / divisor


@numba.njit(cache=True, nogil=True, parallel=True)
def _bitvector_parallel(
    X: npt.NDArray[np.float32],
    features: npt.NDArray[np.int64],
    first_row: npt.NDArray[np.int64],
    first_bound: npt.NDArray[np.int64],
    n_bounds: npt.NDArray[np.int64],
    bounds: npt.NDArray[np.float32],
    table: npt.NDArray[np.unsignedinteger[Any]],
    leaves: npt.NDArray[np.float64],
    bias: float,
    divisor: float,
    out: npt.NDArray[np.float64],
) -> None:
    n = X.shape[0]
    step = 1024
    for b in numba.prange((n + step - 1) // step):
        lo = b * step
        _bitvector_rows(
            X,
            features,
            first_row,
            first_bound,
            n_bounds,
            bounds,
            table,
            leaves,
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


@numba.njit(cache=True, nogil=True)
def _to_recalibrated(raw: npt.NDArray[np.float64], mode: int, a: float, b: float,
                     ra: float, rb: float) -> None:  # fmt: skip
    """In place: the log-odds of ``_to_probability``'s result, then p = sigmoid(ra + rb * z)
    (log-odds taken directly from the raw output where it is one, so no precision is lost
    by a round trip through the probability)."""
    for i in range(raw.shape[0]):
        if mode == 2:
            z = -(a * raw[i] + b)
        elif mode == 1:
            z = raw[i]
        else:
            p = min(max(raw[i], 1e-12), 1.0 - 1e-12)
            z = np.log(p) - np.log1p(-p)
        raw[i] = 1.0 / (1.0 + np.exp(-(ra + rb * z)))


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
    # Recalibration map applied after the model's own calibration, p' = sigmoid(recal_intercept
    # + recal_slope * logit(p)); the identity (0, 1) for every trained model.
    recal_intercept: float = 0.0
    recal_slope: float = 1.0

    @property
    def recalibrated(self) -> bool:
        return (self.recal_intercept, self.recal_slope) != (0.0, 1.0)

    # -- scoring ---------------------------------------------------------------------------
    @cached_property
    def _missing_if_zero(self) -> np.ndarray:
        mask = np.zeros(len(self.medians), dtype=np.bool_)
        mask[self.zero_missing] = True
        return mask

    @cached_property
    def _bit_forest(self) -> _BitForest | None:
        if self.kind != "trees":
            return None
        return _bit_forest(
            self.feature, self.threshold, self.left, self.right, self.value, self.roots
        )

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
        bits = self._bit_forest
        if bits is not None:
            if len(Z32) >= _PARALLEL_MIN_ROWS:
                _bitvector_parallel(Z32, *bits, self.bias, self.divisor, out)
            else:
                _bitvector_rows(Z32, *bits, self.bias, self.divisor, out, 0, len(Z32))
            return out
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
        if self.recalibrated:
            _to_recalibrated(
                raw, self._mode, self.calib_a, self.calib_b, self.recal_intercept, self.recal_slope
            )
        else:
            _to_probability(raw, self._mode, self.calib_a, self.calib_b)
        return raw

    def warm_up(self) -> None:
        """Compile (or load from numba's cache) both kernels before the first real call."""
        for n in (1, _PARALLEL_MIN_ROWS):
            self.predict_proba(np.tile(self.medians, (n, 1)))

    # -- storage -----------------------------------------------------------------------------
    def save(self, path: Path) -> None:
        # Without a recalibration map the file is a /1 file, exactly as before maps existed.
        skip = () if self.recalibrated else _RECALIBRATION
        arrays = {
            f.name: np.asarray(getattr(self, f.name)) for f in fields(self) if f.name not in skip
        }
        arrays["format"] = np.asarray(FORMAT_RECALIBRATED if self.recalibrated else FORMAT)
        with open(path, "wb") as fh:
            # numpy's stubs match a ** mapping against the keyword allow_pickle: bool too; the
            # keys here are field names and "format", never allow_pickle
            np.savez(fh, **arrays)  # type: ignore[arg-type]  # **arrays matched to allow_pickle

    @classmethod
    def load(cls, path: Path) -> CompiledModel:
        with np.load(path, allow_pickle=False) as data:
            kind = str(data["format"]) if "format" in data else None
            if kind not in (FORMAT, FORMAT_RECALIBRATED):
                raise ValueError(f"{path}: not a {FORMAT} or {FORMAT_RECALIBRATED} file")
            values = {}
            for f in fields(cls):
                if kind == FORMAT and f.name in _RECALIBRATION:
                    continue  # /1 files have no map: the identity
                a = data[f.name]
                values[f.name] = a.item() if a.ndim == 0 else a
        values["kind"], values["response"], values["calibration"] = (
            str(values["kind"]),
            str(values["response"]),
            str(values["calibration"]),
        )
        return cls(**values)


# -- conversion from scikit-learn ------------------------------------------------------------
