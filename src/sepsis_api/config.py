"""Settings: the only place configuration is read (environment prefix ``SEPSIS_API_``)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from sepsis_api.ml.registry import PACKAGED_ROOT, Registry


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SEPSIS_API_", env_file=".env", extra="ignore")

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

    def registry(self) -> Registry:
        roots = [self.model_dir] if self.model_dir else []
        return Registry([*roots, PACKAGED_ROOT])


@lru_cache
def get_settings() -> Settings:
    return Settings()
