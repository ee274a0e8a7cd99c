"""A fresh PostgreSQL database per test run, built by the migrations.

ESCROW_DATABASE_URL set: the database is made on that server. Unset: on the embedded server.
Tests isolate by institution: each test books into institutions of its own, as tenants do.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from uuid import UUID

import psutil
import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from escrow.db.database import make_engine, make_sessionmaker, normalize_url, upgrade_to_head
from escrow.settings import Settings
from tests.factories import bare_institution

TEST_DB_PREFIX = "escrow_test_"


def _server_url() -> str:
    settings = Settings()
    if settings.database_url:
        return normalize_url(settings.database_url)
    from escrow.db.embedded import start_embedded

    return start_embedded(settings.data_dir, "postgres")


def _drop_stale_databases(admin: Engine) -> None:
    """Drop test databases left by runs that were killed (their pid is gone)."""
    with admin.connect() as conn:
        names = conn.scalars(
            text("SELECT datname FROM pg_database WHERE datname LIKE :p"), {"p": TEST_DB_PREFIX + "%"}
        ).all()
        for name in names:
            pid = name.removeprefix(TEST_DB_PREFIX).split("_")[0]
            if pid.isdigit() and not psutil.pid_exists(int(pid)):
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    server = make_url(_server_url())
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    _drop_stale_databases(admin)
    name = f"{TEST_DB_PREFIX}{os.getpid()}_{os.environ.get('PYTEST_XDIST_WORKER', 'main')}"
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = server.set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="session")
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url, pool_size=20)
    upgrade_to_head(engine)
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def db(engine: Engine) -> sessionmaker[Session]:
    """Open a transaction with `with db.begin() as session:`; it commits at the end of the block."""
    return make_sessionmaker(engine)


@pytest.fixture
def institution(db: sessionmaker[Session]) -> UUID:
    """A new institution with empty books, untouched by any other test."""
    with db.begin() as session:
        return bare_institution(session)
