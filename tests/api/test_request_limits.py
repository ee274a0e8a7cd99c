"""What the body guard (api/bodies.py) and the throttle (api/throttle.py) refuse, and how much of the body
they read first: over-size or unauthenticated bodies are refused unread; duplicate JSON keys are refused
on every JSON route; failed token checks are throttled per client."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from api.app import create_app
from api.bodies import JSON_BODY_BYTES
from escrow.bank.formats import MAX_FILE_BYTES
from escrow.settings import Settings
from tests.api.test_authorization_matrix import TABLE, TOKEN_OF, target
from tests.api.test_hostile_input import call_path, counts, role_for
from tests.world import World, build_world


@pytest.fixture(scope="module")
def world(engine: Engine) -> World:
    with sessionmaker(engine).begin() as session:
        return build_world(session)


@pytest.fixture(scope="module")
def app(engine: Engine) -> FastAPI:
    return create_app(engine)


def asgi_post(app: FastAPI, path: str, headers: dict[str, str], chunks: int, chunk: bytes = b"x" * 65536) -> Any:
    """POST `chunks` chunks to the app as a server would; the status, the body, and how many chunks it read."""
    read = 0
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        nonlocal read
        if read < chunks:
            read += 1
            return {"type": "http.request", "body": chunk, "more_body": read < chunks}
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "client": ("127.0.0.9", 50000),
        "server": ("127.0.0.1", 8000),
    }
    asyncio.run(app(scope, receive, send))
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], json.loads(body) if body else None, read


def contracts_path(world: World) -> str:
    return f"/institutions/{world.places['A'].institution_id}/contracts"


def test_no_token_is_401_before_a_byte_of_a_huge_body(app: FastAPI, world: World) -> None:
    big = str(50 * 1024 * 1024)
    for path, kind in ((contracts_path(world), "application/json"), ("/statements", "text/plain")):
        status, body, read = asgi_post(app, path, {"content-length": big, "content-type": kind}, chunks=800)
        assert (status, body["code"], read) == (401, "unauthenticated", 0)


def test_a_bad_token_is_401_before_a_byte_of_a_large_body(app: FastAPI, world: World) -> None:
    headers = {"content-length": str(10 * 1024 * 1024), "authorization": "Bearer esc_not-a-token"}
    status, body, read = asgi_post(app, "/statements", headers | {"content-type": "text/plain"}, chunks=160)
    assert (status, body["code"], read) == (401, "unauthenticated", 0)


def test_an_over_size_content_length_is_413_unread(app: FastAPI, world: World) -> None:
    auth = {"authorization": f"Bearer {world.tokens['school_a']}", "content-type": "application/json"}
    status, body, read = asgi_post(app, contracts_path(world), auth | {"content-length": str(JSON_BODY_BYTES + 1)}, 20)
    assert (status, body["code"], read) == (413, "payload_too_large", 0)
    bank = {"authorization": f"Bearer {world.tokens['bank_a']}", "content-type": "text/plain"}
    status, body, read = asgi_post(app, "/statements", bank | {"content-length": str(MAX_FILE_BYTES + 1)}, 400)
    assert (status, body["code"], read) == (413, "payload_too_large", 0)


def test_a_body_that_grows_past_the_limit_is_cut_off(app: FastAPI, world: World) -> None:
    """Sent in chunks with no Content-Length: reading stops one chunk past the limit."""
    auth = {"authorization": f"Bearer {world.tokens['school_a']}", "transfer-encoding": "chunked"}
    status, body, read = asgi_post(app, contracts_path(world), auth, chunks=800)
    assert (status, body["code"]) == (413, "payload_too_large")
    assert read == JSON_BODY_BYTES // 65536 + 1


@pytest.fixture(scope="module")
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app) as c:
        yield c


def duplicated(body: dict[str, Any]) -> tuple[bytes, str]:
    """The body as JSON text with its first key given twice (the second value the first's, so only the
    repetition is wrong)."""
    key, value = next(iter(body.items()))
    text = json.dumps(body)
    return ("{" + json.dumps(key) + ": " + json.dumps(value) + ", " + text[1:]).encode(), key


def test_a_duplicate_key_is_refused_on_every_json_route(client: TestClient, world: World, engine: Engine) -> None:
    db: sessionmaker[Session] = sessionmaker(engine)
    wrong = []
    for op, row in TABLE.items():
        if row.body is None:
            continue
        place = target(world, role_for(row), "own")
        content, key = duplicated(row.body(place))
        headers = {
            "Authorization": f"Bearer {world.tokens[TOKEN_OF[role_for(row)]]}",
            "Content-Type": "application/json",
            "Idempotency-Key": f"duplicate-{op}",
        }
        before = counts(db)
        response = client.request(row.method, call_path(row, place), content=content, headers=headers)
        if response.status_code != 422 or repr(key) not in response.json()["detail"] or counts(db) != before:
            wrong.append(f"{op}: {response.status_code} {response.text[:120]}")
    assert not wrong, "\n".join(wrong)


def test_the_amount_given_twice_books_nothing(client: TestClient, world: World) -> None:
    place = world.places["A"]
    path = f"/institutions/{place.institution_id}/contracts/{place.contract_id}/collections"
    response = client.post(
        path,
        content=b'{"amount_fen": 1, "amount_fen": 100000, "bank_reference": "DUP-1"}',
        headers={"Authorization": f"Bearer {world.tokens['school_a']}", "Idempotency-Key": "dup-amount"},
    )
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert "'amount_fen' appears twice" in response.json()["detail"]


def test_failed_token_checks_are_throttled_per_client(engine: Engine, world: World) -> None:
    app = create_app(engine, Settings(failed_auth_limit="3/minute"))
    path = f"/institutions/{world.places['A'].institution_id}"
    good = {"Authorization": f"Bearer {world.tokens['school_a']}"}
    with TestClient(app) as attacker, TestClient(app, client=("10.0.0.2", 1)) as neighbour:
        statuses = [attacker.get(path, headers={"Authorization": f"Bearer esc_guess{n}"}).status_code for n in range(5)]
        assert statuses == [401, 401, 401, 429, 429]
        refused = attacker.get(path, headers=good)  # even the right token waits: guessing is what is slowed
        assert refused.status_code == 429
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.json()["code"] == "too_many_failed_attempts"
        assert 1 <= int(refused.headers["Retry-After"]) <= 60
        assert neighbour.get(path, headers=good).status_code == 200


def test_a_control_character_in_a_query_or_body_is_a_422_naming_where(client: TestClient, world: World) -> None:
    auth = {"Authorization": f"Bearer {world.tokens['school_a']}"}
    response = client.get("/contracts?cursor=a%00b", headers=auth)
    assert (response.status_code, response.json()["problems"][0]["field"]) == (422, "query")
    place = world.places["A"]
    response = client.post(
        f"/institutions/{place.institution_id}/holds",
        content=b'{"reason": "a\\u0000b"}',
        headers={"Authorization": f"Bearer {world.tokens['regulator']}", "Content-Type": "application/json"},
    )
    assert (response.status_code, response.json()["problems"][0]["field"]) == (422, "body.reason")
    response = client.post(
        f"/institutions/{place.institution_id}/holds",
        content=b'{"reason": "a\\u0000b"}',
        headers={"Authorization": "Bearer esc_wrong", "Content-Type": "application/json"},
    )
    assert response.status_code == 401  # a bad token is told before a bad body
