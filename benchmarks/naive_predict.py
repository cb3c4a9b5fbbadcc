"""The script a data scientist would write to score a CSV (bench_batch.py's yardstick):
pandas.read_csv, the stored scikit-learn pipeline's predict_proba, to_csv.

    python benchmarks/naive_predict.py IN.csv OUT.csv [MODEL]
"""

from __future__ import annotations

import sys

import pandas as pd

from sepsis_api.ml.store import PACKAGED_ROOT, Registry

version = Registry([PACKAGED_ROOT]).open()
model = version.load_sklearn(sys.argv[3] if len(sys.argv) > 3 else version.default_model)
df = pd.read_csv(sys.argv[1])
df["probability"] = model.predict_proba(df[version.card["features"]].to_numpy())[:, 1]
df[["ID", "probability"]].to_csv(sys.argv[2], index=False)
