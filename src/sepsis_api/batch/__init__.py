"""Batch scoring over ``ml.scoring.score``: the one batch function over Arrow record batches
(``frames``) and the engine behind ``sepsis-api predict``, files in, files out (``offline``)."""

from sepsis_api.batch.frames import (
    OUTPUT_COLUMNS,
    OUTPUT_SCHEMA,
    REJECTED_SCHEMA,
    BatchResult,
    ModelSource,
    model_source,
    rejected_batch,
    score_batch,
    score_pandas,
    score_rows,
    served_model,
)
from sepsis_api.batch.offline import OfflineResult, rejected_path_for, score_file

__all__ = [
    "OUTPUT_COLUMNS",
    "OUTPUT_SCHEMA",
    "REJECTED_SCHEMA",
    "BatchResult",
    "ModelSource",
    "OfflineResult",
    "model_source",
    "rejected_batch",
    "rejected_path_for",
    "score_batch",
    "score_file",
    "score_pandas",
    "score_rows",
    "served_model",
]
