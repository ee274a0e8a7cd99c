"""Logs as an operator reads them: a JSON line per request with its id, route, status, latency and caller,
and never a secret: the demo's tokens, phones and ID numbers are grepped for in everything a running
service and a job wrote while it was asked about them (in headers, query strings and bodies)."""

from __future__ import annotations

import io
import json
import logging
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx2 as httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

from api.app import create_app
from escrow.db.database import make_engine, upgrade_to_head
from escrow.demo.district import seed_demo
from escrow.logs import configure_logging
from escrow.settings import Settings
from tests.conftest import TEST_DB_PREFIX
from tests.test_cli import ESCROW, env_with, free_port


@pytest.fixture
def request_log() -> Iterator[io.StringIO]:
    """The process's logs configured as `escrow serve` does, into a buffer; pytest's handlers put back after."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    buffer = io.StringIO()
    configure_logging(Settings(), stream=buffer)
    try:
        yield buffer
    finally:
        root.handlers, root.level = handlers, level


def lines(buffer: io.StringIO, event: str = "request") -> list[dict[str, object]]:
    return [r for r in map(json.loads, buffer.getvalue().splitlines()) if r.get("event") == event]


def test_a_request_is_one_json_line_with_its_id_route_status_latency_and_caller(
    engine: Engine, regulator_token: str, request_log: io.StringIO
) -> None:
    with TestClient(create_app(engine)) as client:
        sent = client.get(
            "/institutions?limit=1", headers={"Authorization": f"Bearer {regulator_token}", "X-Request-ID": "trace-42"}
        )
        made = client.get("/institutions/not-a-uuid", headers={"X-Request-ID": "bad id; drop"})
    assert sent.headers["X-Request-ID"] == "trace-42"
    assert made.headers["X-Request-ID"] != "bad id; drop" and len(made.headers["X-Request-ID"]) == 32
    first, second = lines(request_log)
    assert first["request_id"] == "trace-42"
    assert first["method"] == "GET" and first["route"] == "/institutions" and first["path"] == "/institutions"
    assert first["status"] == 200 and isinstance(first["latency_ms"], float)
    assert str(first["principal"]).startswith("regulator:") and first["role"] == "regulator"
    assert second["request_id"] == made.headers["X-Request-ID"]
    assert second["route"] == "/institutions/{institution_id}" and second["status"] == 401
    assert second["principal"] is None


def test_a_console_request_line_names_the_signed_in_person_by_principal_and_user_id(
    engine: Engine, request_log: io.StringIO
) -> None:
    """As a bearer token's caller is named: the person's principal, role and user id; never their name,
    password, session cookie or CSRF token."""
    from escrow.access.audit import OPERATOR
    from escrow.access.callers import Role
    from escrow.access.users import create_user
    from escrow.db.database import make_sessionmaker
    from escrow.registry.jurisdictions import add_jurisdiction

    password = "logged-person-password"
    with make_sessionmaker(engine).begin() as session:
        add_jurisdiction(session, code="310113", name="Baoshan")
        user = create_user(session, name="钱进", role=Role.REGULATOR, password=password, jurisdictions=["310113"],
                           by=OPERATOR, now=datetime.now(UTC)).id  # fmt: skip
    with TestClient(create_app(engine), follow_redirects=False) as client:
        form = client.get("/console/sign-in")
        csrf = form.text.split('name="csrf_token" value="')[1].split('"')[0]
        signed = client.post("/console/sign-in", data={"name": "钱进", "password": password, "csrf_token": csrf})
        assert signed.status_code == 303
        assert client.get("/console/dashboard").status_code == 200
        page = client.get("/console/account").text
        secrets = {password, "钱进", client.cookies["escrow_session"], csrf,
                   page.split('name="csrf_token" value="')[1].split('"')[0]}  # fmt: skip
    before, sign_in, dashboard, account = lines(request_log)[-4:]
    assert before["route"] == "/console/sign-in" and before["principal"] is None and "user_id" not in before
    for line in (sign_in, dashboard, account):
        assert line["principal"] == f"regulator:{user}" and line["role"] == "regulator", line
        assert line["user_id"] == str(user) and line["token_id"] is None
    assert dashboard["route"] == "/console/dashboard" and dashboard["status"] == 200
    assert not [s for s in secrets if s in request_log.getvalue()]


@pytest.fixture
def regulator_token(engine: Engine) -> str:
    from escrow.access.callers import Role
    from escrow.access.tokens import issue_token
    from escrow.db.database import make_sessionmaker
    from escrow.registry.jurisdictions import add_jurisdiction

    with make_sessionmaker(engine).begin() as session:
        add_jurisdiction(session, code="310112", name="Minhang")
        _, secret = issue_token(
            session,
            role=Role.REGULATOR,
            jurisdictions=["310112"],
            label="logs",
            expires_at=None,
            institution_id=None,
            guardian_phone=None,
            bank_code=None,
        )
    return secret


@pytest.fixture(scope="module")
def demo_url(database_url: str) -> Iterator[str]:
    """A small demo district in a database of its own (tenants of the shared test database stay untouched)."""
    server = make_url(database_url)
    name = f"{TEST_DB_PREFIX}{os.getpid()}_logs"
    admin = create_engine(server.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = server.set(database=name).render_as_string(hide_password=False)
    try:
        engine = make_engine(url, pool_size=1)
        upgrade_to_head(engine)
        engine.dispose()
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def test_no_token_phone_or_id_number_reaches_the_logs(demo_url: str, tmp_path: Path) -> None:
    district = seed_demo(demo_url, institutions=12, seed=7, workers=1)
    engine = create_engine(demo_url)
    with engine.connect() as conn:
        guardians = conn.execute(text("SELECT phone, id_number FROM guardian LIMIT 50")).all()
        school, course = conn.execute(
            text(
                "SELECT institution_id, id FROM course WHERE institution_id = "
                "(SELECT institution_id FROM api_token WHERE role = 'institution' LIMIT 1) LIMIT 1"
            )
        ).one()
    engine.dispose()
    secrets = {*district.tokens.values(), *(p for p, _ in guardians), *(i for _, i in guardians if i)}
    phone, id_number = guardians[0]
    log_file = tmp_path / "service.log"
    env = env_with(ESCROW_DATABASE_URL=demo_url, ESCROW_LOG_LEVEL="DEBUG")
    with log_file.open("w") as log, serving(env, log) as base:
        for token in district.tokens.values():
            auth = {"Authorization": f"Bearer {token}"}
            httpx.get(f"{base}/institutions", params={"token": token, "access_token": token}, headers=auth)
            httpx.get(f"{base}/contracts", params={"phone": phone, "id_number": id_number}, headers=auth)
            httpx.get(f"{base}/nowhere", params={"token": token})
        httpx.get(f"{base}/institutions", headers={"Authorization": f"Bearer {district.tokens['parent']}x"})
        contract = {
            "course_id": str(course),
            "guardian": {"name": "Li Hua", "phone": phone, "id_number": id_number},
            "student_name": "Li Ming",
            "hours_bought": 10,
            "term_start": "2026-12-07",
            "term_end": "2027-01-29",
        }
        school_auth = {"Authorization": f"Bearer {district.tokens['institution']}"}
        httpx.post(f"{base}/institutions/{school}/contracts", json=contract, headers=school_auth)
        broken = {**contract, "hours_bought": -1, "guardian": {"name": "", "phone": f"x{phone}", "id_number": "1"}}
        httpx.post(f"{base}/institutions/{school}/contracts", json=broken, headers=school_auth)
        httpx.post(f"{base}/institutions/{school}/contracts", content=f"{{{phone}", headers=school_auth)
        job = subprocess.run(
            [*ESCROW, "jobs", "run", "check_invariants"], env=env, stdout=subprocess.DEVNULL, stderr=log, check=False
        )
    written = log_file.read_text()
    assert job.returncode == 0, written[-2000:]
    leaked = sorted(s for s in secrets if s in written)
    assert not leaked, f"{len(leaked)} secrets in the logs, e.g. {leaked[0][:6]}..."
    requests = [json.loads(line) for line in written.splitlines() if '"event": "request"' in line]
    assert len(requests) >= 16 and all(r["request_id"] for r in requests)
    assert {r["route"] for r in requests} >= {"/institutions", "/contracts", "unmatched"}
    assert any(json.loads(line).get("event") == "job run" for line in written.splitlines() if line.startswith("{"))


class serving:  # noqa: N801 - used as a context manager like the others in tests/test_cli.py
    """`escrow serve` with its stdout and stderr into `log`, until /readyz answers; SIGTERM after."""

    def __init__(self, env: dict[str, str], log: io.TextIOBase) -> None:
        self.env, self.log, self.port = env, log, free_port()

    def __enter__(self) -> str:
        self.proc = subprocess.Popen(
            [*ESCROW, "serve", "--port", str(self.port)], env=self.env, stdout=self.log, stderr=subprocess.STDOUT
        )
        base = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and self.proc.poll() is None:
            try:
                if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                    return base
            except httpx.TransportError:
                time.sleep(0.1)
        self.__exit__()
        raise AssertionError("escrow serve did not become ready")

    def __exit__(self, *_: object) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=30)
