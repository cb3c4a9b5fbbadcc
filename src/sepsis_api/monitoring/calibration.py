"""Logistic recalibration: how a model's log-odds relate to what was observed.

Two fits on the model's linear predictor ``lp = logit(p)`` (Cox 1958; Van Calster et al.,
J Clin Epidemiol 2016;74:167):

- calibration-in-the-large: ``logit P(y) = a + lp`` (slope fixed at 1). ``a`` is the
  *calibration intercept*: 0 when the mean risk is right, below 0 when risks are too high.
- logistic recalibration: ``logit P(y) = a + b * lp``. ``b`` is the *calibration slope*:
  1 when the spread of risks is right, below 1 when they are too extreme.

Both are maximum-likelihood fits by Newton-Raphson (numpy only). Intervals are profile
likelihood: the values whose likelihood-ratio statistic against the fit stays below the
chi-square(1) quantile (z squared). For the slope the intercept is re-fitted at every value
tried. The profile of a concave log-likelihood is concave, so Newton's method on it finds each
bound from the Wald guess in a few steps. The same fits make a recalibrated model version
(``sepsis-api recalibrate``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from sepsis_api.monitoring.stats import Interval, z_for

_EPS = 1e-12  # probabilities are clipped to [eps, 1 - eps] before taking log-odds
# Newton steps stop below this change in a parameter: convergence is quadratic by then, so the
# value after the last step is good to ~1e-14 and one more pass would only confirm it.
_TOL = 1e-7
_ITERATIONS = 60  # bound on every Newton loop; a fit that has not converged is not reported
_BIG = 50.0  # |parameter| beyond which the fit is treated as diverging (separation)


class NotEstimable(ArithmeticError):
    """The fit has no finite maximum (one class only, perfect separation, constant risk)."""


def logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=np.float64), _EPS, 1.0 - _EPS)
    out: np.ndarray = np.log(p) - np.log1p(-p)
    return out


def _sigmoid(eta: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        out: np.ndarray = 1.0 / (1.0 + np.exp(-eta))
    return out


class _Moments(NamedTuple):
    """What one pass over the data gives at (a, b): the log-likelihood, its score and its
    information matrix."""

    loglik: float
    u_a: float
    u_b: float
    i_aa: float
    i_ab: float
    i_bb: float


class _Data:
    """log-odds and outcomes with the sums that do not depend on the parameters, and scratch
    buffers: a pass allocates nothing (a fit makes tens of passes over up to millions of rows)."""

    def __init__(self, p: np.ndarray, y: np.ndarray) -> None:
        self.lp = logit(p)
        yf = np.asarray(y, dtype=np.float64)
        if len(yf) != len(self.lp):
            raise ValueError(f"{len(self.lp)} probabilities but {len(yf)} outcomes")
        self.n = float(len(yf))
        self.events = float(yf.sum())
        if self.events == 0 or self.events == self.n:
            raise NotEstimable("need both outcomes")
        self.y_lp = float(yf @ self.lp)  # the data term of the log-likelihood is linear
        self.sum_lp = float(self.lp.sum())
        # rows 1, lp, lp^2: one matrix-vector product gives the three sums a pass needs
        self.powers = np.stack([np.ones_like(self.lp), self.lp, self.lp * self.lp])
        self._mu = np.empty_like(self.lp)
        self._w = np.empty_like(self.lp)

    def moments(self, a: float, b: float, *, loglik: bool = True) -> _Moments:
        """One pass; without ``loglik`` its log (the costliest step after exp) is skipped and
        the log-likelihood is NaN."""
        mu, w = self._mu, self._w
        np.multiply(self.lp, -b, out=mu)
        mu -= a
        with np.errstate(over="ignore"):
            np.exp(mu, out=mu)
        mu += 1.0  # 1 + e^-eta
        # log(1 + e^eta) = eta + log(1 + e^-eta), summed: the likelihood's other term
        log_norm = (
            a * self.n + b * self.sum_lp + float(np.log(mu, out=w).sum()) if loglik else math.nan
        )
        np.reciprocal(mu, out=mu)  # mu = P(y) at (a, b)
        sum_mu, sum_mu_lp = self.powers[:2] @ mu
        np.multiply(mu, mu, out=w)
        np.subtract(mu, w, out=w)  # w = mu (1 - mu)
        i_aa, i_ab, i_bb = self.powers @ w
        return _Moments(
            loglik=a * self.events + b * self.y_lp - log_norm,
            u_a=self.events - float(sum_mu),
            u_b=self.y_lp - float(sum_mu_lp),
            i_aa=float(i_aa),
            i_ab=float(i_ab),
            i_bb=float(i_bb),
        )

    def intercept_given(self, b: float, a: float = 0.0) -> tuple[float, _Moments]:
        """The best intercept with the slope fixed at ``b`` (Newton from ``a``), with the
        moments of the last pass (at most a step of 1e-10 away)."""
        step = math.inf
        for _ in range(_ITERATIONS):
            # the log-likelihood is wanted at the end only: from the pass whose step is tiny
            m = self.moments(a, b, loglik=abs(step) < 1e-3)
            if not m.i_aa > 0.0:
                raise NotEstimable("no information about the intercept")
            step = m.u_a / m.i_aa
            a += step
            if abs(a) > _BIG:
                raise NotEstimable("the intercept diverges")
            if abs(step) < _TOL and math.isfinite(m.loglik):
                return a, m
        raise NotEstimable("the intercept did not converge")


@dataclass(frozen=True)
class Recalibration:
    """A fitted map ``p' = sigmoid(intercept + slope * logit(p))`` with profile intervals."""

    method: str  # "intercept" (slope fixed at 1) or "logistic"
    intercept: Interval
    slope: Interval  # for "intercept": exactly 1 with no interval

    def apply(self, p: np.ndarray) -> np.ndarray:
        a, b = self.intercept.estimate, self.slope.estimate
        assert a is not None and b is not None  # a Recalibration is always a finite fit
        return np.asarray(_sigmoid(a + b * logit(p)))


