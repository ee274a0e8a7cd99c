"""Every route × every role × own, foreign and random ids, generated from one table.

A role the route is not for gets 403 whatever the ids; an allowed role gets its own objects and a
404 for anyone else's or for ids that do not exist. Writes outside one's scope change nothing.
A route without a row here fails the test.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session, sessionmaker

from api.app import create_app
from escrow.ids import new_id
from tests.factories import account_number, credit_code, phone
from tests.world import J1, J2, Place, World, build_world, today

REG, INST, PARENT, BANK = "regulator", "institution", "parent", "bank"
ALL = frozenset({REG, INST, PARENT, BANK})
TOKEN_OF = {REG: "regulator", INST: "school_a", PARENT: "parent1", BANK: "bank_a"}
PUBLIC = {"get_health", "get_readiness"}
NATIONAL = {"list_calendar_years", "load_calendar_year"}  # the official calendar is one for every jurisdiction
COUNTER = itertools.count(1)

Body = Callable[[Place], dict[str, Any]]


@dataclass(frozen=True)
class Row:
    method: str
    path: str
    roles: frozenset[str]
    body: Body | None = None
    query: Callable[[Place], dict[str, str]] | None = None
    ok: int = 200
    filters: bool = False
    changes: bool = False
    raw: Callable[[Place], bytes] | None = None
    """A transition: an own object may already have moved on, so 409 is as good as success here."""
    """A list whose query narrows it: out of scope it answers 200 with nothing in it."""


def policy_body(_: Place) -> dict[str, Any]:
    return {"effective_date": (today() + timedelta(days=next(COUNTER))).isoformat(), "max_hours": 50}


def institution_body(place: Place) -> dict[str, Any]:
    return {
        "name": "New school",
        "credit_code": credit_code(),
        "jurisdiction_code": place.jurisdiction,
        "custody_bank": "bank_a",
        "custody_account": account_number(),
    }


def course_body(_: Place) -> dict[str, Any]:
    return {"name": "Art", "category": "non_subject", "unit_price_fen": 5_000}


def contract_body(place: Place) -> dict[str, Any]:
    return {
        "course_id": str(place.course_id),
        "guardian": {"name": "Wang Fang", "phone": phone()},
        "student_name": "Wang Lei",
        "hours_bought": 10,
        "term_start": today().isoformat(),
        "term_end": (today() + timedelta(days=30)).isoformat(),
    }


def statement_file(place: Place) -> bytes:
    """An empty statement of the place's custody account for a day no other call uses."""
    day = (date(2020, 1, 1) + timedelta(days=next(COUNTER))).isoformat()
    return (
        "account,date,type,amount,reference\n"
        f"{place.custody_account},{day},opening,0.00,\n{place.custody_account},{day},closing,0.00,\n"
    ).encode()


def collection_body(_: Place) -> dict[str, Any]:
    return {"amount_fen": 100, "bank_reference": f"MATRIX-{next(COUNTER)}"}


def batch_body(place: Place) -> dict[str, Any]:
    n = next(COUNTER)
    item = {"contract_id": str(place.contract_id), "amount_fen": 100}
    return {"items": [item | {"bank_reference": f"MATRIX-B{n}", "idempotency_key": f"matrix-batch-{n}"}]}


INST_PATH = "/institutions/{institution_id}"
K = INST_PATH + "/contracts/{contract_id}"
CLS = INST_PATH + "/classes/{class_id}"
DISPUTED = INST_PATH + "/classes/{disputed_class_id}"
REQ = INST_PATH + "/refund-requests/{request_id}"
PAY = INST_PATH + "/payouts/{payout_id}"
COMPLAINT = INST_PATH + "/complaints/{complaint_id}"

