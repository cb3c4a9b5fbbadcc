"""Score a Spark DataFrame with a model version: ``from sepsis_api.spark import score``.

    scored = score(spark.read.parquet("patients.parquet"), model="random_forest")

The engine lives in ``sepsis_api.batch.spark`` (``DataFrame.mapInArrow`` over the one batch
function); this module is its public name for Spark users. Needs ``sepsis-api[spark]``.
"""

from sepsis_api.batch.bundle import ModelBundle, bundle_for
from sepsis_api.batch.spark import local_session, score

__all__ = ["ModelBundle", "bundle_for", "local_session", "score"]
