"""The one place configuration is read: environment variables prefixed ESCROW_ (or a .env file)."""

from __future__ import annotations

from enum import StrEnum
from functools import lru_cache
from pathlib import Path

import platformdirs
from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from escrow.rules.families import SenderKind


class Environment(StrEnum):
    DEVELOPMENT = "development"
    TEST = "test"
    PRODUCTION = "production"


class LogFormat(StrEnum):
    JSON = "json"
    CONSOLE = "console"


class LogLevel(StrEnum):
    DEBUG = "DEBUG"
    INFO = "INFO"
    WARNING = "WARNING"
    ERROR = "ERROR"


POSTGRES_SCHEMES = ("postgresql://", "postgres://", "postgresql+psycopg2://")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ESCROW_", env_file=".env", extra="ignore")

    environment: Environment = Field(
        default=Environment.DEVELOPMENT,
        description="production refuses to start without ESCROW_DATABASE_URL",
    )
    database_url: str | None = Field(
        default=None,
        description="PostgreSQL URL; unset starts an embedded PostgreSQL in data_dir",
    )
    data_dir: Path = Field(
        default_factory=lambda: Path(platformdirs.user_data_dir("escrow")),
        description="where the embedded PostgreSQL keeps its files",
    )
    embedded_database_name: str = Field(
        default="escrow",
        description="the database on the embedded server that every command (and `escrow demo`) uses",
    )
    pool_size: int = Field(default=10, ge=1, le=200, description="database connections per process")
    failed_auth_limit: str = Field(
        default="20/minute",
        description="failed sign-ins and token checks a client may make (a `limits` rate such as 20/minute)",
    )
    log_level: LogLevel = Field(default=LogLevel.INFO, description="DEBUG, INFO, WARNING or ERROR")
    log_format: LogFormat = Field(
        default=LogFormat.JSON, description="json: one JSON object a line; console: for a person's terminal"
    )
    metrics_port: int | None = Field(
        default=None,
        ge=1,
        le=65535,
        description="serve Prometheus /metrics on this port (a port of its own, not the API's); unset: off",
    )
    metrics_host: str = Field(default="127.0.0.1", description="the address /metrics listens on")
    message_sender: SenderKind = Field(
        default=SenderKind.DEV_OUTBOX,
        description="where messages to people go: dev_outbox (kept for a developer to read at /m/dev/outbox)"
        " or sms_gateway (posted to ESCROW_SMS_GATEWAY_URL)",
    )
    sms_gateway_url: str | None = Field(
        default=None, description="the SMS gateway's URL, posted {phone, text} as JSON (with sms_gateway)"
    )

    @field_validator("database_url")
    @classmethod
    def _postgres_only(cls, url: str | None) -> str | None:
        if url and not url.startswith(POSTGRES_SCHEMES):
            scheme = url.split("://", 1)[0] if "://" in url else url[:20]
            raise ValueError(f"is a PostgreSQL URL (postgresql://user@host:5432/name), not {scheme!r}")
        if url:
            try:
                make_url(url)
            except ArgumentError:
                raise ValueError("cannot be read as a URL: postgresql://user:password@host:5432/name") from None
        return url

    @model_validator(mode="after")
    def _refuse_unsafe(self) -> Settings:
        if self.environment is Environment.PRODUCTION and not self.database_url:
            raise ValueError(
                "ESCROW_DATABASE_URL must be set in production: the embedded PostgreSQL is for development"
            )
        if self.environment is Environment.PRODUCTION and self.message_sender is SenderKind.DEV_OUTBOX:
            raise ValueError(
                "ESCROW_MESSAGE_SENDER must be sms_gateway in production: the development outbox keeps sign-in"
                " codes readable"
            )
        if self.message_sender is SenderKind.SMS_GATEWAY and not (self.sms_gateway_url or "").startswith(
            ("https://", "http://")
        ):
            raise ValueError(
                "ESCROW_SMS_GATEWAY_URL must be the gateway's http(s) URL with ESCROW_MESSAGE_SENDER=sms_gateway"
            )
        return self


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
