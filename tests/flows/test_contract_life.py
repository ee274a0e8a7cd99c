"""The whole life of a contract over HTTP, narrated: every balance exact to the fen at every step,
and the institution's custody cash equal to everything it owes at every step."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from itertools import count
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from api.app import create_app
from escrow.access.callers import Role
from escrow.access.tokens import issue_token
from escrow.db.database import make_sessionmaker
from escrow.registry.jurisdictions import add_jurisdiction
from tests.factories import account_number, credit_code, phone

J = "310115"
KEYS = count(1)


def day(offset: int) -> str:
    """Today plus `offset` days, as the API takes a date."""
    return (datetime.now(UTC).date() + timedelta(days=offset)).isoformat()


class Life:
    def __init__(self, client: TestClient, engine: Engine) -> None:
        self.client, self.db = client, make_sessionmaker(engine)
        with self.db.begin() as s:
            add_jurisdiction(s, code=J, name="Pudong New Area")
            _, self.regulator = issue_token(s, role=Role.REGULATOR, jurisdictions=[J])
            _, self.bank = issue_token(s, role=Role.BANK, bank_code="bank_pudong")

    def token(self, **kw: Any) -> str:
        with self.db.begin() as s:
            return issue_token(s, **kw)[1]

    def post(self, token: str, path: str, body: Any = None, status: int = 200) -> Any:
        r = self.client.post(
            path, json=body, headers={"Authorization": f"Bearer {token}", "Idempotency-Key": f"k{next(KEYS)}"}
        )
        assert r.status_code == status, r.text
        return r.json()

    def get(self, token: str, path: str) -> Any:
        r = self.client.get(path, headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 200, r.text
        return r.json()

    def run(self, job: str) -> None:
        from escrow.supervision.jobs import run_job

        with self.db.begin() as s:
            run_job(s, name=job, now=datetime.now(UTC))

    def fifteen_working_days_pass(self, class_id: str) -> None:
        """The books as they stand once the class's window is over (the ledger books nothing ahead of
        the clock, so the window is moved back instead)."""
        with self.db.begin() as s:
            s.execute(text("UPDATE class_record SET confirm_by = current_date - 1 WHERE id = :c"), {"c": class_id})


@pytest.fixture
def life(engine: Engine) -> Iterator[Life]:
    with TestClient(create_app(engine)) as client:
        yield Life(client, engine)


def test_sixty_hours_from_payment_to_refund(life: Life) -> None:
    inst = life.post(
        life.regulator,
        "/institutions",
        {
            "name": "Bright Future English",
            "credit_code": credit_code(),
            "jurisdiction_code": J,
            "custody_bank": "bank_pudong",
            "custody_account": account_number(),
        },
        201,
    )["id"]
    school = life.token(role=Role.INSTITUTION, institution_id=inst)
    base = f"/institutions/{inst}"
    course = life.post(
        school,
        f"{base}/courses",
        {"name": "English 3", "category": "subject", "unit_price_fen": 8_000, "guide_price_fen": 8_000},
        201,
    )
    mother = phone()
    contract = life.post(
        school,
        f"{base}/contracts",
        {
            "course_id": course["id"],
            "guardian": {"name": "Wu Min", "phone": mother},
            "student_name": "Wu Tong",
            "hours_bought": 60,
            "term_start": day(-20),
            "term_end": day(60),
        },
        201,
    )
    parent = life.token(role=Role.PARENT, guardian_phone=mother)
    k = f"{base}/contracts/{contract['id']}"

    def books(**expected: int) -> None:
        b = life.get(school, f"{base}/balances")
        assert b["custody_cash_fen"] == b["owed_fen"], "custody must equal everything owed"
        for name, fen in expected.items():
            assert b[f"{name}_fen"] == fen, f"{name}: {b[f'{name}_fen']} != {fen}"

    # 1. The mother pays 4,800.00 yuan for 60 hours (80.00 an hour): all of it held for her.
    life.post(school, f"{k}/collections", {"amount_fen": 480_000, "bank_reference": "PD-0001"}, 201)
    books(custody_cash=480_000, held=480_000, releasable=0)

    # 2. Two classes of 2 hours, confirmed by her: 480000 * 2 / 60 = 16000 fen each is released.
    c1 = life.post(school, f"{k}/classes", {"hours": 2, "given_on": day(-6)}, 201)
    c2 = life.post(school, f"{k}/classes", {"hours": 2, "given_on": day(-5)}, 201)
    books(held=480_000, releasable=0)  # recorded, not yet confirmed: nothing moves
    for c in (c1, c2):
        assert life.post(parent, f"{base}/classes/{c['id']}/confirmation")["amount_fen"] == 16_000
    books(custody_cash=480_000, held=448_000, releasable=32_000)

    # 3. A 3-hour class she never answers: deemed confirmed 15 working days after it was recorded (24,000 fen).
    c3 = life.post(school, f"{k}/classes", {"hours": 3, "given_on": day(-4)}, 201)
    life.run("deem_classes_confirmed")
    classes = {c["id"]: c for c in life.get(parent, f"{k}/classes")["items"]}
    assert classes[c3["id"]]["status"] == "pending", "dated days back, it still waits her 15 working days"
    life.fifteen_working_days_pass(c3["id"])
    life.run("deem_classes_confirmed")
    classes = {c["id"]: c for c in life.get(parent, f"{k}/classes")["items"]}
    assert (classes[c3["id"]]["confirmed_how"], classes[c3["id"]]["amount_fen"]) == ("deemed", 24_000)
    books(held=424_000, releasable=56_000)

    # 4. A 2-hour class she disputes; release stops. The bureau upholds her: the hours come back.
    c4 = life.post(school, f"{k}/classes", {"hours": 2, "given_on": day(-1)}, 201)
    life.post(parent, f"{base}/classes/{c4['id']}/dispute", {"reason": "the teacher did not come"})
    upheld = life.post(
        life.regulator, f"{base}/classes/{c4['id']}/resolution", {"outcome": "upheld", "note": "no attendance record"}
    )
    assert (upheld["status"], upheld["amount_fen"]) == ("upheld", None)
    books(held=424_000, releasable=56_000)

    # 5. The payout run sends the 560.00 yuan released to the school (cadence: per class) ...
    life.run("make_payouts")
    books(custody_cash=480_000, held=424_000, releasable=0, payout_pending=56_000)
    release = life.get(school, f"{base}/payouts")["items"][0]
    # ... and the bank confirms it: the cash leaves custody.
    life.post(life.bank, f"{base}/payouts/{release['id']}/execution", {"bank_reference": "PD-OUT-1"})
    books(custody_cash=424_000, held=424_000, payout_pending=0)

    # 6. She asks for the rest back; the school approves: 4,240.00 yuan owed to her, then paid.
    request = life.post(parent, f"{k}/refund-requests", {"reason": "moving away"}, 201)
    approved = life.post(school, f"{base}/refund-requests/{request['id']}/approval")
    assert (approved["status"], approved["amount_fen"]) == ("approved", 424_000)
    books(custody_cash=424_000, held=0, refund_payable=424_000)
    refund = next(p for p in life.get(school, f"{base}/payouts")["items"] if p["kind"] == "refund")
    life.post(life.bank, f"{base}/payouts/{refund['id']}/execution", {"bank_reference": "PD-OUT-2"})
    books(custody_cash=0, held=0, releasable=0, payout_pending=0, refund_payable=0)
    assert life.get(parent, k)["status"] == "refunded"


def test_a_hold_blocks_payouts_and_collections_never_refunds_and_closure_refunds_everyone(life: Life) -> None:
    inst = life.post(
        life.regulator,
        "/institutions",
        {
            "name": "Closing School",
            "credit_code": credit_code(),
            "jurisdiction_code": J,
            "custody_bank": "bank_pudong",
            "custody_account": account_number(),
        },
        201,
    )["id"]
    school = life.token(role=Role.INSTITUTION, institution_id=inst)
    base = f"/institutions/{inst}"
    course = life.post(
        school, f"{base}/courses", {"name": "Piano", "category": "non_subject", "unit_price_fen": 10_000}, 201
    )
    families = []
    for n in range(3):
        mother = phone()
        c = life.post(
            school,
            f"{base}/contracts",
            {
                "course_id": course["id"],
                "guardian": {"name": f"Parent {n}", "phone": mother},
                "student_name": f"Child {n}",
                "hours_bought": 30,
                "term_start": day(-20),
                "term_end": day(60),
            },
            201,
        )
        life.post(
            school, f"{base}/contracts/{c['id']}/collections", {"amount_fen": 300_000, "bank_reference": f"CL-{n}"}, 201
        )
        families.append((c, life.token(role=Role.PARENT, guardian_phone=mother)))
    first, first_parent = families[0]
    cls = life.post(school, f"{base}/contracts/{first['id']}/classes", {"hours": 3, "given_on": day(-2)}, 201)
    life.post(first_parent, f"{base}/classes/{cls['id']}/confirmation")  # 30,000 released

    hold = life.post(life.regulator, f"{base}/holds", {"reason": "complaints about closure rumours"}, 201)
    r = life.client.post(f"{base}/payouts", headers={"Authorization": f"Bearer {school}", "Idempotency-Key": "h1"})
    assert (r.status_code, r.json()["code"]) == (409, "institution_on_hold")
    r = life.client.post(
        f"{base}/contracts/{first['id']}/collections",
        json={"amount_fen": 1, "bank_reference": "X"},
        headers={"Authorization": f"Bearer {school}", "Idempotency-Key": "h2"},
    )
    assert r.status_code == 409
    life.run("make_payouts")
    assert [p for p in life.get(school, f"{base}/payouts")["items"] if p["kind"] == "release"] == []
    # a refund goes on during the hold
    second, second_parent = families[1]
    request = life.post(second_parent, f"{base}/contracts/{second['id']}/refund-requests", {"reason": "worried"}, 201)
    life.post(school, f"{base}/refund-requests/{request['id']}/approval")
    assert life.get(school, f"{base}/balances")["refund_payable_fen"] == 300_000

    life.post(life.regulator, f"{base}/holds/{hold['id']}/lift", {"reason": "checked"})
    closed = life.post(life.regulator, f"{base}/closure", {"reason": "the school has stopped trading"})
    assert closed["status"] == "closing"  # until the bank has paid every family's refund
    assert inst in [i["id"] for i in life.get(life.regulator, "/institutions?status=closing")["items"]]
    b = life.get(school, f"{base}/balances")
    # every family's unconsumed balance is owed back; custody covers it and what the school earned
    assert (b["held_fen"], b["releasable_fen"], b["refund_payable_fen"]) == (0, 30_000, 270_000 + 300_000 + 300_000)
    assert b["custody_cash_fen"] == b["owed_fen"] == 900_000
