"""What a family sees equals the books, to the fen: hours bought, given, confirmed and left; paid, released,
held, refund owed and refunded (which always add up to what was paid); a refund previewed without changing
anything, and the preview is what the approval then pays; each refund followed to the bank."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from escrow.errors import Forbidden, NotFound
from escrow.families.overview import (
    ContractSummary,
    contract_classes,
    contract_summary,
    contract_terms,
    my_contracts,
    waiting_classes,
)
from escrow.families.refunds import my_refunds, preview_refund, refund_progress
from escrow.flows.books import contract_balance
from escrow.flows.classes import confirm_class, dispute_class
from escrow.flows.refunds import decide_refund, refund_payouts, request_refund
from tests.families.family import HOURS, PAID_FEN, Family, a_family, bank_pays, give_class


def summary_of(s: Session, family: Family) -> ContractSummary:
    return contract_summary(s, caller=family.parent, institution_id=family.institution_id,
                            contract_id=family.contract_id)  # fmt: skip


def adds_up(s: Session, family: Family, summary: ContractSummary) -> None:
    """Every fen paid is released, held, owed back or paid back; held is the ledger's prepaid balance."""
    ledger = contract_balance(s, caller=family.parent, institution_id=family.institution_id,
                              contract_id=family.contract_id, as_of=None)  # fmt: skip
    assert summary.held_fen == ledger.held_fen
    assert summary.paid_fen == summary.released_fen + summary.held_fen + summary.refund_owed_fen + summary.refunded_fen


def test_a_contract_from_paying_to_classes_confirmed(db: sessionmaker[Session]) -> None:
    with db.begin() as s:
        family = a_family(s)
        pending, disputed, confirmed = (give_class(s, family) for _ in range(3))
        now = datetime.now(UTC)
        confirm_class(s, caller=family.parent, institution_id=family.institution_id, class_id=confirmed,
                      idempotency_key=f"c-{confirmed}", now=now)  # fmt: skip
        dispute_class(s, caller=family.parent, institution_id=family.institution_id, class_id=disputed,
                      reason="absent", idempotency_key=f"d-{disputed}", now=now)  # fmt: skip
    with db.begin() as s:
        summary = summary_of(s, family)
        assert (summary.hours_total, summary.hours_given, summary.hours_confirmed) == (HOURS, 6, 2)
        assert (summary.hours_waiting, summary.hours_disputed, summary.hours_left) == (2, 2, HOURS - 6)
        assert summary.paid_fen == PAID_FEN and summary.released_fen == PAID_FEN * 2 // HOURS  # confirmed first
        adds_up(s, family, summary)
        (mine,) = [c for c in my_contracts(s, caller=family.parent)]
        assert mine.contract.id == family.contract_id and mine.institution_name == "Sunshine Maths"
        assert [line.record.id for line in waiting_classes(s, caller=family.parent)] == [pending]
        lines = contract_classes(s, caller=family.parent, institution_id=family.institution_id,
                                 contract_id=family.contract_id)  # fmt: skip
        assert {line.record.id for line in lines} == {pending, disputed, confirmed}


def test_a_family_sees_only_its_own(db: sessionmaker[Session]) -> None:
    with db.begin() as s:
        mine = a_family(s)
        theirs = a_family(s, at=mine.institution_id)  # another family at the same institution
        give_class(s, theirs)
    with db.begin() as s:
        assert [c.contract.id for c in my_contracts(s, caller=mine.parent)] == [mine.contract_id]
        assert waiting_classes(s, caller=mine.parent) == []
        with pytest.raises(NotFound):
            contract_summary(s, caller=mine.parent, institution_id=theirs.institution_id,
                             contract_id=theirs.contract_id)  # fmt: skip
        with pytest.raises(NotFound):
            preview_refund(s, caller=mine.parent, institution_id=theirs.institution_id, contract_id=theirs.contract_id)
        with pytest.raises(Forbidden):
            my_contracts(s, caller=mine.owner)


