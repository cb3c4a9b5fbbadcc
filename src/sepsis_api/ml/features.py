"""Preprocessing steps shared by every candidate pipeline.

Zeros in the features that cannot physiologically be zero mean "not measured"; they become NaN
and are imputed inside the pipeline, so no caller can skip the step.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.impute import SimpleImputer
from sklearn.preprocessing import StandardScaler

from sepsis_api.schema import ZERO_MISSING_INDEX


class ZeroAsMissing(TransformerMixin, BaseEstimator):  # type: ignore[misc]  # sklearn: no types
    """Replace 0 by NaN in the given columns (indices into the schema's feature order)."""

    def __init__(self, columns: list[int] | None = None) -> None:
        self.columns = columns

    def fit(self, X: np.ndarray, y: np.ndarray | None = None) -> ZeroAsMissing:
        self.n_features_in_ = np.asarray(X).shape[1]
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        X = np.array(X, dtype=np.float64, copy=True)
        cols = list(ZERO_MISSING_INDEX if self.columns is None else self.columns)
        sub = X[:, cols]
        sub[sub == 0] = np.nan
        X[:, cols] = sub
        return X


def preprocessing_steps(*, scale: bool) -> list[tuple[str, object]]:
    """zeros -> missing -> median imputation [-> standardisation]."""
    steps: list[tuple[str, object]] = [
        ("zero_as_missing", ZeroAsMissing(list(ZERO_MISSING_INDEX))),
        ("impute", SimpleImputer(strategy="median")),
    ]
    if scale:
        steps.append(("scale", StandardScaler()))
    return steps
