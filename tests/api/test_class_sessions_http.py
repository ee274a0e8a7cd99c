"""A class session over HTTP: 201 with a class per student, a replay marked as such, and a refusal (409)
that names every student's problem and records nothing."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session, sessionmaker

from api.app import create_app
from escrow.access.callers import Role
from escrow.access.tokens import issue_token
from tests.flows.test_class_sessions import Group, make_group


@pytest.fixture
def client(engine: Engine) -> Iterator[TestClient]:
    with TestClient(create_app(engine)) as client:
        yield client


@pytest.fixture
def group(db: sessionmaker[Session]) -> Group:
    return make_group(db)


def _token(db: sessionmaker[Session], g: Group) -> dict[str, str]:
    with db.begin() as s:
        _, secret = issue_token(s, role=Role.INSTITUTION, institution_id=g.institution, label="sessions")
    return {"Authorization": f"Bearer {secret}"}


def test_a_session_is_recorded_once_and_a_replay_says_so(
    client: TestClient, db: sessionmaker[Session], group: Group
) -> None:
    auth = _token(db, group)
    body = {"course_id": str(group.course), "hours": 2, "contract_ids": [str(c) for c in group.contracts]}
    path = f"/institutions/{group.institution}/class-sessions"
    first = client.post(path, json=body, headers=auth | {"Idempotency-Key": "http-lesson-1"})
    assert first.status_code == 201, first.text
    assert len(first.json()["classes"]) == 3 and {c["status"] for c in first.json()["classes"]} == {"pending"}
    again = client.post(path, json=body, headers=auth | {"Idempotency-Key": "http-lesson-1"})
    assert again.headers["Idempotent-Replayed"] == "true" and again.json() == first.json()


def test_a_refused_session_names_each_student_and_records_nothing(
    client: TestClient, db: sessionmaker[Session], group: Group
) -> None:
    auth = _token(db, group)
    body = {
        "course_id": str(group.course),
        "hours": 3,
        "contract_ids": [str(c) for c in (*group.contracts, group.other)],
    }
    refused = client.post(
        f"/institutions/{group.institution}/class-sessions", json=body, headers=auth | {"Idempotency-Key": "http-2"}
    )
    assert refused.status_code == 409 and refused.json()["code"] == "class_session_refused"
    problems = refused.json()["problems"]
    assert len(problems) == 2 and any("王三" in p for p in problems) and any("李四" in p for p in problems)
    with db.begin() as s:
        count = text("SELECT count(*) FROM class_record WHERE institution_id = :i")
        assert s.scalar(count, {"i": group.institution}) == 0