TABLE: dict[str, Row] = {
    "list_calendar_years": Row("GET", "/calendar/years", ALL),
    "load_calendar_year": Row(
        "PUT",
        "/calendar/years/2097",
        frozenset({REG}),
        lambda _: {"source": "matrix", "days": [{"date": "2097-01-01", "kind": "holiday"}]},
    ),
    "list_jurisdictions": Row("GET", "/jurisdictions", frozenset({REG})),
    "list_policy_versions": Row("GET", "/jurisdictions/{jurisdiction}/policies", frozenset({REG})),
    "set_policy": Row("POST", "/jurisdictions/{jurisdiction}/policies", frozenset({REG}), policy_body, ok=201),
    "get_policy_in_force": Row("GET", "/jurisdictions/{jurisdiction}/policy", frozenset({REG})),
    "register_institution": Row("POST", "/institutions", frozenset({REG}), institution_body, ok=201),
    "list_institutions": Row(
        "GET", "/institutions", ALL, query=lambda p: {"jurisdiction_code": p.jurisdiction}, filters=True
    ),
    "get_institution": Row("GET", INST_PATH, ALL),
    "get_institution_balances": Row("GET", INST_PATH + "/balances", frozenset({REG, INST, BANK})),
    "create_course": Row("POST", INST_PATH + "/courses", frozenset({INST}), course_body, ok=201),
    "list_courses": Row("GET", INST_PATH + "/courses", ALL),
    "get_course": Row("GET", INST_PATH + "/courses/{course_id}", ALL),
    "sign_contract": Row("POST", INST_PATH + "/contracts", frozenset({INST}), contract_body, ok=201),
    "list_contracts": Row("GET", "/contracts", ALL, query=lambda p: {"institution_id": str(p.institution_id)}),
    "get_contract": Row("GET", K, ALL),
    "get_contract_balance": Row("GET", K + "/balance", ALL),
    "register_collection": Row("POST", K + "/collections", frozenset({INST}), collection_body, ok=201),
    "import_collections": Row("POST", INST_PATH + "/collection-batches", frozenset({INST}), batch_body, ok=201),
    "list_collections": Row("GET", K + "/collections", ALL),
    "get_collection": Row("GET", INST_PATH + "/collections/{collection_id}", ALL),
    "list_contract_transactions": Row("GET", K + "/transactions", ALL),
    "list_transactions": Row("GET", INST_PATH + "/transactions", frozenset({REG, INST, BANK})),
    "get_transaction": Row("GET", INST_PATH + "/transactions/{transaction_id}", frozenset({REG, INST, BANK})),
    "record_class": Row("POST", K + "/classes", frozenset({INST}), lambda _: {"hours": 1}, ok=201, changes=True),
    "record_class_session": Row(
        "POST",
        INST_PATH + "/class-sessions",
        frozenset({INST}),
        lambda p: {"course_id": str(p.course_id), "contract_ids": [str(p.contract_id)], "hours": 1},
        ok=201,
        changes=True,
    ),
    "list_classes": Row("GET", K + "/classes", ALL),
    "confirm_class": Row("POST", CLS + "/confirmation", frozenset({PARENT}), changes=True),
    "dispute_class": Row("POST", CLS + "/dispute", frozenset({PARENT}), lambda _: {"reason": "x"}, changes=True),
    "resolve_dispute": Row(
        "POST", DISPUTED + "/resolution", frozenset({REG}), lambda _: {"outcome": "upheld", "note": "n"}, changes=True
    ),
    "request_refund": Row(
        "POST", K + "/refund-requests", frozenset({PARENT}), lambda _: {"reason": "r"}, ok=201, changes=True
    ),
    "list_refund_requests": Row(
        "GET", INST_PATH + "/refund-requests", ALL, query=lambda p: {"contract_id": str(p.contract_id)}
    ),
    "approve_refund": Row("POST", REQ + "/approval", frozenset({INST}), changes=True),
    "reject_refund": Row("POST", REQ + "/rejection", frozenset({INST}), lambda _: {"reason": "r"}, changes=True),
    "request_payout": Row("POST", INST_PATH + "/payouts", frozenset({INST}), ok=201, changes=True),
    "list_payouts": Row("GET", INST_PATH + "/payouts", frozenset({REG, INST, BANK})),
    "confirm_payout_executed": Row(
        "POST", PAY + "/execution", frozenset({BANK, REG}), lambda _: {"bank_reference": "B-1"}, changes=True
    ),
    "report_payout_failed": Row(
        "POST", PAY + "/failure", frozenset({BANK, REG}), lambda _: {"reason": "r"}, changes=True
    ),
    "list_holds": Row("GET", INST_PATH + "/holds", frozenset({REG, INST, BANK})),
    "list_alerts": Row(
        "GET", "/alerts", frozenset({REG}), query=lambda p: {"institution_id": str(p.institution_id)}, filters=True
    ),
    "get_alert": Row("GET", "/alerts/{alert_id}", frozenset({REG})),
    "acknowledge_alert": Row(
        "POST", "/alerts/{alert_id}/acknowledgement", frozenset({REG}), lambda _: {"note": "looking"}, changes=True
    ),
    "resolve_alert": Row(
        "POST", "/alerts/{alert_id}/resolution", frozenset({REG}), lambda _: {"note": "done"}, changes=True
    ),
    "import_statements": Row("POST", "/statements", frozenset({REG, BANK}), raw=statement_file, ok=201),
    "list_statements": Row(
        "GET",
        "/statements",
        frozenset({REG, INST, BANK}),
        query=lambda p: {"institution_id": str(p.institution_id)},
        filters=True,
    ),
    "get_statement": Row("GET", INST_PATH + "/statements/{statement_id}", frozenset({REG, INST, BANK})),
    "get_held_funds": Row(
        "GET",
        "/reports/held-funds",
        frozenset({REG}),
        query=lambda p: {"jurisdiction_code": p.jurisdiction},
        filters=True,
    ),
    "get_held_funds_aging": Row(
        "GET",
        "/reports/held-funds/aging",
        frozenset({REG}),
        query=lambda p: {"jurisdiction_code": p.jurisdiction},
        filters=True,
    ),
    "list_held_contracts": Row("GET", "/reports" + INST_PATH + "/contracts", frozenset({REG})),
    "submit_complaint": Row(
        "POST",
        INST_PATH + "/complaints",
        frozenset({PARENT}),
        lambda _: {"category": "teaching", "body": "classes cancelled"},
        ok=201,
        changes=True,
    ),
    "list_complaints": Row(
        "GET",
        "/complaints",
        frozenset({REG, INST, PARENT}),
        query=lambda p: {"institution_id": str(p.institution_id)},
        filters=True,
    ),
    "get_complaint": Row("GET", COMPLAINT, frozenset({REG, INST, PARENT})),
    "assign_complaint": Row(
        "POST", COMPLAINT + "/assignment", frozenset({REG}), lambda p: {"assignee_id": str(p.assignee_id)}, changes=True
    ),
    "reply_to_complaint": Row(
        "POST", COMPLAINT + "/messages", frozenset({REG, INST, PARENT}), lambda _: {"body": "b"}, ok=201, changes=True
    ),
    "close_complaint": Row("POST", COMPLAINT + "/closure", frozenset({REG}), lambda _: {"note": "n"}, changes=True),
    "evaluate_class": Row(
        "POST",
        INST_PATH + "/classes/{confirmed_class_id}/evaluation",
        frozenset({PARENT}),
        lambda _: {"stars": 4},
        ok=201,
        changes=True,
    ),
    "list_evaluations": Row("GET", INST_PATH + "/evaluations", frozenset({REG, INST})),
    "preview_refund": Row("GET", K + "/refund-preview", ALL),
    # last: they freeze and close the caller's own institution
    "place_hold": Row("POST", INST_PATH + "/holds", frozenset({REG}), lambda _: {"reason": "r"}, ok=201, changes=True),
    "lift_hold": Row(
        "POST", INST_PATH + "/holds/{hold_id}/lift", frozenset({REG}), lambda _: {"reason": "r"}, changes=True
    ),
    "close_institution": Row("POST", INST_PATH + "/closure", frozenset({REG}), lambda _: {"reason": "r"}, changes=True),
    "settle_closed_institution": Row(
        "POST", INST_PATH + "/settlement", frozenset({REG}), lambda _: {"reason": "r"}, ok=201, changes=True
    ),
}


