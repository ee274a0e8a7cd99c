"""The one place configuration is read: environment variables prefixed ESCROW_ (or a .env file)."""

from __future__ import annotations

from enum import StrEnum
from functools import lru_cache
from pathlib import Path

import platformdirs
from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Environment(StrEnum):
    DEVELOPMENT = "development"
    TEST = "test"
    PRODUCTION = "production"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ESCROW_", env_file=".env", extra="ignore")

    environment: Environment = Environment.DEVELOPMENT
    database_url: str | None = Field(
        default=None,
        description="PostgreSQL URL; unset starts an embedded PostgreSQL in data_dir",
    )
    data_dir: Path = Field(
        default_factory=lambda: Path(platformdirs.user_data_dir("escrow")),
        description="where the embedded PostgreSQL keeps its files",
    )
    embedded_database_name: str = "escrow"
    pool_size: int = Field(default=10, ge=1, le=200)
    failed_auth_limit: str = Field(
        default="20/minute",
        description="failed sign-ins and token checks a client may make (a `limits` rate such as 20/minute)",
    )

    @model_validator(mode="after")
    def _refuse_unsafe(self) -> Settings:
        if self.environment is Environment.PRODUCTION and not self.database_url:
            raise ValueError(
                "ESCROW_DATABASE_URL must be set in production: the embedded PostgreSQL is for development"
            )
        return self


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
