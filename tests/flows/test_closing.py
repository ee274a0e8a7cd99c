"""A closure in two steps: closing while the bank pays every family's refund, closed when the last is paid.

The institution is closing (关闭中) from the closure until no family is owed anything; the bank's execution
of the last refund closes it, on the audit trail; only then is what it earned settled to it. A closure that
owes no family closes at once. A closure racing the execution of the last refund in flight still ends closed.
"""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from uuid import UUID

import pytest
from sqlalchemy import select, text
from sqlalchemy.orm import Session, sessionmaker

from escrow.db.records import Institution, Payout
from escrow.errors import Conflict
from escrow.flows.holds import close_institution, place_hold
from escrow.flows.payouts import settle_closure, settle_payout
from escrow.flows.refunds import decide_refund, request_refund
from escrow.rules import states
from escrow.rules.states import InstitutionStatus
from escrow.supervision.jobs import run_job
from tests.factories import parent, regulator, school
from tests.flows.test_consumption import AT, J, contract_with_money
from tests.ledger_helpers import balances, books_problems

BANK_DAY = AT + timedelta(days=1)


def _status(db: sessionmaker[Session], inst: UUID) -> str:
    with db() as s:
        return s.get_one(Institution, inst).status


def _refunds(s: Session, inst: UUID, status: str = "instructed") -> list[Payout]:
    query = select(Payout).where(Payout.institution_id == inst, Payout.kind == "refund", Payout.status == status)
    return list(s.scalars(query.order_by(Payout.instructed_at, Payout.id)))


def _bank(s: Session, inst: UUID, payout: UUID, key: str, *, executed: bool = True) -> None:
    settle_payout(
        s,
        caller=regulator(J),
        institution_id=inst,
        payout_id=payout,
        executed=executed,
        note_text=f"B-{key}",
        idempotency_key=key,
        now=BANK_DAY,
    )


def _close(s: Session, inst: UUID, key: str = "close") -> Institution:
    institution, _ = close_institution(
        s, caller=regulator(J), institution_id=inst, reason="stopped trading", idempotency_key=key, now=AT
    )
    return institution


def _actions(db: sessionmaker[Session], inst: UUID) -> list[str]:
    with db() as s:
        query = "SELECT action FROM audit_record WHERE chain = :c AND action LIKE 'institution.%' ORDER BY position"
        return list(s.scalars(text(query), {"c": inst}))


def test_the_transition_table_goes_through_closing() -> None:
    assert states.move("institution", states.INSTITUTION, InstitutionStatus.ON_HOLD, "close") == "closing"
    assert states.move("institution", states.INSTITUTION, InstitutionStatus.CLOSING, "refunds_paid") == "closed"
    for event in ("hold", "lift", "close"):
        with pytest.raises(Conflict, match="closing cannot take"):
            states.move("institution", states.INSTITUTION, InstitutionStatus.CLOSING, event)


def test_closing_until_the_bank_pays_the_last_refund_then_closed_and_settled(db: sessionmaker[Session]) -> None:
    inst, _, _, _ = contract_with_money(db, hours=10)  # 1,000.00 yuan
    second, _, _, _ = contract_with_money(db, hours=10)  # another school: its books stay apart
    with db.begin() as s:
        assert _close(s, inst).status == "closing"
    assert _status(db, inst) == "closing" and _status(db, second) == "active"
    with db.begin() as s, pytest.raises(Conflict, match=r"1000\.00 yuan of refunds are not yet paid"):
        settle_closure(s, caller=regulator(J), institution_id=inst, reason="early", idempotency_key="s0", now=AT)
    with db.begin() as s, pytest.raises(Conflict, match="closing cannot take 'hold'"):
        place_hold(s, caller=regulator(J), institution_id=inst, reason="again", now=AT)
    with db.begin() as s:  # the bank fails the refund: the family is still owed, the school still closing
        (refund,) = _refunds(s, inst)
        _bank(s, inst, refund.id, "fail", executed=False)
    assert _status(db, inst) == "closing"
    with db.begin() as s:
        run_job(s, name="make_payouts", now=BANK_DAY)  # instructs the refund again
        (again,) = _refunds(s, inst)
        _bank(s, inst, again.id, "paid")
    assert _status(db, inst) == "closed"
    assert _actions(db, inst)[-2:] == ["institution.closing", "institution.closed"]
    assert {code: b for code, b in balances(db, inst).items() if b} == {}  # nothing was earned: nothing to settle
    assert books_problems(db, inst) == []


def test_a_closure_that_owes_no_family_closes_at_once(db: sessionmaker[Session]) -> None:
    inst, contract, owner, family = contract_with_money(db, hours=10)
    with db.begin() as s:  # the family takes its money back first, and the bank pays it
        request = request_refund(s, caller=family, institution_id=inst, contract_id=contract, reason="move", now=AT)
        decide_refund(s, caller=owner, institution_id=inst, request_id=request.id, approve=True, reason=None,
                      idempotency_key="a", now=AT)  # fmt: skip
    with db.begin() as s:
        (refund,) = _refunds(s, inst)
        _bank(s, inst, refund.id, "refund")
    assert _status(db, inst) == "active"  # a refund's execution moves only a closing institution
    with db.begin() as s:
        assert _close(s, inst).status == "closed"
    assert _actions(db, inst)[-2:] == ["institution.closing", "institution.closed"]


def test_a_closure_racing_the_last_refunds_execution_still_ends_closed(db: sessionmaker[Session]) -> None:
    """The family's refund is in flight when the regulator closes the school and the bank executes it at
    the same moment. Whichever commits first, the other sees it: the school ends closed, not closing."""
    inst, contract, _, _ = contract_with_money(db, hours=10)
    with db.begin() as s:
        guardian = s.scalar(text("SELECT guardian_id FROM contract WHERE id = :c"), {"c": contract})
        family = parent(s, guardian)
        request = request_refund(s, caller=family, institution_id=inst, contract_id=contract, reason="r", now=AT)
        decide_refund(s, caller=school(inst), institution_id=inst, request_id=request.id, approve=True,
                      reason=None, idempotency_key="a", now=AT)  # fmt: skip
        (refund,) = _refunds(s, inst)
    bank = db()
    bank.begin()
    _bank(bank, inst, refund.id, "race")  # executed, not yet committed
    closed: list[str] = []
    closing = threading.Thread(target=lambda: closed.append(_close_in_own_session(db, inst)))
    closing.start()
    _wait_until_waiting_or_done(db, closing)
    bank.commit()
    bank.close()
    closing.join(10)
    assert closed == ["closed"] and _status(db, inst) == "closed"
    assert {code: b for code, b in balances(db, inst).items() if b} == {}
    assert books_problems(db, inst) == []


def _close_in_own_session(db: sessionmaker[Session], inst: UUID) -> str:
    with db.begin() as s:
        return _close(s, inst, key="race-close").status


def _wait_until_waiting_or_done(db: sessionmaker[Session], thread: threading.Thread) -> None:
    """Until the closure waits for a lock (or is done, as it would be if nothing made it wait)."""
    deadline = time.monotonic() + 10
    with db() as s:
        while thread.is_alive() and time.monotonic() < deadline:
            waiting = s.scalar(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                    " AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
                )
            )
            s.rollback()
            if waiting:
                return
            time.sleep(0.02)
