"""Score a Dask DataFrame with a model version: ``from sepsis_api.dask import score``.

    scored = score(dd.read_parquet("patients/*.parquet"), model="random_forest")

The engine lives in ``sepsis_api.batch.dask`` (``map_partitions`` over the one batch function's
pandas wrapper); this module is its public name for Dask users. Needs ``sepsis-api[dask]``.
"""

from sepsis_api.batch.bundle import ModelBundle, bundle_for
from sepsis_api.batch.dask import client_for, score

__all__ = ["ModelBundle", "bundle_for", "client_for", "score"]
