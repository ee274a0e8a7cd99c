"""The command line as an operator meets it: a version, one line (exit 2) for a wrong setting or an
unreachable database, and a demo whose database every other command then uses and which never drops
a database it did not make."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from tests.conftest import TEST_DB_PREFIX
from tests.test_cli import ESCROW, env_with


def escrow(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*ESCROW, *args], env=env_with(**env), capture_output=True, text=True, check=False)


def test_version() -> None:
    shown = escrow("--version")
    assert shown.returncode == 0 and shown.stdout.strip() == "escrow 0.1.0"


@pytest.mark.parametrize(
    ("setting", "value", "named"),
    [
        ("ESCROW_POOL_SIZE", "500", "ESCROW_POOL_SIZE"),
        ("ESCROW_DATABASE_URL", "mysql://root@localhost/escrow", "ESCROW_DATABASE_URL"),
        ("ESCROW_DATABASE_URL", "postgresql://postgres@127.0.0.1:54x2/escrow", "ESCROW_DATABASE_URL"),
        ("ESCROW_LOG_FORMAT", "xml", "ESCROW_LOG_FORMAT"),
        ("ESCROW_ENVIRONMENT", "production", "ESCROW_DATABASE_URL"),
        ("ESCROW_MESSAGE_SENDER", "sms_gateway", "ESCROW_SMS_GATEWAY_URL"),
        ("ESCROW_MESSAGE_SENDER", "carrier_pigeon", "ESCROW_MESSAGE_SENDER"),
    ],
)
def test_a_wrong_setting_is_one_line_saying_what_to_change(setting: str, value: str, named: str) -> None:
    refused = escrow("jobs", "list", **{setting: value})
    assert refused.returncode == 2
    assert len(refused.stderr.strip().splitlines()) == 1, refused.stderr
    assert named in refused.stderr and "Traceback" not in refused.stderr


def test_production_refuses_the_development_outbox() -> None:
    refused = escrow(
        "jobs", "list", ESCROW_ENVIRONMENT="production", ESCROW_DATABASE_URL="postgresql://x@127.0.0.1:9/e"
    )
    assert refused.returncode == 2 and "ESCROW_MESSAGE_SENDER must be sms_gateway in production" in refused.stderr


def test_an_unreachable_database_is_one_line_without_a_traceback() -> None:
    refused = escrow("tokens", "list", ESCROW_DATABASE_URL="postgresql://postgres:hunter2@127.0.0.1:9/escrow")
    assert refused.returncode == 2
    assert refused.stderr.startswith("escrow: cannot reach the database at postgresql")
    assert "ESCROW_DATABASE_URL" in refused.stderr and "Traceback" not in refused.stderr
    assert "hunter2" not in refused.stderr and len(refused.stderr.strip().splitlines()) == 1


@pytest.fixture
def demo_database(database_url: str) -> Iterator[str]:
    """A URL naming a database that does not exist yet (the demo makes it); dropped afterwards."""
    server = make_url(database_url)
    name = f"{TEST_DB_PREFIX}{os.getpid()}_demo"
    admin = create_engine(server.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        yield server.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def test_after_the_demo_every_command_works_on_its_database(demo_database: str) -> None:
    seeded = escrow("demo", "--institutions", "7", "--no-serve", ESCROW_DATABASE_URL=demo_database)
    assert seeded.returncode == 0, seeded.stderr[-2000:]
    tokens = escrow("tokens", "list", ESCROW_DATABASE_URL=demo_database)
    listed = tokens.stdout.strip().splitlines()
    assert tokens.returncode == 0 and len(listed) == 4 and all(t.endswith("demo") for t in listed), tokens.stdout
    ran = escrow("jobs", "run", "check_invariants", ESCROW_DATABASE_URL=demo_database)
    assert ran.returncode == 0, ran.stderr
    assert "check_invariants" in escrow("jobs", "list", ESCROW_DATABASE_URL=demo_database).stdout
    again = escrow("demo", "--institutions", "7", "--no-serve", ESCROW_DATABASE_URL=demo_database)
    assert again.returncode == 0, again.stderr[-2000:]  # its own database: made anew


def test_the_demo_never_drops_a_database_it_did_not_make(demo_database: str) -> None:
    url = make_url(demo_database)
    admin = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{url.database}"'))
    admin.dispose()
    mine = create_engine(url)
    with mine.begin() as conn:
        conn.execute(text("CREATE TABLE precious (fen bigint)"))
        conn.execute(text("INSERT INTO precious VALUES (100)"))
    refused = escrow("demo", "--institutions", "1", "--no-serve", ESCROW_DATABASE_URL=demo_database)
    assert refused.returncode == 2
    assert "not made by" in refused.stderr and "ESCROW_DATABASE_URL" in refused.stderr
    assert "Traceback" not in refused.stderr
    with mine.connect() as conn:
        assert conn.scalar(text("SELECT fen FROM precious")) == 100
    mine.dispose()
