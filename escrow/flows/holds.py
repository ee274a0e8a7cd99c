"""Regulator holds (they block payouts and new collections, never refunds) and closure, which
refunds every family's unconsumed balance in one operation.

A hold recalls the payout instructions to the institution the bank has not executed yet: their money
returns from payout_pending to releasable and the bank's later execution of one is refused. Refund
instructions to families are left in flight."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from sqlalchemy import Text, cast, select
from sqlalchemy.orm import Session

from escrow.access.audit import note
from escrow.access.callers import Caller, Role, require_role
from escrow.db.paging import Page
from escrow.db.records import ClassRecord, Contract, Guardian, Hold, Institution, Payout, RefundRequest
from escrow.errors import NotFound
from escrow.flows.consumption import (
    LEDGER,
    account_id,
    close_once_refunds_paid,
    refund_remaining,
    release_ready,
)
from escrow.ids import new_id
from escrow.ledger.engine import post_transaction
from escrow.ledger.idempotency import IdempotencyKey, Outcome, run_once
from escrow.ledger.model import NewEntry, credit, debit
from escrow.ledger.records import JournalTransaction, Posting
from escrow.registry.institutions import PAYOUT_PENDING, RELEASABLE, visible_institution
from escrow.rules import states
from escrow.rules.states import (
    HELD_CLASS_STATUSES,
    ContractStatus,
    InstitutionStatus,
    PayoutKind,
    PayoutStatus,
    RefundStatus,
)


def _locked_institution(session: Session, caller: Caller, institution_id: UUID) -> Institution:
    require_role(caller, Role.REGULATOR)
    visible_institution(session, caller, institution_id)
    return session.get_one(Institution, institution_id, with_for_update={"key_share": True}, populate_existing=True)


def place_hold(session: Session, *, caller: Caller, institution_id: UUID, reason: str, now: datetime) -> Hold:
    """Freeze payouts and new collections of an institution; refunds go on."""
    institution = _locked_institution(session, caller, institution_id)
    institution.status = states.move("institution", states.INSTITUTION, institution.status, "hold")
    hold = Hold(institution_id=institution_id, id=new_id(), reason=reason, placed_by=caller.acting, placed_at=now)
    session.add(hold)
    session.flush()
    recalled = _recall_releases(session, caller, institution_id, hold, now)
    note(
        session,
        caller,
        "institution.held",
        institution_id=institution_id,
        object_type="institution",
        object_id=institution_id,
        at=now,
        before={"status": InstitutionStatus.ACTIVE},
        after={"status": InstitutionStatus.ON_HOLD, "reason": reason, "payouts_recalled": recalled},
    )
    return hold


def _recall_releases(session: Session, caller: Caller, institution_id: UUID, hold: Hold, now: datetime) -> int:
    """Recall every release instruction not yet executed: its money back to releasable; fen recalled."""
    in_flight = session.scalars(
        select(Payout)
        .where(
            Payout.institution_id == institution_id,
            Payout.kind == PayoutKind.RELEASE,
            Payout.status == PayoutStatus.INSTRUCTED,
        )
        .order_by(Payout.id)
        .with_for_update(key_share=True)
        .execution_options(populate_existing=True)
    ).all()
    for payout in in_flight:
        payout.status = states.move("payout", states.PAYOUT, payout.status, "recall")
        payout.settled_at, payout.failure_reason = now, f"recalled by hold {hold.id}: {hold.reason}"
        entry = NewEntry(
            kind="payout_recalled",
            legs=[
                debit(account_id(session, institution_id, PAYOUT_PENDING), payout.amount_fen),
                credit(account_id(session, institution_id, RELEASABLE), payout.amount_fen),
            ],
            effective_at=now,
            metadata={"payout_id": str(payout.id), "hold_id": str(hold.id)},
        )
        idempotency = IdempotencyKey(LEDGER, f"recall:{payout.id}")
        posted = post_transaction(session, institution_id=institution_id, entry=entry, idempotency=idempotency)
        payout.settle_transaction_id = posted.value.id
        for record in session.scalars(
            select(ClassRecord).where(ClassRecord.institution_id == institution_id, ClassRecord.payout_id == payout.id)
        ):
            record.payout_id = None  # the classes wait for an instruction after the hold is lifted
        note(
            session,
            caller,
            "payout.recalled",
            institution_id=institution_id,
            object_type="payout",
            object_id=payout.id,
            at=now,
            before={"status": PayoutStatus.INSTRUCTED},
            after={"status": PayoutStatus.RECALLED, "hold_id": hold.id, "amount_fen": payout.amount_fen},
        )
    session.flush()
    return sum(p.amount_fen for p in in_flight)


def lift_hold(
    session: Session, *, caller: Caller, institution_id: UUID, hold_id: UUID, reason: str, now: datetime
) -> Hold:
    institution = _locked_institution(session, caller, institution_id)
    hold = session.get(Hold, (institution_id, hold_id), with_for_update={"key_share": True})
    if hold is None:
        raise NotFound(f"hold {hold_id} does not exist on this institution")
    if hold.lifted_at is not None:
        return hold  # lifting twice is the same as lifting once
    institution.status = states.move("institution", states.INSTITUTION, institution.status, "lift")
    hold.lifted_at, hold.lifted_by, hold.lift_reason = now, caller.acting, reason
    session.flush()
    note(
        session,
        caller,
        "institution.hold_lifted",
        institution_id=institution_id,
        object_type="institution",
        object_id=institution_id,
        at=now,
        before={"status": InstitutionStatus.ON_HOLD},
        after={"status": InstitutionStatus.ACTIVE, "reason": reason},
    )
    return hold


def list_holds(session: Session, *, caller: Caller, institution_id: UUID) -> Page[Hold]:
    require_role(caller, Role.REGULATOR, Role.INSTITUTION, Role.BANK)
    visible_institution(session, caller, institution_id)
    rows = session.scalars(select(Hold).where(Hold.institution_id == institution_id).order_by(Hold.id)).all()
    return Page(list(rows), None)


def close_institution(
    session: Session, *, caller: Caller, institution_id: UUID, reason: str, idempotency_key: str, now: datetime
) -> Outcome[Institution]:
    """Close: void unconfirmed classes, release what was confirmed, refund every family the rest.

    Afterwards custody cash equals what the institution is owed (releasable and payouts in flight)
    plus the refunds on their way to families; the institution is closing until the bank has paid them
    all (closed at once when no family is owed anything)."""

    def perform() -> Institution:
        institution = _locked_institution(session, caller, institution_id)
        before = institution.status
        institution.status = states.move("institution", states.INSTITUTION, institution.status, "close")
        contracts = session.scalars(
            select(Contract)
            .where(
                Contract.institution_id == institution_id,
                Contract.status.in_((ContractStatus.ACTIVE, ContractStatus.REFUNDED)),
            )
            .order_by(Contract.id)
            .with_for_update(key_share=True)
        ).all()
        for contract in contracts:
            _close_contract(session, contract, reason, caller.principal, now)
        session.flush()
        note(
            session,
            caller,
            "institution.closing",
            institution_id=institution_id,
            object_type="institution",
            object_id=institution_id,
            at=now,
            before={"status": before},
            after={"status": InstitutionStatus.CLOSING, "reason": reason, "contracts_refunded": len(contracts)},
        )
        close_once_refunds_paid(session, caller, institution, now)
        return institution

    return run_once(
        session,
        institution_id=institution_id,
        key=IdempotencyKey(caller.principal, idempotency_key),
        request={"operation": "close_institution", "reason": reason},
        perform=perform,
        planned={"institution_id": str(institution_id)},
        recall=lambda s: session.get_one(Institution, UUID(s["institution_id"])),
    )


def _close_contract(session: Session, contract: Contract, reason: str, by: str, now: datetime) -> None:
    for request in session.scalars(
        select(RefundRequest).where(
            RefundRequest.institution_id == contract.institution_id,
            RefundRequest.contract_id == contract.id,
            RefundRequest.status == RefundStatus.OPEN,
        )
    ):
        request.status = states.move("refund request", states.REFUND, request.status, "close")
        request.decision_reason, request.decided_by, request.decided_at = reason, by, now
    for record in session.scalars(
        select(ClassRecord).where(
            ClassRecord.institution_id == contract.institution_id,
            ClassRecord.contract_id == contract.id,
            ClassRecord.status.in_(HELD_CLASS_STATUSES),
        )
    ):
        record.status = states.move("class", states.CLASS, record.status, "void")
        record.decided_at = now
    session.flush()
    release_ready(session, contract, now)
    refund_remaining(session, contract, cause=f"closure:{contract.id}", now=now)
    contract.status = states.move("contract", states.CONTRACT, contract.status, "close")


@dataclass(frozen=True, slots=True)
class ClosureRefund:
    contract_id: UUID
    student_name: str
    guardian_name: str
    refund_fen: int


def preview_closure(session: Session, *, caller: Caller, institution_id: UUID, now: datetime) -> list[ClosureRefund]:
    """What each family would get back if the institution closed now: the closure itself, rolled back."""
    savepoint = session.begin_nested()  # its rollback takes the closure's audit notes with it
    try:
        close_institution(
            session,
            caller=caller,
            institution_id=institution_id,
            reason="preview",
            idempotency_key=str(new_id()),
            now=now,
        )
        contract_id = JournalTransaction.metadata_["contract_id"].astext
        rows = session.execute(
            select(Contract.id, Contract.student_name, Guardian.name, Posting.amount)
            .join(JournalTransaction, JournalTransaction.id == Posting.transaction_id)
            .join(
                Contract, (Contract.institution_id == Posting.institution_id) & (cast(Contract.id, Text) == contract_id)
            )
            .join(Guardian, Guardian.id == Contract.guardian_id)
            .where(
                Posting.institution_id == institution_id,
                JournalTransaction.institution_id == institution_id,
                JournalTransaction.kind == "refund_approved",
                JournalTransaction.metadata_["cause"].astext.startswith("closure:"),
                Posting.account_id == Contract.prepaid_account_id,
            )
            .order_by(Contract.student_name, Contract.id)
        ).all()
    finally:
        savepoint.rollback()
    return [ClosureRefund(r[0], r[1], r[2], abs(int(r[3]))) for r in rows]
