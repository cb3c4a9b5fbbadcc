"""The recalibration map inside the serving form: applied after the model's own calibration,
stored only when present (a /2 file), and absent (the identity) from every /1 file."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from sepsis_api.ml.compiled import FORMAT, FORMAT_RECALIBRATED, CompiledModel
from sepsis_api.monitoring.calibration import logit


@pytest.fixture(scope="module")
def rows(shipped) -> np.ndarray:
    rng = np.random.default_rng(2)
    base = shipped.load_compiled(shipped.default_model).medians
    X = np.tile(base, (500, 1))
    X[:, 1] = rng.uniform(60, 200, 500)  # PL
    X[:, 5] = rng.uniform(18, 50, 500)  # M11
    return X


def test_the_map_follows_each_kind_of_models_calibration(shipped, rows) -> None:
    for name in shipped.model_names:  # log-odds output, probability output, Platt-scaled
        plain = shipped.load_compiled(name)
        mapped = dataclasses.replace(plain, recal_intercept=0.4, recal_slope=0.7)
        p = plain.predict_proba(rows)
        want = 1 / (1 + np.exp(-(0.4 + 0.7 * logit(p))))
        np.testing.assert_allclose(mapped.predict_proba(rows), want, rtol=1e-12, atol=1e-15)


def test_files_with_and_without_a_map(shipped, rows, tmp_path) -> None:
    plain = shipped.load_compiled(shipped.default_model)
    assert not plain.recalibrated  # the shipped /1 file: no map
    plain.save(tmp_path / "plain.npz")
    with np.load(tmp_path / "plain.npz") as stored:
        assert str(stored["format"]) == FORMAT and "recal_slope" not in stored
    mapped = dataclasses.replace(plain, recal_intercept=-0.2, recal_slope=1.3)
    mapped.save(tmp_path / "mapped.npz")
    with np.load(tmp_path / "mapped.npz") as stored:
        assert str(stored["format"]) == FORMAT_RECALIBRATED
    loaded = CompiledModel.load(tmp_path / "mapped.npz")
    assert (loaded.recal_intercept, loaded.recal_slope) == (-0.2, 1.3)
    np.testing.assert_array_equal(loaded.predict_proba(rows), mapped.predict_proba(rows))
    np.testing.assert_array_equal(
        CompiledModel.load(tmp_path / "plain.npz").predict_proba(rows), plain.predict_proba(rows)
    )