def random_place() -> Place:
    return Place("999999", *(new_id() for _ in range(5)), phone(), *(new_id() for _ in range(6)))


def target(world: World, role: str, kind: str) -> Place:
    """Own: the caller's objects. Foreign: institution B's (outside every test caller's scope)."""
    if kind == "random":
        return random_place()
    if kind == "foreign":
        return world.places["B"]
    if kind == "peer":  # another family's contract at the same institution
        return world.places["parent2"]
    return world.places["parent1" if role == PARENT else "A"]


@pytest.fixture(scope="module")
def setup(engine: Engine) -> Iterator[tuple[TestClient, World, sessionmaker[Session]]]:
    db = sessionmaker(engine)
    with db.begin() as session:
        world = build_world(session)
    with TestClient(create_app(engine)) as client:
        yield client, world, db


def call(client: TestClient, world: World, role: str, row: Row, place: Place) -> Any:
    path = row.path.format(
        jurisdiction=place.jurisdiction,
        institution_id=place.institution_id,
        course_id=place.course_id,
        contract_id=place.contract_id,
        collection_id=place.collection_id,
        transaction_id=place.transaction_id,
        class_id=place.class_id,
        disputed_class_id=place.disputed_class_id,
        request_id=place.refund_request_id,
        payout_id=place.payout_id,
        hold_id=place.hold_id,
        alert_id=place.alert_id,
        statement_id=place.statement_id,
        complaint_id=place.complaint_id,
        confirmed_class_id=place.confirmed_class_id,
    )
    headers = {"Authorization": f"Bearer {world.tokens[TOKEN_OF[role]]}", "Idempotency-Key": f"m-{next(COUNTER)}"}
    body = row.body(place) if row.body else None
    content = row.raw(place) if row.raw else None
    return client.request(
        row.method, path, json=body, content=content, params=row.query(place) if row.query else None, headers=headers
    )


