"""Batch scoring engines over ``ml.scoring.score``: files in, files out (``offline``)."""

from sepsis_api.batch.offline import OUTPUT_COLUMNS, OfflineResult, rejected_path_for, score_file

__all__ = ["OUTPUT_COLUMNS", "OfflineResult", "rejected_path_for", "score_file"]
