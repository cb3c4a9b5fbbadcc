"""The audit log's tables (SQLAlchemy 2.0). Schema changes go through Alembic migrations."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, Date, DateTime, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class Prediction(Base):
    """One estimate for one patient by one model: what came in, what went out, who asked."""

    __tablename__ = "predictions"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)  # UUIDv7: sorts by time
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    request_id: Mapped[str] = mapped_column(String(64))
    caller: Mapped[str] = mapped_column(String(64))  # API key id, never the key
    # predict | batch | compat | v2 | mlflow | fhir | cds-hooks
    source: Mapped[str] = mapped_column(String(16))
    patient_id: Mapped[str | None] = mapped_column(String(128), index=True)
    # feature code -> value (null = not measured)
    inputs: Mapped[dict[str, Any]] = mapped_column(JSON)
    model_name: Mapped[str] = mapped_column(String(64))
    model_version: Mapped[str] = mapped_column(String(64))
    probability: Mapped[float] = mapped_column(Float)
    threshold: Mapped[float] = mapped_column(Float)
    label: Mapped[str] = mapped_column(String(16))
    risk_band: Mapped[str] = mapped_column(String(16))
    contributions: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON, nullable=True)
    # The current outcome (the latest revision's in ``outcomes``, NULL: none yet), set by
    # db/outcomes.py with each revision so that performance reads one table; not audited here.
    outcome: Mapped[str | None] = mapped_column(String(16), nullable=True)


# Written with each estimate; ``outcome`` comes later (db/outcomes.py).
AUDITED = tuple(c.key for c in Prediction.__table__.columns if c.key != "outcome")


class ActiveVersion(Base):
    """The model version every replica should serve (one row); see `sepsis-api models activate`."""

    __tablename__ = "active_version"

    id: Mapped[int] = mapped_column(primary_key=True)  # always 1
    version: Mapped[str] = mapped_column(String(64))
    activated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    activated_by: Mapped[str] = mapped_column(String(64))


class Outcome(Base):
    """One revision of a prediction's true outcome. Append-only: a later revision (a higher
    ``revision`` for the same prediction) supersedes the earlier ones, which are kept."""

    __tablename__ = "outcomes"
    __table_args__ = (
        # One revision number per prediction: finds a prediction's revisions, and two writers
        # racing to add the same revision cannot both succeed.
        Index("ix_outcomes_prediction_revision", "prediction_id", "revision", unique=True),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)  # UUIDv7: sorts by time
    prediction_id: Mapped[str] = mapped_column(String(36), ForeignKey("predictions.id"))
    revision: Mapped[int] = mapped_column(Integer)  # 1, 2, ... per prediction
    outcome: Mapped[str] = mapped_column(String(16))  # Positive | Negative
    observed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    source: Mapped[str | None] = mapped_column(String(64), nullable=True)
    note: Mapped[str | None] = mapped_column(Text, nullable=True)
    recorded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    recorded_by: Mapped[str] = mapped_column(String(64))  # API key id, never the key


class CDSFeedback(Base):
    """What a clinician did with a CDS Hooks card: accepted or overridden (with a reason).

    A card's uuid is the id of the estimate it shows, so ``card`` points at the prediction.
    The same outcome of the same card at the same time is one row: a CDS client's retry adds
    nothing."""

    __tablename__ = "cds_feedback"
    __table_args__ = (
        Index("ix_cds_feedback_card_outcome_at", "card", "outcome", "outcome_at", unique=True),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)  # UUIDv7: sorts by time
    card: Mapped[str] = mapped_column(String(36), ForeignKey("predictions.id"))
    service: Mapped[str] = mapped_column(String(64))  # the CDS service id
    outcome: Mapped[str] = mapped_column(String(16))  # accepted | overridden
    outcome_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))  # outcomeTimestamp
    override_system: Mapped[str | None] = mapped_column(String(256), nullable=True)
    override_code: Mapped[str | None] = mapped_column(String(128), nullable=True)
    override_display: Mapped[str | None] = mapped_column(String(256), nullable=True)
    user_comment: Mapped[str | None] = mapped_column(Text, nullable=True)
    accepted_suggestions: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    recorded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    recorded_by: Mapped[str] = mapped_column(String(64))  # the EHR's issuer or the key's id


class DriftDay(Base):
    """The drift counts of one model over one whole UTC day that is over (monitoring/drift.py
    ``day_counts``): written once, by whichever process counts the day first, never changed
    (the audit log is append-only, so a past day's counts stay true)."""

    __tablename__ = "drift_days"

    model_version: Mapped[str] = mapped_column(String(64), primary_key=True)
    model_name: Mapped[str] = mapped_column(String(64), primary_key=True)
    # SHA-256 of the reference bins counted against (the card's edges and range)
    reference: Mapped[str] = mapped_column(String(64), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    counts: Mapped[dict[str, Any]] = mapped_column(JSON)
    computed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class CDSTokenUse(Base):
    """A CDS Hooks JWT seen: its issuer and ``jti``, kept until the token expires, so that a
    token replayed to any worker process or replica sharing this database is refused."""

    __tablename__ = "cds_token_uses"

    issuer: Mapped[str] = mapped_column(String(2048), primary_key=True)
    jti: Mapped[str] = mapped_column(String(256), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
