"""Deeming across a real holiday, and refunds, confirmations and payouts racing on one contract."""

from __future__ import annotations

import random
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta
from uuid import UUID, uuid4

from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from escrow.access.callers import Caller, Role
from escrow.db.records import ClassRecord, Payout
from escrow.errors import EscrowError
from escrow.flows.classes import confirm_class, deem_classes_confirmed, record_class
from escrow.flows.collections import collect
from escrow.flows.payouts import make_payouts, request_payout, settle_payout
from escrow.flows.refunds import decide_refund, request_refund
from escrow.ids import new_id
from escrow.registry.contracts import GuardianDetails, sign_contract
from escrow.registry.courses import create_course
from escrow.registry.institutions import register_institution
from escrow.registry.jurisdictions import add_jurisdiction
from escrow.rules.policy import CourseCategory
from tests.factories import account_number, credit_code, parent, phone, regulator, school
from tests.ledger_helpers import books_problems

J = "310116"
AT = datetime(2026, 9, 1, 9, tzinfo=UTC)


def contract_with_money(db: sessionmaker[Session], hours: int = 60) -> tuple[UUID, UUID, Caller, Caller]:
    with db.begin() as s:
        add_jurisdiction(s, code=J, name="Jing'an District")
        inst = register_institution(
            s,
            caller=regulator(J),
            name="S",
            credit_code=credit_code(),
            jurisdiction_code=J,
            custody_bank="bank_j",
            custody_account=account_number(),
            supervision_model=None,
            today=AT.date(),
        )
        owner = school(inst.id)
        course = create_course(
            s,
            caller=owner,
            institution_id=inst.id,
            name="Maths",
            category=CourseCategory.SUBJECT,
            unit_price_fen=10_000,
            guide_price_fen=10_000,
            today=AT.date(),
        )
        view = sign_contract(
            s,
            caller=owner,
            institution_id=inst.id,
            course_id=course.id,
            guardian=GuardianDetails("Ma Li", phone()),
            student_name="Ma Ke",
            hours_bought=hours,
            bonus_hours=0,
            term_start=AT.date(),
            term_end=AT.date() + timedelta(days=80),
            now=AT,
        )
        collect(
            s,
            caller=owner,
            institution_id=inst.id,
            contract_id=view.contract.id,
            amount_fen=view.contract.price_fen,
            bank_reference=f"R-{view.contract.id.hex[:10]}",
            collected_at=None,
            idempotency_key="pay",
            now=AT,
        )
        family = parent(s, view.contract.guardian_id)
        return inst.id, view.contract.id, owner, family


def test_deeming_counts_working_days_across_national_day(db: sessionmaker[Session]) -> None:
    inst, contract, owner, _ = contract_with_money(db)
    with db.begin() as s:
        # given Wednesday 30 September 2026, the eve of the National Day holidays (1-7 October; Saturday
        # 10 October is a make-up working day). 15 working days: 8, 9, 10, 12-16, 19-23, 26, 27 October.
        record = record_class(
            s,
            caller=owner,
            institution_id=inst,
            contract_id=contract,
            hours=2,
            given_on=date(2026, 9, 30),
            now=datetime(2026, 9, 30, 20, tzinfo=UTC),
            idempotency_key=uuid4().hex,
        ).value
    assert record.confirm_by == date(2026, 10, 27)
    with db.begin() as s:  # 23:59 on 27 October, Beijing time
        assert deem_classes_confirmed(s, now=datetime(2026, 10, 27, 15, 59, tzinfo=UTC)) == []
    with db.begin() as s:  # 00:01 on 28 October, Beijing time
        assert deem_classes_confirmed(s, now=datetime(2026, 10, 27, 16, 1, tzinfo=UTC)) == [record.id]
    with db.begin() as s:  # running it again deems nothing twice
        assert deem_classes_confirmed(s, now=datetime(2026, 10, 29, tzinfo=UTC)) == []
        row = s.get_one(ClassRecord, (inst, record.id))
        assert (row.status, row.confirmed_how, row.amount_fen) == ("confirmed", "deemed", 20_000)