def _root(g: Callable[[float], tuple[float, float]], x0: float, top: float, side: float) -> float:
    """Newton's method for the root of a convex ``g`` (value, derivative) on ``side`` (+1
    right, -1 left) of its minimum at ``top``, from ``x0`` on that side: a guess short of
    the root steps past it, and from there every step comes back towards it without
    crossing (a convex function lies above its tangents)."""
    x = x0
    for _ in range(_ITERATIONS):
        value, slope = g(x)
        if slope == 0.0 or not math.isfinite(value):
            raise NotEstimable("flat profile")
        step = value / slope
        x -= step
        if (x - top) * side <= 0 or abs(x) > _BIG:
            raise NotEstimable("the bound diverges")
        if abs(step) < _TOL:
            return x
    raise NotEstimable("the bound did not converge")


def fit_intercept(data: _Data, confidence: float) -> Interval:
    """Calibration-in-the-large with its profile-likelihood interval."""
    a, m = data.intercept_given(1.0)
    top, z = m.loglik, z_for(confidence)

    def g(x: float) -> tuple[float, float]:  # > 0 outside the interval; its derivative
        mx = data.moments(x, 1.0)
        return top - mx.loglik - z * z / 2.0, -mx.u_a

    wald = z / math.sqrt(m.i_aa)
    return Interval(a, _root(g, a - wald, a, -1.0), _root(g, a + wald, a, 1.0))


def _joint_fit(data: _Data) -> tuple[float, float]:
    """(a, b) maximising the likelihood of logit P(y) = a + b * lp: Newton-Raphson from the
    identity map, one pass over the data per step."""
    a, b = 0.0, 1.0
    for _ in range(_ITERATIONS):
        m = data.moments(a, b, loglik=False)
        det = m.i_aa * m.i_bb - m.i_ab * m.i_ab
        if not det > 1e-12 * m.i_aa * m.i_bb:
            raise NotEstimable("no information about the slope (constant risk)")
        da = (m.i_bb * m.u_a - m.i_ab * m.u_b) / det
        db = (m.i_aa * m.u_b - m.i_ab * m.u_a) / det
        a, b = a + da, b + db
        if abs(a) > _BIG or abs(b) > _BIG:
            raise NotEstimable("the fit diverges (separation)")
        if abs(da) < _TOL and abs(db) < _TOL:
            return a, b
    raise NotEstimable("the fit did not converge")


