"""The HTTP skeleton: health, readiness against the migration head, docs, and problem+json errors."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg2  # type: ignore[import-untyped]
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DatabaseError
from sqlalchemy.orm import sessionmaker

from api.app import create_app
from api.deps import CallerDep
from escrow.access.callers import Role
from escrow.access.tokens import issue_token
from escrow.errors import IdempotencyConflict, InsufficientFunds, NotFound, UnbalancedTransaction
from tests.factories import bare_institution, migration_head


@pytest.fixture
def client(engine: Engine) -> Iterator[TestClient]:
    app = create_app(engine)

    def fail(kind: str) -> None:
        raise {
            "missing": NotFound("contract 42 does not exist"),
            "unbalanced": UnbalancedTransaction(["CNY legs sum to 1 fen, not zero"]),
            "short": InsufficientFunds("prepaid:c1 holds 5 fen"),
            "reused": IdempotencyConflict("key 'k' was used for a different request"),
            "bug": RuntimeError("boom"),
        }[kind]

    app.add_api_route("/_fail/{kind}", fail)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


def test_health_readiness_and_docs(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert (ready.json()["status"], ready.json()["migration"]) == ("ready", migration_head())
    assert client.get("/docs").status_code == 200
    spec = client.get("/openapi.json").json()
    assert {op["operationId"] for path in spec["paths"].values() for op in path.values()} >= {
        "get_health",
        "get_readiness",
    }


@pytest.mark.parametrize(
    ("kind", "status", "code"),
    [
        ("missing", 404, "not_found"),
        ("unbalanced", 422, "unbalanced_transaction"),
        ("short", 409, "insufficient_funds"),
        ("reused", 409, "idempotency_key_reused"),
        ("bug", 500, "internal_error"),
    ],
)
def test_errors_are_problem_json(client: TestClient, kind: str, status: int, code: str) -> None:
    response = client.get(f"/_fail/{kind}")
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert (body["status"], body["code"], body["type"]) == (status, code, f"urn:escrow:problem:{code}")
    assert body["detail"]
    if kind == "bug":
        assert "boom" not in body["detail"]  # internals are logged, not shown


def test_unknown_routes_are_problem_json(client: TestClient) -> None:
    response = client.get("/no/such/route")
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


def test_not_ready_while_migrations_are_pending(database_url: str) -> None:
    server = make_url(database_url)
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    empty = f"{server.database}_unmigrated"
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{empty}"'))
        conn.execute(text(f'CREATE DATABASE "{empty}"'))
    engine = create_engine(server.set(database=empty))
    try:
        with TestClient(create_app(engine)) as client:
            response = client.get("/readyz")
        assert response.status_code == 503
        assert response.json()["code"] == "migrations_pending"
    finally:
        engine.dispose()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE "{empty}" WITH (FORCE)'))
        admin.dispose()


def test_an_unreachable_database_is_a_503_to_retry_not_a_500() -> None:
    """A request that needs the database while it is down (a port nothing listens on) is told to retry."""
    engine = create_engine("postgresql+psycopg2://postgres@127.0.0.1:9/escrow", pool_pre_ping=True)
    with TestClient(create_app(engine), raise_server_exceptions=False) as client:
        response = client.get("/institutions", headers={"Authorization": "Bearer esc_whatever"})
    assert response.status_code == 503, response.text
    assert response.headers["retry-after"] == "1"
    assert response.json()["code"] == "database_unavailable"


@pytest.mark.parametrize(("invalidated", "status"), [(True, 503), (False, 500)])
def test_a_connection_lost_mid_query_is_a_503_whatever_error_class_the_driver_picks(
    engine: Engine, invalidated: bool, status: int
) -> None:
    """psycopg2 reports a server that went away during a query as DatabaseError as often as
    OperationalError; SQLAlchemy marks the connection invalidated either way, and that is what counts."""
    app = create_app(engine)

    @app.get("/boom")
    def boom() -> None:
        orig = psycopg2.DatabaseError("server closed the connection unexpectedly")
        raise DatabaseError("SELECT 1", {}, orig, connection_invalidated=invalidated)

    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.get("/boom")
    assert response.status_code == status, response.text
    assert response.json()["code"] == ("database_unavailable" if invalidated else "internal_error")


def test_a_caller_dependency_is_the_caller_whatever_the_handler_names_it(engine: Engine) -> None:
    """A handler gets the authenticated Caller its parameter's type says, under any name, sync or async;
    a bad token is refused before the handler runs."""
    with sessionmaker(engine).begin() as s:
        institution = bare_institution(s)
        _, secret = issue_token(s, role=Role.INSTITUTION, institution_id=institution)

    def sync_me(me: CallerDep) -> dict[str, str]:
        return {"type": type(me).__name__, "role": me.role.value}

    async def async_who(who: CallerDep) -> dict[str, str]:
        return {"type": type(who).__name__, "role": who.role.value}

    app = create_app(engine)
    app.add_api_route("/_me", sync_me)
    app.add_api_route("/_who", async_who)
    with TestClient(app) as client:
        for path in ("/_me", "/_who"):
            response = client.get(path, headers={"Authorization": f"Bearer {secret}"})
            assert response.json() == {"type": "Caller", "role": "institution"}, path
            refused = client.get(path, headers={"Authorization": "Bearer esc_not_a_token"})
            assert (refused.status_code, refused.json()["code"]) == (401, "unauthenticated"), path
