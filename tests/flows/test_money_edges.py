"""Money at the edges of the flows: a second refund owed while one is in flight, a hold recalling
instructions the bank has not executed, and a closure settled to a zero custody balance."""

from __future__ import annotations

from datetime import datetime, timedelta
from uuid import UUID

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from escrow.db.records import Contract, Payout
from escrow.errors import Conflict
from escrow.flows.classes import confirm_class, dispute_class, record_class, resolve_dispute
from escrow.flows.holds import close_institution, place_hold
from escrow.flows.payouts import request_payout, settle_closure, settle_payout
from escrow.flows.refunds import decide_refund, request_refund
from escrow.supervision.jobs import run_job
from tests.factories import parent, regulator, school
from tests.flows.test_consumption import AT, J, contract_with_money
from tests.ledger_helpers import balances, books_problems

BANK_DAY = AT + timedelta(days=1)


def _refunds(s: Session, inst: UUID) -> list[Payout]:
    query = select(Payout).where(Payout.institution_id == inst, Payout.kind == "refund").order_by(Payout.instructed_at)
    return list(s.scalars(query))


def test_an_upheld_dispute_after_a_refund_is_instructed_on_the_first_payout_run(db: sessionmaker[Session]) -> None:
    inst, contract, owner, family = contract_with_money(db, hours=10)  # 1,000.00 yuan for 10 hours
    with db.begin() as s:
        cls, _ = record_class(
            s,
            caller=owner,
            institution_id=inst,
            contract_id=contract,
            hours=2,
            given_on=None,
            idempotency_key="r",
            now=AT,
        )
        dispute_class(
            s, caller=family, institution_id=inst, class_id=cls.id, reason="absent", idempotency_key="d", now=AT
        )
        request = request_refund(s, caller=family, institution_id=inst, contract_id=contract, reason="moving", now=AT)
        decide_refund(
            s,
            caller=owner,
            institution_id=inst,
            request_id=request.id,
            approve=True,
            reason=None,
            idempotency_key="a",
            now=AT,
        )
        resolve_dispute(
            s,
            caller=regulator(J),
            institution_id=inst,
            class_id=cls.id,
            upheld=True,
            note="n",
            idempotency_key="u",
            now=AT,
        )
    with db.begin() as s:  # one refund instruction in flight per contract: the 200.00 yuan waits for it
        run_job(s, name="make_payouts", now=AT + timedelta(hours=1))
        assert [(p.amount_fen, p.status) for p in _refunds(s, inst)] == [(80_000, "instructed")]
        first = _refunds(s, inst)[0].id
    with db.begin() as s:  # the bank executes it: what is still owed is instructed in the same breath
        settle_payout(
            s,
            caller=regulator(J),
            institution_id=inst,
            payout_id=first,
            executed=True,
            note_text="B-1",
            idempotency_key="x",
            now=BANK_DAY,
        )
        assert [(p.amount_fen, p.status) for p in _refunds(s, inst)] == [(80_000, "executed"), (20_000, "instructed")]
    with db.begin() as s:  # and the next run has nothing more to send
        assert run_job(s, name="make_payouts", now=BANK_DAY + timedelta(hours=1)) == {"changed": 0}


def _settle(s: Session, inst: UUID, payout: UUID, key: str, now: datetime = BANK_DAY) -> None:
    settle_payout(
        s,
        caller=regulator(J),
        institution_id=inst,
        payout_id=payout,
        executed=True,
        note_text=f"B-{key}",
        idempotency_key=key,
        now=now,
    )


def _released_and_instructed(db: sessionmaker[Session]) -> tuple[UUID, UUID, UUID]:
    """A contract of 1,000.00 yuan whose confirmed 3-hour class (300.00 yuan) is instructed to the school;
    the contract and the payout."""
    inst, contract, owner, family = contract_with_money(db, hours=10)
    with db.begin() as s:
        cls, _ = record_class(
            s,
            caller=owner,
            institution_id=inst,
            contract_id=contract,
            hours=3,
            given_on=None,
            idempotency_key="r",
            now=AT,
        )
        confirm_class(s, caller=family, institution_id=inst, class_id=cls.id, idempotency_key="c", now=AT)
        payout, _ = request_payout(s, caller=owner, institution_id=inst, idempotency_key="p", now=AT)
        assert payout is not None and payout.amount_fen == 30_000
    return inst, contract, payout.id


def test_a_hold_recalls_the_instructions_the_bank_has_not_executed(db: sessionmaker[Session]) -> None:
    inst, contract, release = _released_and_instructed(db)
    with db.begin() as s:
        place_hold(s, caller=regulator(J), institution_id=inst, reason="closure rumours", now=AT + timedelta(hours=1))
        row = s.get_one(Payout, (inst, release))
        assert (row.status, row.failure_reason is not None) == ("recalled", True)
    assert (balances(db, inst)["payout_pending"], balances(db, inst)["releasable"]) == (0, 30_000)
    with db.begin() as s, pytest.raises(Conflict, match="recalled cannot take 'execute'"):
        _settle(s, inst, release, "late")
    with db.begin() as s:  # a refund to the family is instructed during the hold, and executed
        family = s.get_one(Contract, (inst, contract))
        request = request_refund(
            s, caller=parent(s, family.guardian_id), institution_id=inst, contract_id=contract, reason="r", now=AT
        )
        decide_refund(
            s,
            caller=school(inst),
            institution_id=inst,
            request_id=request.id,
            approve=True,
            reason=None,
            idempotency_key="a",
            now=AT,
        )
        (refund,) = _refunds(s, inst)
        _settle(s, inst, refund.id, "refund")
    assert books_problems(db, inst) == []
    assert {code: b for code, b in balances(db, inst).items() if b} == {"custody_cash": 30_000, "releasable": 30_000}


def test_a_closure_settles_to_a_zero_custody_balance(db: sessionmaker[Session]) -> None:
    inst, _, _ = _released_and_instructed(db)
    with db.begin() as s:
        place_hold(s, caller=regulator(J), institution_id=inst, reason="stopped trading", now=AT + timedelta(hours=1))
        close_institution(
            s, caller=regulator(J), institution_id=inst, reason="stopped trading", idempotency_key="close", now=AT
        )
    with db.begin() as s, pytest.raises(Conflict, match=r"700\.00 yuan of refunds are not yet paid"):
        settle_closure(s, caller=regulator(J), institution_id=inst, reason="final", idempotency_key="s0", now=AT)
    with db.begin() as s:
        (refund,) = _refunds(s, inst)
        _settle(s, inst, refund.id, "refund")
    with db.begin() as s:  # the school earned 300.00 yuan: the regulator releases it, with a reason
        final, _ = settle_closure(
            s,
            caller=regulator(J),
            institution_id=inst,
            reason="classes given and confirmed",
            idempotency_key="s1",
            now=BANK_DAY,
        )
        assert (final.kind, final.amount_fen) == ("release", 30_000)
        _settle(s, inst, final.id, "final")
    assert {code: b for code, b in balances(db, inst).items() if b} == {}
    assert books_problems(db, inst) == []
    with db.begin() as s, pytest.raises(Conflict, match="nothing earned"):
        settle_closure(s, caller=regulator(J), institution_id=inst, reason="again", idempotency_key="s2", now=BANK_DAY)
