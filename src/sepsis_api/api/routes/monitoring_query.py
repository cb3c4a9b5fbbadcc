"""The query parameters the monitoring routes share (performance, drift, feedback): which
estimates, by creation time, of which model version and model."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import Query

from sepsis_api.api.routes.predictions import DateTimeQuery, TextQuery

Since = Annotated[
    datetime | None,
    DateTimeQuery,
    Query(description="Estimates created at or after this RFC 3339 date-time."),
]
Until = Annotated[
    datetime | None,
    DateTimeQuery,
    Query(description="Estimates created before this RFC 3339 date-time (default: now)."),
]
ModelVersion = Annotated[
    str | None,
    TextQuery,
    Query(max_length=64, description="Model version (default: the served one)."),
]
ModelName = Annotated[
    str | None,
    TextQuery,
    Query(max_length=64, description="Model name (default: the version's default model)."),
]