def expected(row: Row, role: str, kind: str) -> int:
    if role not in row.roles:
        return 403
    return row.ok if kind == "own" else 404


def counts(db: sessionmaker[Session]) -> dict[str, int]:
    tables = ["institution", "course", "contract", "collection", "policy_version", "journal_transaction", "posting"]
    tables += ["complaint", "complaint_message", "evaluation"]
    with db.begin() as s:
        return {t: s.scalar(text(f"SELECT count(*) FROM {t}")) or 0 for t in tables}


def test_every_route_has_a_row(setup: tuple[TestClient, World, sessionmaker[Session]]) -> None:
    client, _, _ = setup
    spec = client.get("/openapi.json").json()
    operations = {op["operationId"] for item in spec["paths"].values() for op in item.values()}
    assert operations - PUBLIC == set(TABLE), "add a row to TABLE for every new route"


def test_outside_scope_is_not_found_and_changes_nothing(setup: tuple[TestClient, World, sessionmaker[Session]]) -> None:
    client, world, db = setup
    before = counts(db)
    wrong = []
    for (op, row), role, kind in itertools.product(TABLE.items(), sorted(ALL), ["foreign", "random", "peer"]):
        if kind == "peer" and role != PARENT:
            continue
        family_paths = ("{contract_id}", "{collection_id}", "{complaint_id}", "{confirmed_class_id}")
        if kind == "peer" and not (any(p in row.path for p in family_paths) or op == "list_contracts"):
            continue  # a peer family shares the institution; only contract routes tell them apart
        response = call(client, world, role, row, target(world, role, kind))
        want = expected(row, role, kind)
        listing = row.filters or op == "list_jurisdictions" or (kind == "peer" and op == "list_contracts")
        if op in NATIONAL and want == 404:
            want = row.ok  # no scope to be outside of
        elif listing and want == 404:
            want = 200  # nothing to be outside of: the listing is filtered instead (peers: checked below)
            if row.filters and response.status_code == 200:
                assert response.json()["items"] == [], f"{role} {kind} {op} lists what is not theirs"
        if response.status_code != want:
            wrong.append(f"{role:<11} {kind:<7} {op}: {response.status_code}, want {want}")
        assert response.headers["content-type"].startswith("application/"), op
    assert not wrong, "\n".join(wrong)
    assert counts(db) == before


def test_own_objects_are_served_to_the_roles_they_are_for(
    setup: tuple[TestClient, World, sessionmaker[Session]],
) -> None:
    client, world, _ = setup
    wrong = []
    for (op, row), role in itertools.product(TABLE.items(), sorted(ALL)):
        response = call(client, world, role, row, target(world, role, "own"))
        want = expected(row, role, "own")
        if row.changes and want != 403 and response.status_code == 409:
            continue
        if response.status_code != want:
            wrong.append(f"{role:<11} {op}: {response.status_code} {response.text[:120]}, want {want}")
    assert not wrong, "\n".join(wrong)


def test_a_parent_lists_only_their_own_contracts(setup: tuple[TestClient, World, sessionmaker[Session]]) -> None:
    client, world, _ = setup
    for name, other in (("parent1", "parent2"), ("parent2", "parent1")):
        response = client.get("/contracts", headers={"Authorization": f"Bearer {world.tokens[name]}"})
        ids = {c["id"] for c in response.json()["items"]}
        assert str(world.places[name].contract_id) in ids
        assert str(world.places[other].contract_id) not in ids


def test_jurisdiction_scope(setup: tuple[TestClient, World, sessionmaker[Session]]) -> None:
    client, world, _ = setup
    auth = {"Authorization": f"Bearer {world.tokens['regulator']}"}
    assert [j["code"] for j in client.get("/jurisdictions", headers=auth).json()["items"]] == [J1]
    assert client.get(f"/jurisdictions/{J2}/policy", headers=auth).status_code == 404