def test_the_refund_preview_changes_nothing_and_is_what_the_approval_pays(db: sessionmaker[Session]) -> None:
    with db.begin() as s:
        family = a_family(s)
        confirmed, waiting = give_class(s, family, hours=3), give_class(s, family, hours=2)
        confirm_class(s, caller=family.parent, institution_id=family.institution_id, class_id=confirmed,
                      idempotency_key=f"c-{confirmed}", now=datetime.now(UTC))  # fmt: skip
    counts = text("SELECT (SELECT count(*) FROM audit_record), (SELECT count(*) FROM posting)")
    with db.begin() as s:
        before = s.execute(counts).one()
        preview = preview_refund(s, caller=family.parent, institution_id=family.institution_id,
                                 contract_id=family.contract_id)  # fmt: skip
    with db.begin() as s:
        assert s.execute(counts).one() == before
    released = PAID_FEN * 3 // HOURS
    assert preview.held_fen == PAID_FEN - released
    assert preview.refundable_fen == PAID_FEN - PAID_FEN * 5 // HOURS  # the waiting 2 hours stay reserved
    assert (preview.waiting_hours, preview.can_request) == (2, True)
    with db.begin() as s:
        asked = request_refund(s, caller=family.parent, institution_id=family.institution_id,
                               contract_id=family.contract_id, reason="moving", now=datetime.now(UTC))  # fmt: skip
        again = preview_refund(s, caller=family.parent, institution_id=family.institution_id,
                               contract_id=family.contract_id)  # fmt: skip
        assert again.open_request is not None and not again.can_request
        decided, _ = decide_refund(s, caller=family.owner, institution_id=family.institution_id, request_id=asked.id,
                                   approve=True, reason=None, idempotency_key=f"a-{asked.id}",
                                   now=datetime.now(UTC))  # fmt: skip
        assert decided.amount_fen == preview.refundable_fen
        assert waiting in {line.record.id for line in waiting_classes(s, caller=family.parent)}


def test_a_refund_is_followed_from_asking_to_the_bank(db: sessionmaker[Session]) -> None:
    with db.begin() as s:
        family = a_family(s)
        asked = request_refund(s, caller=family.parent, institution_id=family.institution_id,
                               contract_id=family.contract_id, reason="moving", now=datetime.now(UTC))  # fmt: skip
    with db.begin() as s:
        progress = refund_progress(s, caller=family.parent, institution_id=family.institution_id, request_id=asked.id)
        assert progress.request.status == "open" and progress.payments == [] and progress.paid_at is None
        decide_refund(s, caller=family.owner, institution_id=family.institution_id, request_id=asked.id,
                      approve=True, reason=None, idempotency_key=f"a-{asked.id}", now=datetime.now(UTC))  # fmt: skip
    with db.begin() as s:
        progress = refund_progress(s, caller=family.parent, institution_id=family.institution_id, request_id=asked.id)
        assert progress.request.status == "approved" and progress.in_flight_fen == PAID_FEN
        summary = summary_of(s, family)
        assert (summary.held_fen, summary.refund_owed_fen, summary.refunded_fen) == (0, PAID_FEN, 0)
        adds_up(s, family, summary)
        (payout,) = refund_payouts(s, progress.request)
        bank_pays(s, payout)
    with db.begin() as s:
        (progress,) = my_refunds(s, caller=family.parent)
        assert progress.paid_fen == PAID_FEN and progress.paid_at is not None and progress.in_flight_fen == 0
        summary = summary_of(s, family)
        assert (summary.refund_owed_fen, summary.refunded_fen) == (0, PAID_FEN)
        adds_up(s, family, summary)
        with pytest.raises(NotFound):
            refund_progress(s, caller=a_family(s).parent, institution_id=family.institution_id, request_id=asked.id)


def test_the_electronic_contract_names_its_terms_and_rules(db: sessionmaker[Session]) -> None:
    with db.begin() as s:
        family = a_family(s)
        terms = contract_terms(s, caller=family.parent, institution_id=family.institution_id,
                               contract_id=family.contract_id)  # fmt: skip
    assert terms.institution.name == "Sunshine Maths" and terms.summary.course_name == "Maths grade 5"
    assert (terms.policy.confirm_after_working_days, terms.policy.refund_response_working_days) == (15, 5)
    assert terms.summary.contract.unit_price_fen == 2_500 and terms.jurisdiction_name == "Xuhui District"
