"""Money at the edges of the flows: a second refund owed while one is in flight, a hold recalling
instructions the bank has not executed, and a closure settled to a zero custody balance."""

from __future__ import annotations

from datetime import timedelta
from uuid import UUID

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from escrow.db.records import Payout
from escrow.flows.classes import dispute_class, record_class, resolve_dispute
from escrow.flows.payouts import settle_payout
from escrow.flows.refunds import decide_refund, request_refund
from escrow.supervision.jobs import run_job
from tests.factories import regulator
from tests.flows.test_consumption import AT, J, contract_with_money

BANK_DAY = AT + timedelta(days=1)


def _refunds(s: Session, inst: UUID) -> list[Payout]:
    query = select(Payout).where(Payout.institution_id == inst, Payout.kind == "refund").order_by(Payout.instructed_at)
    return list(s.scalars(query))


def test_an_upheld_dispute_after_a_refund_is_instructed_on_the_first_payout_run(db: sessionmaker[Session]) -> None:
    inst, contract, owner, family = contract_with_money(db, hours=10)  # 1,000.00 yuan for 10 hours
    with db.begin() as s:
        cls = record_class(s, caller=owner, institution_id=inst, contract_id=contract, hours=2, given_on=None, now=AT)
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
