"""The serving form reproduces the scikit-learn pipelines it was compiled from."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier
from sklearn.pipeline import Pipeline

from sepsis_api.ml import compiled
from sepsis_api.ml.compiled import CompiledModel
from sepsis_api.ml.data import load_table, load_training_data
from sepsis_api.ml.features import preprocessing_steps
from sepsis_api.ml.flatten import compile_pipeline
from sepsis_api.ml.store import ModelVersion
from sepsis_api.schema import FEATURES, ZERO_MISSING_INDEX


def _all_rows(train_csv, test_csv) -> np.ndarray:
    return np.vstack([load_table(train_csv).X, load_table(test_csv).X])


def _random_rows(n: int, seed: int) -> np.ndarray:
    """Valid patients anywhere in the schema's ranges, with zeros and NaN where allowed."""
    rng = np.random.default_rng(seed)
    X = np.column_stack(
        [
            rng.choice(f.choices, n) if f.choices else rng.uniform(f.minimum, f.maximum, n)
            for f in FEATURES
        ]
    )
    for j in ZERO_MISSING_INDEX:
        X[rng.random(n) < 0.1, j] = 0.0
        X[rng.random(n) < 0.1, j] = np.nan
    return X


@pytest.mark.parametrize("which", ["shipped", "small_version"])
def test_parity_with_scikit_learn_on_every_data_row(which, request, train_csv, test_csv):
    version: ModelVersion = request.getfixturevalue(which)
    X = np.vstack([_all_rows(train_csv, test_csv), _random_rows(5000, seed=1)])
    for name in version.model_names:
        reference = version.load_sklearn(name).predict_proba(X)[:, 1]
        fast = version.load_compiled(name).predict_proba(X)
        gap = np.max(np.abs(fast - reference))
        # measured: at most ~4e-16 (the linear model), the tree ensembles exactly 0
        assert gap <= 1e-14, f"{name}: max |compiled - scikit-learn| = {gap:.3g}"
        # the single-row path (serial kernel) gives the same numbers as the batch path
        one_by_one = np.array([version.load_compiled(name).predict_proba(x)[0] for x in X[:50]])
        np.testing.assert_allclose(one_by_one, fast[:50], rtol=0, atol=1e-12)


def _walking(model: CompiledModel, monkeypatch: pytest.MonkeyPatch) -> CompiledModel:
    """The same model scored by walking its trees (the layout for forests too big for tables)."""
    with monkeypatch.context() as patch:
        patch.setattr(compiled, "_TABLE_MAX_BYTES", 0)
        walking = dataclasses.replace(model)  # a fresh instance: nothing cached
        assert walking._bit_forest is None  # decided (and cached) while the limit is 0
    return walking


@pytest.mark.parametrize("layout", ["bit_vector", "walk"])
def test_tree_parity_on_many_random_patients(layout, shipped, monkeypatch):
    X = _random_rows(60_000, seed=3)
    for name in ("random_forest", "gradient_boosting"):
        model = shipped.load_compiled(name)
        assert model._bit_forest is not None  # the shipped forests fit the fast layout
        if layout == "walk":
            model = _walking(model, monkeypatch)
        reference = shipped.load_sklearn(name).predict_proba(X)[:, 1]
        gap = np.max(np.abs(model.predict_proba(X) - reference))
        # measured: exactly 0 (leaf values summed in scikit-learn's order)
        assert gap <= 1e-14, f"{name} ({layout}): max |compiled - scikit-learn| = {gap:.3g}"


