"""Settings: the only place configuration is read (environment prefix ``SEPSIS_API_``)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import AliasChoices, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

SqliteSynchronous = Literal["NORMAL", "FULL"]  # SQLite's PRAGMA synchronous for the audit log


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="SEPSIS_API_", env_file=".env", extra="ignore", populate_by_name=True
    )

    model_dir: Path | None = Field(
        default=None,
        description="Directory of trained model versions (from `sepsis-api train --out`); "
        "searched before the shipped default model.",
    )
    model_version: str | None = Field(
        default=None,
        description="Model version to serve; default: the registry's DEFAULT pointer, else the "
        "newest version.",
    )

    data_dir: Path = Field(
        default=Path(".data"),
        description="Where the default SQLite audit database lives.",
    )
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL of the audit database, e.g. "
        "postgresql+psycopg://user:pass@host/db; default: SQLite file DATA_DIR/audit.db.",
    )
    db_auto_upgrade: bool = Field(
        default=True,
        description="Apply pending migrations at start-up; when false, a database whose schema "
        "is behind makes the server refuse to start.",
    )
    sqlite_synchronous: SqliteSynchronous = Field(
        default="NORMAL",
        description="SQLite's PRAGMA synchronous for the audit log (WAL): NORMAL syncs at "
        "checkpoints only (a power cut can lose the last commits, never corrupt the file); FULL "
        "syncs every commit (durable when the reply is sent, slower).",
    )
    audit_wait_seconds: float = Field(
        default=5.0,
        gt=0,
        description="Longest time a request waits for its audit rows to be committed before "
        "answering 503.",
    )
    api_keys: str | None = Field(
        default=None,
        validation_alias=AliasChoices("SEPSIS_API_KEYS", "api_keys"),
        description="Comma-separated API keys, each KEY or ID:KEY (the ID is what the audit log "
        "records). When no keys are set, authentication is off and the server binds to "
        "loopback only.",
    )
    api_keys_file: Path | None = Field(
        default=None,
        validation_alias=AliasChoices("SEPSIS_API_KEYS_FILE", "api_keys_file"),
        description="File with one KEY or ID:KEY per line (# comments allowed).",
    )
    admin_keys: str | None = Field(
        default=None,
        description="Comma-separated ID:KEY entries allowed on /v1/admin routes (model "
        "activation); they work on every other route too. Unset: the admin routes are off.",
    )
    admin_keys_file: Path | None = Field(
        default=None,
        description="File with one admin ID:KEY per line (# comments allowed), "
        "e.g. a container secret; added to SEPSIS_API_ADMIN_KEYS.",
    )
    model_poll_seconds: float = Field(
        default=5.0,
        description="How often a server checks the database for a newly activated model "
        "version (`sepsis-api models activate`), so every replica follows.",
    )
    host: str = Field(default="127.0.0.1", description="Address `sepsis-api serve` binds to.")
    port: int = Field(default=8000, description="Port `sepsis-api serve` listens on.")
    workers: int = Field(default=1, description="Server worker processes.")
    access_log: bool = Field(
        default=True,
        description="One JSON line a request on stdout (time, request id, route, status, "
        "latency, caller key id, model version; never keys or patient values).",
    )
    max_batch_rows: int = Field(default=50_000, description="Most patients in one batch call.")
    max_body_bytes: int = Field(
        default=20_000_000, description="Largest request body accepted, in bytes."
    )

    mlflow_model: str | None = Field(
        default=None,
        description="Model that answers MLflow's POST /invocations: a model name or "
        "VERSION/NAME of the served version; default: the served version's default model.",
    )

    # CDS Hooks 2.0 (api/protocols/cds_hooks.py)
    public_url: str | None = Field(
        default=None,
        description="The address EHRs and browsers reach this API at, e.g. "
        "https://sepsis.example.org: CDS Hooks tokens must name PUBLIC_URL/cds-services[/ID] "
        "as aud, and cards link to it; unset: the address a request was sent to (links only).",
    )
    cds_issuers: dict[str, str] | None = Field(
        default=None,
        description='EHRs allowed to call CDS Hooks, as JSON {"ISSUER": "JWKS URL"}: the '
        "/cds-services/* routes then accept only their signed JWTs (ES384, RS384, ES256), "
        "not API keys. Unset: those routes take API keys like /v1 (none set: loopback only).",
    )
    cds_fhir_servers: str | None = Field(
        default=None,
        description="Comma-separated FHIR base URLs a CDS call's fhirServer may name for "
        "fetching what its prefetch lacks; unset: never fetch (a call without the prefetch "
        "it needs is a 412).",
    )
    cds_timeout_seconds: float = Field(
        default=5.0,
        gt=0,
        description="Longest wait for each request to an EHR's JWKS URL or FHIR server.",
    )
    cds_jwks_cache_seconds: float = Field(
        default=300.0, gt=0, description="How long an issuer's fetched JWKS is reused."
    )
    cds_jwt_max_seconds: float = Field(
        default=600.0,
        gt=0,
        description="Longest lifetime (exp - now) accepted for a CDS Hooks JWT; each jti is "
        "remembered until its exp, in the audit database, against replay to any process.",
    )
    cds_cors_origins: str | None = Field(
        default=None,
        description="Comma-separated browser origins (e.g. https://ehr.example.org) allowed "
        "to call /cds-services from a web page (CORS); unset: none.",
    )
    ui_public_url: str | None = Field(
        default=None,
        description="The web UI's address as clinicians reach it, e.g. "
        "https://sepsis-ui.example.org: CDS Hooks cards link to the estimate's record there; "
        "unset: no such link.",
    )

    @field_validator("cds_issuers")
    @classmethod
    def _issuers(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        for issuer, jwks in (value or {}).items():
            if not issuer or len(issuer) > 64:  # the audit log's caller column
                raise ValueError(f"issuer {issuer!r}: must be 1 to 64 characters")
            if urlsplit(jwks).scheme not in ("http", "https") or not urlsplit(jwks).netloc:
                raise ValueError(f"issuer {issuer!r}: JWKS URL {jwks!r} is not an http(s) URL")
        return value or None

    @model_validator(mode="after")
    def _cds_needs_public_url(self) -> Settings:
        if self.cds_issuers and not self.public_url:
            raise ValueError(
                "SEPSIS_API_CDS_ISSUERS needs SEPSIS_API_PUBLIC_URL: the EHR's tokens name "
                "PUBLIC_URL/cds-services/... as their audience"
            )
        return self

    fhir_mapping: Path | None = Field(
        default=None,
        description="JSON file mapping FHIR Observation codes and UCUM units to the model's "
        "features (POST /fhir/RiskAssessment/$predict); default: the one shipped in the "
        "package (LOINC where a code exists; see README, FHIR R4).",
    )

    monitoring_interval_seconds: float = Field(
        default=300.0,
        ge=0,
        description="How often the monitoring gauges on /metrics (drift, alert rate, "
        "performance) are recomputed, off the request path; 0 turns them off.",
    )

    ui_api_url: str = Field(
        default="http://127.0.0.1:8000",
        description="Address of the API that the web UI talks to.",
    )
    ui_api_key: str | None = Field(
        default=None, description="API key the web UI sends (when the API requires keys)."
    )
    ui_api_key_file: Path | None = Field(
        default=None,
        description="File holding the key the web UI sends (its first KEY or "
        "ID:KEY line), e.g. a container secret; used when SEPSIS_API_UI_API_KEY is unset.",
    )
    ui_host: str = Field(default="127.0.0.1", description="Address `sepsis-api ui` binds to.")
    ui_port: int = Field(default=8501, description="Port `sepsis-api ui` listens on.")

    def ui_key(self) -> str | None:
        """The key the web UI sends: SEPSIS_API_UI_API_KEY, else the first key in the file."""
        if self.ui_api_key or self.ui_api_key_file is None:
            return self.ui_api_key or None
        from sepsis_api.keys import parse_keys

        return next(iter(parse_keys(None, self.ui_api_key_file)), None)

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'audit.db'}"


@lru_cache
def get_settings() -> Settings:
    return Settings()


def env_name(field: str) -> str:
    """The environment variable that sets a Settings field."""
    alias = Settings.model_fields[field].validation_alias
    if isinstance(alias, AliasChoices):
        return str(alias.choices[0])
    return f"SEPSIS_API_{field.upper()}"


def settings_table() -> str:
    """The README's configuration table, generated from the Settings fields."""
    lines = ["| variable | default | meaning |", "|---|---|---|"]
    for name, field in Settings.model_fields.items():
        default = "unset" if field.default is None else f"`{field.default}`"
        lines.append(f"| `{env_name(name)}` | {default} | {field.description or ''} |")
    return "\n".join(lines)
