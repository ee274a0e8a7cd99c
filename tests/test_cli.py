"""The command line, run as a user runs it: `escrow serve` answers /readyz, embedded or not."""

from __future__ import annotations

import hashlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx2 as httpx
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text
from typer.testing import CliRunner

from api.app import create_app
from escrow.cli import app
from tests.factories import migration_head

ESCROW = [sys.executable, "-m", "escrow"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def env_with(**overrides: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ESCROW_")}
    env.update({k: v for k, v in overrides.items() if v is not None})
    return env


@contextmanager
def serving(env: dict[str, str], timeout: float = 60) -> Iterator[str]:
    """Run `escrow serve` until /readyz answers 200; stop it with SIGTERM afterwards."""
    port = free_port()
    log = tempfile.TemporaryFile(mode="w+")
    proc = subprocess.Popen([*ESCROW, "serve", "--port", str(port)], env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                log.seek(0)
                raise AssertionError(f"escrow serve exited early:\n{log.read()}")
            try:
                if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "escrow serve did not become ready"
            time.sleep(0.1)
        yield base
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        log.close()


def test_help_explains_each_command() -> None:
    runner = CliRunner()
    top = runner.invoke(app, ["--help"])
    assert top.exit_code == 0
    assert "serve" in top.output and "db" in top.output
    db = runner.invoke(app, ["db", "--help"])
    assert "upgrade" in db.output and "status" in db.output


def test_db_status_and_upgrade_on_a_configured_server(database_url: str, engine: object) -> None:
    env = env_with(ESCROW_DATABASE_URL=database_url)
    status = subprocess.run([*ESCROW, "db", "status"], env=env, capture_output=True, text=True, check=False)
    assert status.returncode == 0, status.stderr
    assert f"database: {migration_head()}" in status.stdout
    upgrade = subprocess.run([*ESCROW, "db", "upgrade"], env=env, capture_output=True, text=True, check=False)
    assert upgrade.returncode == 0, upgrade.stderr
    assert f"database at {migration_head()}" in upgrade.stdout


def test_serve_on_a_configured_server(database_url: str, engine: object) -> None:
    with serving(env_with(ESCROW_DATABASE_URL=database_url)) as base:
        assert httpx.get(f"{base}/healthz").json() == {"status": "ok"}
        assert httpx.get(f"{base}/docs").status_code == 200


def test_serve_starts_reuses_and_stops_an_embedded_database(tmp_path: Path) -> None:
    env = env_with(ESCROW_DATA_DIR=str(tmp_path))
    with serving(env) as base:
        assert httpx.get(f"{base}/readyz").json()["migration"] == migration_head()
    pid_file = tmp_path / "pgdata" / "postmaster.pid"
    assert not pid_file.exists(), "the embedded PostgreSQL should stop when escrow serve exits"
    with serving(env) as base:  # the same data folder, reused
        assert httpx.get(f"{base}/readyz").status_code == 200
    assert not pid_file.exists()


def test_tokens_are_created_listed_and_revoked_from_the_command_line(database_url: str, engine: Engine) -> None:
    env = env_with(ESCROW_DATABASE_URL=database_url)

    def escrow(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*ESCROW, *args], env=env, capture_output=True, text=True, check=False)

    assert escrow("jurisdictions", "add", "310199", "Test district").returncode == 0
    created = escrow("tokens", "create", "--role", "regulator", "--jurisdiction", "310199", "--label", "ops")
    assert created.returncode == 0, created.stderr
    token_id = created.stdout.split()[2]
    secret = created.stdout.strip().splitlines()[-1]
    assert secret.startswith("esc_")
    listing = escrow("tokens", "list").stdout
    assert token_id in listing and secret not in listing
    with engine.connect() as conn:  # only the hash is stored
        stored = conn.execute(text("SELECT token_hash FROM api_token WHERE id = :i"), {"i": token_id}).scalar_one()
    assert stored == hashlib.sha256(secret.encode()).hexdigest()

    with TestClient(create_app(engine)) as client:
        auth = {"Authorization": f"Bearer {secret}"}
        assert client.get("/jurisdictions", headers=auth).status_code == 200
        assert escrow("tokens", "revoke", token_id).returncode == 0
        assert client.get("/jurisdictions", headers=auth).status_code == 401

    refused = escrow("tokens", "create", "--role", "regulator", "--jurisdiction", "999998")
    assert refused.returncode == 2 and "unknown" in refused.stderr


def test_jobs_run_by_hand(database_url: str, engine: Engine) -> None:
    env = env_with(ESCROW_DATABASE_URL=database_url)

    def escrow(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*ESCROW, "jobs", *args], env=env, capture_output=True, text=True, check=False)

    listing = escrow("list").stdout
    assert {"deem_classes_confirmed", "deem_refunds_approved", "make_payouts"} <= {
        line.split()[0] for line in listing.splitlines()
    }
    ran = escrow("run", "deem_refunds_approved", "--now", "2020-01-01T09:00:00+08:00")
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.strip() == 'deem_refunds_approved: ok {"changed": 0}'
    listed = escrow("list").stdout.splitlines()  # other tests may have run other jobs in this database
    at = next(n for n, line in enumerate(listed) if line.startswith("deem_refunds_approved"))
    assert listed[at + 1].strip().startswith("last ok at")
    naive = escrow("run", "make_payouts", "--now", "2020-01-01T09:00:00")
    assert naive.returncode == 2 and "time zone" in naive.stderr
    unknown = escrow("run", "no_such_job")
    assert unknown.returncode == 2 and "no job named" in unknown.stderr