def _slope_bound(data: _Data, a: float, b: float, m: _Moments, z: float, side: float) -> float:
    """One end of the slope's profile-likelihood interval by Venzon & Moolgavkar's method
    (Appl Stat 1988;37:87): Newton on the pair of equations loglik(a, b) = top - z^2/2 and
    dloglik/da = 0, so the intercept is re-fitted along the way, one pass a step. Starts from
    the Wald bound with the intercept that goes with it."""
    target = m.loglik - z * z / 2.0
    reduced = m.i_bb - m.i_ab * m.i_ab / m.i_aa  # information about b with a re-fitted
    db = side * z / math.sqrt(reduced)
    x_a, x_b = a - m.i_ab / m.i_aa * db, b + db
    for _ in range(_ITERATIONS):
        mx = data.moments(x_a, x_b)
        f1, f2 = mx.loglik - target, mx.u_a
        # Jacobian [[u_a, u_b], [-i_aa, -i_ab]]
        det = -mx.u_a * mx.i_ab + mx.u_b * mx.i_aa
        if det == 0.0 or not math.isfinite(det):
            raise NotEstimable("flat profile")
        step_a = -(-mx.i_ab * f1 - mx.u_b * f2) / det
        step_b = -(mx.i_aa * f1 + mx.u_a * f2) / det
        x_a, x_b = x_a + step_a, x_b + step_b
        if (x_b - b) * side <= 0 or abs(x_b) > _BIG or abs(x_a) > _BIG:
            raise NotEstimable("the bound diverges")
        if abs(step_a) < _TOL and abs(step_b) < _TOL:
            return x_b
    raise NotEstimable("the bound did not converge")


def fit_slope(data: _Data, confidence: float) -> tuple[Interval, float]:
    """The calibration slope with its profile-likelihood interval, and the intercept fitted
    with it."""
    a, b = _joint_fit(data)
    m = data.moments(a, b)
    z = z_for(confidence)
    low, high = _slope_bound(data, a, b, m, z, -1.0), _slope_bound(data, a, b, m, z, 1.0)
    return Interval(b, low, high), a


def recalibration(
    p: np.ndarray, y: np.ndarray, method: str = "logistic", confidence: float = 0.95
) -> Recalibration:
    """Fit ``method`` ("intercept" or "logistic") to probabilities ``p`` and outcomes ``y``
    (1 = event). Raises NotEstimable when the likelihood has no finite maximum."""
    data = _Data(p, y)
    if method == "intercept":
        return Recalibration(method, fit_intercept(data, confidence), Interval(1.0, None, None))
    if method == "logistic":
        slope, a = fit_slope(data, confidence)
        # The intercept of the joint fit goes with its slope; the calibration intercept that
        # is reported with an interval is calibration-in-the-large (fit_intercept).
        return Recalibration(method, Interval(a, None, None), slope)
    raise ValueError(f"method must be 'intercept' or 'logistic', got {method!r}")


def calibration_figures(
    p: np.ndarray, y: np.ndarray, confidence: float = 0.95
) -> tuple[Interval, Interval]:
    """(calibration intercept, calibration slope) with profile-likelihood intervals; each
    ``Interval.none()`` when it cannot be estimated."""
    try:
        data = _Data(p, y)
    except NotEstimable:
        return Interval.none(), Interval.none()
    try:
        intercept = fit_intercept(data, confidence)
    except NotEstimable:
        intercept = Interval.none()
    try:
        slope, _ = fit_slope(data, confidence)
    except NotEstimable:
        slope = Interval.none()
    return intercept, slope
