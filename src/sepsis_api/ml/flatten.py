"""From a fitted scikit-learn pipeline to its serving form (ml/compiled.py's CompiledModel).

Runs when a training run is published, never when serving: the serving side loads the arrays
this writes and imports nothing of scikit-learn.

Tree parity detail: scikit-learn compares float32 inputs with float64 thresholds. For a
float32 ``x``, ``x <= t`` equals ``x <= t32`` where ``t32`` is the largest float32 not above
``t``, so thresholds are stored that way and the kernel runs in float32.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression

from sepsis_api.ml.compiled import CompiledModel


def _floor_float32(t: np.ndarray) -> np.ndarray:
    t32 = t.astype(np.float32)
    above = t32.astype(np.float64) > t
    t32[above] = np.nextafter(t32[above], np.float32(-np.inf))
    return t32


def _flatten_trees(trees: list[Any], leaf_values: list[np.ndarray]) -> dict[str, np.ndarray]:
    feature, threshold, left, right, value, roots, depth = [], [], [], [], [], [], []
    offset = 0
    for tree, leaf in zip(trees, leaf_values, strict=True):
        t = tree.tree_
        is_leaf = t.children_left < 0
        own = np.arange(t.node_count) + offset
        feature.append(np.where(is_leaf, 0, t.feature).astype(np.int32))
        threshold.append(_floor_float32(t.threshold))
        left.append(np.where(is_leaf, own, t.children_left + offset).astype(np.int32))
        right.append(np.where(is_leaf, own, t.children_right + offset).astype(np.int32))
        value.append(np.where(is_leaf, leaf, 0.0))
        roots.append(offset)
        depth.append(t.max_depth)
        offset += t.node_count
    return {
        "feature": np.concatenate(feature),
        "threshold": np.concatenate(threshold),
        "left": np.concatenate(left),
        "right": np.concatenate(right),
        "value": np.concatenate(value),
        "roots": np.asarray(roots, dtype=np.int32),
        "depth": np.asarray(depth, dtype=np.int32),
    }


def compile_pipeline(fitted: object) -> CompiledModel:
    """Flatten a fitted pipeline, optionally wrapped in CalibratedClassifierCV(ensemble=False)."""
    calib_a = calib_b = 0.0
    calibration = "none"
    pipeline: Any = fitted  # a scikit-learn Pipeline (scikit-learn ships no types)
    if isinstance(fitted, CalibratedClassifierCV):
        if len(fitted.calibrated_classifiers_) != 1 or fitted.method != "sigmoid":
            raise ValueError("only CalibratedClassifierCV(method='sigmoid', ensemble=False)")
        cc = fitted.calibrated_classifiers_[0]
        pipeline = cc.estimator
        calib_a, calib_b = float(cc.calibrators[0].a_), float(cc.calibrators[0].b_)
        calibration = "sigmoid"

    steps = dict(pipeline.named_steps)
    n_features = steps["impute"].statistics_.shape[0]
    center, scale = np.zeros(n_features), np.ones(n_features)
    if "scale" in steps:
        center, scale = steps["scale"].mean_.copy(), steps["scale"].scale_.copy()
    clf = pipeline.steps[-1][1]
    empty_i, empty_f = np.empty(0, np.int32), np.empty(0, np.float64)
    trees: dict[str, np.ndarray] = {
        "feature": empty_i,
        "threshold": np.empty(0, np.float32),
        "left": empty_i,
        "right": empty_i,
        "value": empty_f,
        "roots": empty_i,
        "depth": empty_i,
    }
    coef, divisor = empty_f, 1.0
    if isinstance(clf, LogisticRegression):
        kind, response = "linear", "decision"
        coef, bias = clf.coef_[0].copy(), float(clf.intercept_[0])
    elif isinstance(clf, RandomForestClassifier):
        kind, response, bias, divisor = "trees", "proba", 0.0, float(len(clf.estimators_))
        leaves = []
        for est in clf.estimators_:
            v = est.tree_.value[:, 0, :]
            leaves.append(v[:, 1] / v.sum(axis=1))
        trees = _flatten_trees(clf.estimators_, leaves)
    elif isinstance(clf, GradientBoostingClassifier):
        kind, response = "trees", "decision"
        bias = float(clf._raw_predict_init(np.zeros((1, n_features), np.float32))[0, 0])
        ests = list(clf.estimators_[:, 0])
        trees = _flatten_trees(ests, [clf.learning_rate * e.tree_.value[:, 0, 0] for e in ests])
    else:
        raise ValueError(f"cannot compile a {type(clf).__name__}")
    zm = steps["zero_as_missing"]
    return CompiledModel(
        kind=kind,
        response=response,
        calibration=calibration,
        zero_missing=np.asarray(zm.columns, dtype=np.int64),
        medians=steps["impute"].statistics_.astype(np.float64),
        center=center,
        scale=scale,
        coef=coef,
        bias=bias,
        divisor=divisor,
        calib_a=calib_a,
        calib_b=calib_b,
        recal_intercept=0.0,  # a trained model has no recalibration map (ml/recalibrate.py)
        recal_slope=1.0,
        **trees,
    )
