"""Contracts from signing to collection over HTTP, narrated; and every kind of bad input refused."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session, sessionmaker

from api.app import create_app
from escrow.access.callers import Role
from escrow.access.tokens import issue_token
from escrow.db.database import make_sessionmaker
from escrow.registry.jurisdictions import add_jurisdiction
from escrow.rules.calendar import local_date
from tests.factories import account_number, credit_code, phone

J = "310112"


class Api:
    def __init__(self, client: TestClient, db: sessionmaker[Session]) -> None:
        self.client, self.db = client, db
        with db.begin() as s:
            add_jurisdiction(s, code=J, name="Minhang District")
            _, self.regulator = issue_token(s, role=Role.REGULATOR, jurisdictions=[J])

    def token(self, **kw: Any) -> str:
        with self.db.begin() as s:
            return issue_token(s, **kw)[1]

    def call(self, method: str, path: str, token: str | None, body: Any = None, **headers: str) -> Any:
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return self.client.request(method, path, json=body, headers=headers)


@pytest.fixture
def api(engine: Engine) -> Iterator[Api]:
    with TestClient(create_app(engine)) as client:
        yield Api(client, make_sessionmaker(engine))


def school(api: Api) -> tuple[str, str]:
    """Register a school in J; returns its id and a token for it."""
    r = api.call(
        "POST",
        "/institutions",
        api.regulator,
        {
            "name": "Sunshine Maths",
            "credit_code": credit_code(),
            "jurisdiction_code": J,
            "custody_bank": "icbc_minhang",
            "custody_account": account_number(),
        },
    )
    assert r.status_code == 201, r.text
    return r.json()["id"], api.token(role=Role.INSTITUTION, institution_id=r.json()["id"])


def test_a_contract_from_signing_to_collection(api: Api) -> None:
    inst, token = school(api)
    base = f"/institutions/{inst}"
    # A maths course guided at 100.00 yuan an hour may be priced up to 110.00, not 110.01.
    refused = api.call(
        "POST",
        f"{base}/courses",
        token,
        {"name": "Maths 5", "category": "subject", "unit_price_fen": 11_001, "guide_price_fen": 10_000},
    )
    assert refused.status_code == 422 and refused.json()["code"] == "policy_violation"
    assert "at most 11000 fen" in refused.json()["detail"]
    course = api.call(
        "POST",
        f"{base}/courses",
        token,
        {"name": "Maths 5", "category": "subject", "unit_price_fen": 11_000, "guide_price_fen": 10_000},
    ).json()

    # A family buys 50 hours with 10 bonus hours: 60 in all, exactly the cap. 61 is refused.
    guardian_phone = phone()
    contract = {
        "course_id": course["id"],
        "guardian": {"name": "Zhang Wei", "phone": guardian_phone, "id_number": "11010519491231002X"},
        "student_name": "Zhang Xiao",
        "hours_bought": 50,
        "bonus_hours": 11,
        "term_start": "2026-12-01",
        "term_end": "2027-02-28",
    }
    over = api.call("POST", f"{base}/contracts", token, contract)
    assert over.status_code == 422 and "61 class hours" in over.json()["detail"]
    signed = api.call("POST", f"{base}/contracts", token, {**contract, "bonus_hours": 10})
    assert signed.status_code == 201, signed.text
    c = signed.json()
    assert (c["price_fen"], c["held_fen"], c["collected_fen"]) == (550_000, 0, 0)
    # the school sees the family's personal data masked; the family and the regulator do not
    assert c["guardian"]["phone"] == guardian_phone[:3] + "****" + guardian_phone[-4:]
    assert c["guardian"]["id_number"] == "110***********002X"
    parent = api.token(role=Role.PARENT, guardian_phone=guardian_phone)
    path = f"{base}/contracts/{c['id']}"
    assert api.call("GET", path, parent).json()["guardian"]["phone"] == guardian_phone
    assert api.call("GET", path, api.regulator).json()["guardian"]["id_number"] == "11010519491231002X"

    # The family pays 3,000.00 yuan, then the remaining 2,500.00.
    first = api.call(
        "POST",
        f"{path}/collections",
        token,
        {"amount_fen": 300_000, "bank_reference": "ICBC-0001"},
        **{"Idempotency-Key": "pay-1"},
    )
    assert first.status_code == 201, first.text
    between = datetime.now(UTC)
    second = api.call(
        "POST",
        f"{path}/collections",
        token,
        {"amount_fen": 250_000, "bank_reference": "ICBC-0002"},
        **{"Idempotency-Key": "pay-2"},
    )
    assert second.status_code == 201

    # a retry of the first payment returns it again and moves nothing
    retry = api.call(
        "POST",
        f"{path}/collections",
        token,
        {"amount_fen": 300_000, "bank_reference": "ICBC-0001"},
        **{"Idempotency-Key": "pay-1"},
    )
    assert (retry.status_code, retry.json()["id"]) == (201, first.json()["id"])
    assert retry.headers["Idempotent-Replayed"] == "true"
    reused = api.call(
        "POST",
        f"{path}/collections",
        token,
        {"amount_fen": 1, "bank_reference": "ICBC-0003"},
        **{"Idempotency-Key": "pay-1"},
    )
    assert (reused.status_code, reused.json()["code"]) == (409, "idempotency_key_reused")
    # one fen more than the price is refused
    over_price = api.call(
        "POST",
        f"{path}/collections",
        token,
        {"amount_fen": 1, "bank_reference": "ICBC-0004"},
        **{"Idempotency-Key": "pay-4"},
    )
    assert over_price.status_code == 422 and "above its price of 550000 fen" in over_price.json()["detail"]

    assert api.call("GET", f"{path}/balance", parent).json()["held_fen"] == 550_000
    as_of = api.client.get(
        f"{path}/balance", params={"as_of": between.isoformat()}, headers={"Authorization": f"Bearer {parent}"}
    ).json()
    assert as_of["held_fen"] == 300_000
    for odd in ("1443-05-06T23:51:01+21:18", "0001-01-01T00:03:06+01:21"):  # no real clock; no UTC year 0
        refused = api.client.get(
            f"{path}/balance", params={"as_of": odd}, headers={"Authorization": f"Bearer {parent}"}
        )
        assert refused.status_code == 422, refused.text
    balances = api.call("GET", f"{base}/balances", token).json()
    assert balances["custody_cash_fen"] == balances["held_fen"] == balances["owed_fen"] == 550_000
    transactions = api.call("GET", f"{path}/transactions", parent).json()["items"]
    assert [sorted(p["amount_fen"] for p in t["postings"]) for t in transactions] == [
        [-300_000, 300_000],
        [-250_000, 250_000],
    ]
    assert len(api.call("GET", f"{path}/collections", token).json()["items"]) == 2


def test_caps_are_judged_by_the_policy_version_in_force_when_signed(api: Api) -> None:
    school(api)
    tomorrow = local_date(datetime.now(UTC)) + timedelta(days=1)  # Beijing's tomorrow: between 00:00 and 08:00
    # there, UTC's tomorrow is Beijing's today
    # from tomorrow this district allows 40 hours; today the national 60 still apply
    r = api.call(
        "POST", f"/jurisdictions/{J}/policies", api.regulator, {"effective_date": tomorrow.isoformat(), "max_hours": 40}
    )
    assert r.status_code == 201, r.text
    in_force = api.client.get(
        f"/jurisdictions/{J}/policy",
        params={"on": tomorrow.isoformat()},
        headers={"Authorization": f"Bearer {api.regulator}"},
    ).json()
    assert (in_force["max_hours"], in_force["effective_date"]) == (40, tomorrow.isoformat())
    today = api.call("GET", f"/jurisdictions/{J}/policy", api.regulator).json()
    assert (today["max_hours"], today["effective_date"]) == (60, None)  # the national default
    past = api.call(
        "POST", f"/jurisdictions/{J}/policies", api.regulator, {"effective_date": "2020-01-01", "max_hours": 10}
    )
    assert past.status_code == 422 and "in the past" in past.json()["detail"]
    again = api.call(
        "POST", f"/jurisdictions/{J}/policies", api.regulator, {"effective_date": tomorrow.isoformat(), "max_hours": 30}
    )
    assert again.status_code == 409


def counts(db: sessionmaker[Session]) -> tuple[int, ...]:
    with db.begin() as s:
        return tuple(
            s.execute(
                text(
                    "SELECT (SELECT count(*) FROM institution), (SELECT count(*) FROM course),"
                    " (SELECT count(*) FROM contract), (SELECT count(*) FROM collection),"
                    " (SELECT count(*) FROM posting), (SELECT count(*) FROM idempotency_record)"
                )
            ).one()
        )


def test_bad_input_is_refused_clearly_and_changes_nothing(api: Api) -> None:
    inst, token = school(api)
    course = api.call(
        "POST",
        f"/institutions/{inst}/courses",
        token,
        {"name": "Chess", "category": "non_subject", "unit_price_fen": 5_000},
    ).json()
    contract = api.call(
        "POST",
        f"/institutions/{inst}/contracts",
        token,
        {
            "course_id": course["id"],
            "guardian": {"name": "Liu Yang", "phone": phone()},
            "student_name": "Liu Xin",
            "hours_bought": 10,
            "term_start": "2026-12-01",
            "term_end": "2027-01-31",
        },
    ).json()
    path = f"/institutions/{inst}/contracts/{contract['id']}/collections"
    good = {"amount_fen": 1_000, "bank_reference": "REF-1"}
    before = counts(api.db)

    def refused(status: int, code: str, response: Any) -> None:
        assert response.status_code == status, response.text
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["code"] == code and response.json()["detail"]

    key = {"Idempotency-Key": "bad-1"}
    for extra in ({"id": "x"}, {"status": "paid"}, {"held_fen": 10**9}, {"transaction_id": contract["id"]}):
        refused(422, "invalid_request", api.call("POST", path, token, {**good, **extra}, **key))
    for amount in (0, -1, 10**30, "1000", 1.5, True, None):
        refused(422, "invalid_request", api.call("POST", path, token, {**good, "amount_fen": amount}, **key))
    refused(422, "invalid_request", api.call("POST", path, token, good))  # no Idempotency-Key
    raw = api.client.post(
        path,
        content=b'{"amount_fen": 10',
        headers={"Authorization": f"Bearer {token}", "Idempotency-Key": "bad-2", "Content-Type": "application/json"},
    )
    refused(422, "invalid_request", raw)
    refused(422, "invalid_request", api.call("POST", path, token, [good], **key))
    missing = f"/institutions/{inst}/contracts/01a22580-0000-7000-8000-000000000000/collections"
    refused(404, "not_found", api.call("POST", missing, token, good, **key))
    refused(422, "invalid_request", api.call("POST", "/institutions/not-a-uuid/courses", token, {}))
    # mass assignment when signing: no ids, statuses or balances from the caller
    refused(
        422,
        "invalid_request",
        api.call(
            "POST",
            f"/institutions/{inst}/contracts",
            token,
            {
                "course_id": course["id"],
                "guardian": {"name": "A", "phone": phone()},
                "student_name": "B",
                "hours_bought": 1,
                "term_start": "2026-12-01",
                "term_end": "2026-12-31",
                "price_fen": 1,
            },
        ),
    )

    # tokens: none, unknown, revoked, expired
    refused(401, "unauthenticated", api.call("POST", path, None, good, **key))
    refused(401, "unauthenticated", api.call("POST", path, "esc_not-a-real-token", good, **key))
    with api.db.begin() as s:
        row, revoked = issue_token(s, role=Role.INSTITUTION, institution_id=inst)
        _, expired = issue_token(
            s, role=Role.INSTITUTION, institution_id=inst, expires_at=datetime.now(UTC) - timedelta(seconds=1)
        )
    with api.db.begin() as s:
        from escrow.access.tokens import revoke_token

        revoke_token(s, token_id=row.id, now=datetime.now(UTC))
    revoked_response = api.call("POST", path, revoked, good, **key)
    refused(401, "unauthenticated", revoked_response)
    assert "revoked" in revoked_response.json()["detail"]
    assert revoked_response.headers["WWW-Authenticate"].startswith("Bearer")
    refused(401, "unauthenticated", api.call("POST", path, expired, good, **key))
    # a bad token is told before a bad body, a missing header or a malformed path
    for bad_token in (None, "esc_not-a-real-token", revoked, expired):
        refused(401, "unauthenticated", api.call("POST", path, bad_token, {**good, "amount_fen": -1}, **key))
        refused(401, "unauthenticated", api.call("POST", path, bad_token, good))
        refused(401, "unauthenticated", api.call("POST", "/institutions/not-a-uuid/courses", bad_token, {}))

    # non-subject training: 5,000 yuan per collection at most (the contract is 500.00 yuan, so
    # here the price binds first); a school on hold takes no new money
    with api.db.begin() as s:
        s.execute(text("UPDATE institution SET status = 'on_hold' WHERE id = :i"), {"i": inst})
    refused(409, "institution_on_hold", api.call("POST", path, token, good, **key))
    assert counts(api.db) == before
    with api.db.begin() as s:
        s.execute(text("UPDATE institution SET status = 'active' WHERE id = :i"), {"i": inst})
    assert api.call("POST", path, token, good, **key).status_code == 201
    refused(409, "conflict", api.call("POST", path, token, good, **{"Idempotency-Key": "bad-3"}))  # same bank slip
    assert json.loads(api.call("GET", f"/institutions/{inst}/balances", token).text)["held_fen"] == 1_000


def test_a_write_refused_at_commit_is_a_problem_and_leaves_nothing(api: Api) -> None:
    """The endpoint commits before the response goes out: a commit PostgreSQL refuses (here a deferred
    check raising a serialization failure) is a 503 to retry, never a 201 for something not stored."""
    inst, token = school(api)
    refuse = (
        "CREATE FUNCTION test_refuse_at_commit() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
        " RAISE EXCEPTION 'refused at commit' USING ERRCODE = 'serialization_failure'; END $$;"
        " CREATE CONSTRAINT TRIGGER test_refuse_at_commit AFTER INSERT ON course DEFERRABLE INITIALLY DEFERRED"
        " FOR EACH ROW WHEN (NEW.name = 'Refused at commit') EXECUTE FUNCTION test_refuse_at_commit()"
    )
    with api.db.begin() as s:
        s.execute(text(refuse))
    try:
        before = counts(api.db)
        body = {"name": "Refused at commit", "category": "non_subject", "unit_price_fen": 5_000}
        r = api.call("POST", f"/institutions/{inst}/courses", token, body)
        assert r.status_code == 503, r.text
        assert r.headers["content-type"] == "application/problem+json"
        assert r.json()["code"] == "database_unavailable" and r.headers["Retry-After"] == "1"
        assert counts(api.db) == before
        # the same worker goes on serving: the next write commits
        ok = api.call("POST", f"/institutions/{inst}/courses", token, {**body, "name": "Chess"})
        assert ok.status_code == 201, ok.text
    finally:
        with api.db.begin() as s:
            s.execute(text("DROP TRIGGER test_refuse_at_commit ON course; DROP FUNCTION test_refuse_at_commit()"))


def test_every_405_names_the_allowed_methods_and_head_healthz_answers(api: Api) -> None:
    assert api.client.head("/healthz").status_code == 200
    inst = "/institutions/00000000-0000-0000-0000-000000000000"
    for method, path, allow in (
        ("DELETE", "/healthz", "GET, HEAD"),
        ("POST", "/readyz", "GET"),
        ("PUT", "/alerts", "GET"),
        ("DELETE", inst + "/payouts", "GET, POST"),
        ("GET", inst + "/closure", "POST"),
        ("PATCH", "/calendar/years/2027", "PUT"),
    ):
        r = api.client.request(method, path)
        assert (r.status_code, r.headers.get("allow")) == (405, allow), (method, path)
    spec = api.client.get("/openapi.json").json()
    for template, operations in spec["paths"].items():
        path = template.replace("{", "").replace("}", "")  # any text stands for a path parameter here
        path = "/".join("00000000-0000-0000-0000-000000000000" if "_id" in p else p for p in path.split("/"))
        served = {m.upper() for m in operations} | ({"HEAD"} if path == "/healthz" else set())
        r = api.client.request("OPTIONS", path)
        assert (r.status_code, set(r.headers["allow"].split(", "))) == (405, served), template


def test_recording_a_class_is_idempotent_and_needs_a_key(api: Api) -> None:
    """Two identical POSTs with one key record one class; without a key, nothing is recorded."""
    inst, token = school(api)
    base = f"/institutions/{inst}"
    course = api.call(
        "POST",
        f"{base}/courses",
        token,
        {"name": "Maths 5", "category": "subject", "unit_price_fen": 10_000, "guide_price_fen": 10_000},
    ).json()
    guardian = {"name": "Zhang Wei", "phone": phone(), "id_number": "11010519491231002X"}
    contract = api.call(
        "POST",
        f"{base}/contracts",
        token,
        {
            "course_id": course["id"],
            "guardian": guardian,
            "student_name": "Zhang Xiao",
            "hours_bought": 10,
            "bonus_hours": 0,
            "term_start": (local_date(datetime.now(UTC)) - timedelta(days=1)).isoformat(),
            "term_end": (local_date(datetime.now(UTC)) + timedelta(days=60)).isoformat(),
        },
    ).json()
    classes = f"{base}/contracts/{contract['id']}/classes"
    missing = api.call("POST", classes, token, {"hours": 1})
    assert (missing.status_code, missing.json()["code"]) == (422, "invalid_request")
    first = api.call("POST", classes, token, {"hours": 1}, **{"Idempotency-Key": "class-1"})
    again = api.call("POST", classes, token, {"hours": 1}, **{"Idempotency-Key": "class-1"})
    assert first.status_code == 201, first.text
    assert (again.json()["id"], again.headers.get("Idempotent-Replayed")) == (first.json()["id"], "true")
    other = api.call("POST", classes, token, {"hours": 2}, **{"Idempotency-Key": "class-1"})
    assert (other.status_code, other.json()["code"]) == (409, "idempotency_key_reused")
    assert len(api.call("GET", classes, token).json()["items"]) == 1
