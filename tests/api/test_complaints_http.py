"""Complaints, evaluations and the refund preview over HTTP, as machines and apps use them: bearer tokens,
problem+json refusals with stable codes, and figures equal to the books'."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session, sessionmaker

from api.app import create_app
from tests.world import World, build_world


@pytest.fixture(scope="module")
def setup(engine: Engine) -> Iterator[tuple[TestClient, World]]:
    with sessionmaker(engine).begin() as session:
        world = build_world(session)
    with TestClient(create_app(engine)) as client:
        yield client, world


def auth(world: World, who: str, key: str | None = None) -> dict[str, str]:
    headers = {"Authorization": f"Bearer {world.tokens[who]}"}
    return headers | ({"Idempotency-Key": key} if key else {})


def test_a_complaint_from_a_parents_app_to_the_regulator_and_back(setup: tuple[TestClient, World]) -> None:
    client, world = setup
    place = world.places["parent1"]
    base = f"/institutions/{place.institution_id}/complaints"
    made = client.post(base, json={"category": "fees", "body": "We were asked to pay 8,000 yuan in cash."},
                       headers=auth(world, "parent1"))  # fmt: skip
    assert made.status_code == 201 and made.json()["status"] == "submitted"
    path = f"{base}/{made.json()['id']}"
    listed = client.get("/complaints", params={"status": "submitted"}, headers=auth(world, "regulator")).json()
    assert made.json()["id"] in {c["id"] for c in listed["items"]}
    assigned = client.post(f"{path}/assignment", json={"assignee_id": str(place.assignee_id)},
                           headers=auth(world, "regulator"))  # fmt: skip
    assert assigned.status_code == 200 and assigned.json()["assigned_to"] == str(place.assignee_id)
    answer = client.post(f"{path}/messages", json={"body": "We called the school."}, headers=auth(world, "regulator"))
    assert answer.status_code == 201 and answer.json()["author_role"] == "regulator"
    closed = client.post(f"{path}/closure", json={"note": "The fee was returned."}, headers=auth(world, "regulator"))
    assert closed.status_code == 200
    seen = client.get(path, headers=auth(world, "parent1")).json()
    assert seen["status"] == "closed" and [m["body"] for m in seen["messages"]] == [
        "We called the school.",
        "The fee was returned.",
    ]
    assert seen["guardian_phone"] == place.guardian_phone and seen["assignee_name"].startswith("Regulator")
    late = client.post(f"{path}/messages", json={"body": "thanks"}, headers=auth(world, "parent1"))
    assert late.status_code == 409 and late.headers["content-type"] == "application/problem+json"
    assert late.json()["code"] == "conflict"
    other = client.get(path, headers=auth(world, "parent2"))
    assert other.status_code == 404 and other.json()["code"] == "not_found"


def test_a_bad_category_or_empty_text_is_a_422_naming_the_field(setup: tuple[TestClient, World]) -> None:
    client, world = setup
    base = f"/institutions/{world.places['parent1'].institution_id}/complaints"
    for body, field in (
        ({"category": "rude", "body": "x"}, "body.category"),
        ({"category": "fees", "body": " "}, "body.body"),
    ):
        refused = client.post(base, json=body, headers=auth(world, "parent1"))
        assert refused.status_code == 422 and refused.json()["problems"][0]["field"] == field


def test_an_evaluation_is_given_once_and_averaged(setup: tuple[TestClient, World], engine: Engine) -> None:
    client, world = setup
    place = world.places["A"]
    path = f"/institutions/{place.institution_id}/classes/{place.confirmed_class_id}/evaluation"
    with sessionmaker(engine).begin() as s:
        _, secret = _parent_token(s, place.guardian_phone)
    family = {"Authorization": f"Bearer {secret}"}
    first = client.post(path, json={"stars": 4, "comment": "clear"}, headers=family)
    again = client.post(path, json={"stars": 4, "comment": "clear"}, headers=family)
    assert first.status_code == again.status_code == 201 and again.headers["Idempotent-Replayed"] == "true"
    changed = client.post(path, json={"stars": 2}, headers=family)
    assert changed.status_code == 409
    listed = client.get(f"/institutions/{place.institution_id}/evaluations", headers=auth(world, "school_a")).json()
    assert listed["summary"] == {"count": 1, "average_stars": 4.0, "by_stars": {"1": 0, "2": 0, "3": 0, "4": 1, "5": 0}}
    assert [e["comment"] for e in listed["items"]] == ["clear"]


def _parent_token(s: Session, phone: str) -> Any:
    from escrow.access.callers import Role
    from escrow.access.tokens import issue_token

    return issue_token(s, role=Role.PARENT, guardian_phone=phone, label="evaluation test")


def test_the_refund_preview_is_the_books_and_changes_nothing(setup: tuple[TestClient, World], engine: Engine) -> None:
    client, world = setup
    place = world.places["parent2"]
    contract = f"/institutions/{place.institution_id}/contracts/{place.contract_id}"
    with engine.connect() as conn:
        before = conn.scalar(text("SELECT count(*) FROM audit_record"))
    preview = client.get(f"{contract}/refund-preview", headers=auth(world, "parent2")).json()
    balance = client.get(f"{contract}/balance", headers=auth(world, "parent2")).json()
    with engine.connect() as conn:
        assert conn.scalar(text("SELECT count(*) FROM audit_record")) == before
    assert preview["held_fen"] == balance["held_fen"]
    assert preview["reserved_fen"] == preview["held_fen"] - preview["refundable_fen"] > 0  # two classes still wait
    assert preview["open_request_id"] == str(place.refund_request_id) and preview["can_request"] is False
    assert client.get(f"{contract}/refund-preview", headers=auth(world, "parent1")).status_code == 404
