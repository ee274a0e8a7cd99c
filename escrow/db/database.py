"""Engines, sessions and migrations. The caller of a use case owns its transaction."""

from __future__ import annotations

import time
from functools import lru_cache
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import ConnectionPoolEntry

from escrow.settings import Settings, get_settings

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def resolve_database_url(settings: Settings) -> str:
    """The configured URL, or the embedded server's (started on first use)."""
    if settings.database_url:
        return normalize_url(settings.database_url)
    from escrow.db.embedded import start_embedded

    return start_embedded(settings.data_dir, settings.embedded_database_name)


def normalize_url(url: str) -> str:
    """Accept postgres:// and postgresql:// URLs and pin the psycopg2 driver."""
    parsed = make_url(url.replace("postgres://", "postgresql://", 1))
    if parsed.get_backend_name() != "postgresql":
        raise ValueError(f"only PostgreSQL is supported, got {parsed.get_backend_name()!r}")
    return parsed.set(drivername="postgresql+psycopg2").render_as_string(hide_password=False)


# A pooled connection used this recently is taken to be alive; one idle longer is pinged before it is
# handed out, and replaced if the server went away meanwhile. Pinging every checkout (pool_pre_ping) costs
# each request a round trip per session; a server lost under load fails the statements then in flight
# (503, and the pool starts afresh), which a ping would not have spared them anyway.
IDLE_BEFORE_PING_S = 1.0


def make_engine(url: str, *, pool_size: int = 10) -> Engine:
    # hide_parameters: an error logged with its statement never shows the values (phones, ID numbers)
    engine = create_engine(url, pool_size=pool_size, max_overflow=pool_size, hide_parameters=True)

    def note_idle(dbapi_connection: Any, record: ConnectionPoolEntry, *_: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    def ping_if_idle(dbapi_connection: Any, record: ConnectionPoolEntry, proxy: Any) -> None:
        if time.monotonic() - record.info.get("idle_since", 0.0) < IDLE_BEFORE_PING_S:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except engine.dialect.loaded_dbapi.Error as exc:  # the pool replaces it and tries again
            raise DisconnectionError(f"pooled connection lost while idle: {exc}") from exc

    event.listen(engine, "connect", note_idle)  # a new connection needs no ping
    event.listen(engine, "checkin", note_idle)
    event.listen(engine, "checkout", ping_if_idle)
    return engine


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@lru_cache(maxsize=1)
def default_engine() -> Engine:
    settings = get_settings()
    return make_engine(resolve_database_url(settings), pool_size=settings.pool_size)


def alembic_config(url: str) -> Config:
    config = Config(str(PROJECT_ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(PROJECT_ROOT / "migrations"))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade_to_head(engine: Engine) -> None:
    """Apply every migration; a session-level advisory lock keeps two starters from racing."""
    url = engine.url.render_as_string(hide_password=False)
    with engine.connect() as conn:
        conn.execute(text("SELECT pg_advisory_lock(hashtext('escrow.migrations'))"))
        try:
            config = alembic_config(url)
            config.attributes["connection"] = conn
            command.upgrade(config, "head")
            conn.commit()
        finally:
            conn.execute(text("SELECT pg_advisory_unlock(hashtext('escrow.migrations'))"))
            conn.commit()


def migration_status(engine: Engine) -> tuple[str | None, str | None]:
    """(current revision of the database, head revision of the code)."""
    script = ScriptDirectory.from_config(alembic_config(engine.url.render_as_string(hide_password=False)))
    with engine.connect() as conn:
        current = MigrationContext.configure(conn).get_current_revision()
    return current, script.get_current_head()
