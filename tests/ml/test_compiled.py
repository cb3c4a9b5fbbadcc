"""The serving form reproduces the scikit-learn pipelines it was compiled from."""

from __future__ import annotations

import numpy as np
import pytest

from sepsis_api.ml.compiled import CompiledModel
from sepsis_api.ml.data import load_table
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
