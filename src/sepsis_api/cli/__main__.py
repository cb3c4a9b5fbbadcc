"""``python -m sepsis_api.cli`` = ``sepsis-api`` (used by ``up``, the tests and benchmarks)."""

from sepsis_api.cli import app

app()