def test_refunds_confirmations_and_payouts_racing_never_overdraw_or_pay_twice(db: sessionmaker[Session]) -> None:
    inst, contract, owner, family = contract_with_money(db, hours=60)
    with db.begin() as s:
        classes = [
            record_class(
                s,
                caller=owner,
                institution_id=inst,
                contract_id=contract,
                hours=2,
                given_on=AT.date() + timedelta(days=d),
                now=AT + timedelta(days=d),
                idempotency_key=uuid4().hex,
            ).value.id
            for d in range(20)
        ]
    bank = Caller(token_id=new_id(), role=Role.BANK, bank_code="bank_j")
    start = threading.Barrier(6)
    rng = random.Random(7)
    keys = iter(range(10**6))
    lock = threading.Lock()

    def key() -> str:
        with lock:
            return f"race-{next(keys)}"

    def act(worker: int) -> int:
        start.wait()
        done = 0
        for _ in range(25):
            now = datetime.now(UTC)
            try:
                with db.begin() as s:
                    if worker in (0, 1):
                        confirm_class(
                            s,
                            caller=family,
                            institution_id=inst,
                            class_id=rng.choice(classes),
                            idempotency_key=key(),
                            now=now,
                        )
                    elif worker == 2:
                        request_payout(s, caller=owner, institution_id=inst, idempotency_key=key(), now=now)
                    elif worker == 3:
                        make_payouts(s, now=now)
                    elif worker == 4:
                        request = request_refund(
                            s, caller=family, institution_id=inst, contract_id=contract, reason="race", now=now
                        )
                        decide_refund(
                            s,
                            caller=owner,
                            institution_id=inst,
                            request_id=request.id,
                            approve=True,
                            reason=None,
                            idempotency_key=key(),
                            now=now,
                        )
                    else:
                        for payout in s.query(Payout).filter_by(institution_id=inst, status="instructed").all():
                            settle_payout(
                                s,
                                caller=bank,
                                institution_id=inst,
                                payout_id=payout.id,
                                executed=True,
                                note_text="X",
                                idempotency_key=key(),
                                now=now,
                            )
                done += 1
            except EscrowError:
                pass  # a refused step (already confirmed, nothing to pay, already refunded) changes nothing
        return done

    with ThreadPoolExecutor(6) as pool:
        done = list(pool.map(act, range(6)))
    assert all(done[w] > 0 for w in (0, 2, 4, 5)), done
    assert books_problems(db, inst) == []
    with db.begin() as s:
        balances = dict(
            s.execute(
                text("SELECT split_part(code, ':', 1), sum(balance) FROM account WHERE institution_id = :i GROUP BY 1"),
                {"i": inst},
            ).all()
        )
        owed = sum(balances.get(k, 0) for k in ("prepaid", "releasable", "payout_pending", "refund_payable"))
        assert balances["custody_cash"] == owed  # custody covers everything owed
        paid_out = s.scalar(
            text("SELECT coalesce(sum(amount_fen), 0) FROM payout WHERE institution_id = :i AND status = 'executed'"),
            {"i": inst},
        )
        released = s.scalar(
            text("SELECT coalesce(sum(amount_fen), 0) FROM class_record WHERE institution_id = :i"), {"i": inst}
        )
        refunded = s.scalar(
            text("SELECT coalesce(sum(amount_fen), 0) FROM payout WHERE institution_id = :i AND kind = 'refund'"),
            {"i": inst},
        )
        # nothing paid twice: what left custody and what is still owed add up to what was collected
        assert balances["custody_cash"] + paid_out == 600_000
        assert released + refunded + balances.get("prepaid", 0) == 600_000
        # each class's money went into at most one payout
        assert (
            s.scalar(
                text(
                    "SELECT count(*) FROM class_record WHERE institution_id = :i AND payout_id IS NOT NULL"
                    " AND release_transaction_id IS NULL"
                ),
                {"i": inst},
            )
            == 0
        )
