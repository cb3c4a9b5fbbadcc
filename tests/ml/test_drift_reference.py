"""The card's drift reference: bins and counts that the training data reproduces."""

from __future__ import annotations

import numpy as np
import pytest

from sepsis_api.ml.data import load_training_data
from sepsis_api.ml.store import ModelVersion
from sepsis_api.schema import FEATURES


@pytest.fixture(params=["shipped", "small_version"])
def version(request: pytest.FixtureRequest) -> ModelVersion:
    v: ModelVersion = request.getfixturevalue(request.param)
    return v


def test_feature_bins_are_the_training_datas(version, train_csv):
    ref = version.card["drift_reference"]
    X = load_training_data(train_csv).X
    assert ref["rows"] == len(X) == version.card["training_data"]["rows"]
    assert list(ref["features"]) == [f.code for f in FEATURES]
    for j, f in enumerate(FEATURES):
        col = X[:, j].copy()
        if f.zero_means_missing:
            col[col == 0] = np.nan
        seen = col[~np.isnan(col)]
        r = ref["features"][f.code]
        edges = np.asarray(r["edges"])
        assert np.all(np.diff(edges) > 0), f.code
        assert set(edges) <= set(seen), f.code  # edges are data values
        counts = np.bincount(np.searchsorted(edges, seen, side="right"), minlength=len(edges) + 1)
        assert counts.tolist() == r["counts"], f.code
        assert min(r["counts"]) > 0, f.code  # no empty reference bin, ties or not
        assert r["missing"] == int(np.isnan(col).sum())
        assert r["missing_fraction"] == pytest.approx(np.isnan(col).mean())
        assert r["mean"] == pytest.approx(seen.mean())
        assert r["valid_range"] == [seen.min(), seen.max()]
    # A continuous feature gets ten bins of about a tenth of the rows each.
    bd2 = ref["features"]["BD2"]
    assert len(bd2["counts"]) == 10 and max(bd2["counts"]) - min(bd2["counts"]) <= 3


def test_risk_bins_are_the_out_of_fold_deciles_with_the_cards_alert_rate(version):
    ref = version.card["drift_reference"]["predicted_risk"]
    assert set(ref) == set(version.model_names)
    for name, r in ref.items():
        assert sum(r["counts"]) == version.card["training_data"]["rows"]
        assert len(r["counts"]) == len(r["edges"]) + 1 == 10
        assert np.all(np.diff(r["edges"]) > 0) and r["edges"][0] > 0 and r["edges"][-1] < 1
        assert max(r["counts"]) - min(r["counts"]) <= 2
        assert r["alert_rate"] == version.model_card(name)["operating_point"]["alert_rate"]