@pytest.mark.parametrize("layout", ["bit_vector", "walk"])
def test_one_row_at_a_time_equals_the_parallel_batch(layout, shipped, monkeypatch):
    n = compiled._PARALLEL_MIN_ROWS + 500  # the batch takes the multi-threaded path
    X = _random_rows(n, seed=4)
    for name in ("random_forest", "gradient_boosting"):
        model = shipped.load_compiled(name)
        if layout == "walk":
            model = _walking(model, monkeypatch)
        batch = model.predict_proba(X)
        one_by_one = np.array([model.predict_proba(x)[0] for x in X])
        assert np.array_equal(one_by_one, batch)
        # and any block of rows (block edges anywhere) gives the same numbers
        for lo, hi in ((0, 31), (1, 33), (5, 1029), (7, 7 + compiled._PARALLEL_MIN_ROWS)):
            assert np.array_equal(model.predict_proba(X[lo:hi]), batch[lo:hi])


@pytest.mark.parametrize(
    ("estimator", "word"),
    [
        (RandomForestClassifier(n_estimators=20, max_leaf_nodes=60, random_state=0), np.uint64),
        (RandomForestClassifier(n_estimators=20, max_leaf_nodes=16, random_state=0), np.uint16),
        (RandomForestClassifier(n_estimators=10, random_state=0), None),  # > 64 leaves: walk
        (GradientBoostingClassifier(n_estimators=30, max_depth=3, random_state=0), np.uint8),
    ],
    ids=["rf-60-leaves", "rf-16-leaves", "rf-deep", "gb-depth-3"],
)
def test_every_tree_size_matches_scikit_learn(estimator, word, train_csv, test_csv):
    table = load_training_data(train_csv)
    pipeline = Pipeline([*preprocessing_steps(scale=False), ("model", estimator)])
    pipeline.fit(table.X, table.y)
    model = compile_pipeline(pipeline)
    bits = model._bit_forest
    assert (None if bits is None else bits.table.dtype.type) is word
    X = np.vstack([_all_rows(train_csv, test_csv), _random_rows(20_000, seed=5)])
    gap = np.max(np.abs(model.predict_proba(X) - pipeline.predict_proba(X)[:, 1]))
    assert gap <= 1e-14, f"max |compiled - scikit-learn| = {gap:.3g}"


def test_zero_and_null_are_the_same_missing_value(shipped):
    for name in shipped.model_names:
        model = shipped.load_compiled(name)
        base = np.array([[2, 120, 70, 30, 100, 32.0, 0.4, 40, 1]], dtype=float)
        for j in ZERO_MISSING_INDEX:
            zero, null = base.copy(), base.copy()
            zero[0, j], null[0, j] = 0.0, np.nan
            assert model.predict_proba(zero)[0] == model.predict_proba(null)[0]
            # and "missing" means the training median, not zero
            median = base.copy()
            median[0, j] = model.medians[j]
            assert model.predict_proba(null)[0] == pytest.approx(model.predict_proba(median)[0])


def test_probabilities_are_probabilities(shipped):
    X = _random_rows(20_000, seed=2)
    for name in shipped.model_names:
        p = shipped.load_compiled(name).predict_proba(X)
        assert p.shape == (len(X),)
        assert np.all((p >= 0) & (p <= 1))


def test_save_load_round_trip_is_exact(small_version, tmp_path, train_csv):
    X = load_table(train_csv).X
    for name in small_version.model_names:
        fitted = small_version.load_sklearn(name)
        compiled = compile_pipeline(fitted)
        compiled.save(tmp_path / f"{name}.npz")
        again = CompiledModel.load(tmp_path / f"{name}.npz")
        assert np.array_equal(again.predict_proba(X), compiled.predict_proba(X))


def test_load_refuses_a_file_that_is_not_a_compiled_model(tmp_path):
    path = tmp_path / "other.npz"
    np.savez(path, something=np.arange(3))
    with pytest.raises(ValueError, match="not a sepsis-api-compiled"):
        CompiledModel.load(path)


def test_load_never_unpickles(tmp_path):
    path = tmp_path / "evil.npz"
    np.savez(
        path, format=np.asarray("sepsis-api-compiled/1"), kind=np.array([object()], dtype=object)
    )
    with pytest.raises(ValueError):
        CompiledModel.load(path)
