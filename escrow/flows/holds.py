"""Regulator holds (they block payouts and new collections, never refunds) and closure, which
refunds every family's unconsumed balance in one operation."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from sqlalchemy import select
from sqlalchemy.orm import Session

from escrow.access.audit import note
from escrow.access.callers import Caller, Role, require_role
from escrow.db.paging import Page
from escrow.db.records import ClassRecord, Contract, Hold, Institution, RefundRequest
from escrow.errors import NotFound
from escrow.flows.consumption import refund_remaining, release_ready
from escrow.ids import new_id
from escrow.ledger.idempotency import IdempotencyKey, Outcome, run_once
from escrow.registry.institutions import visible_institution
from escrow.rules import states


def _locked_institution(session: Session, caller: Caller, institution_id: UUID) -> Institution:
    require_role(caller, Role.REGULATOR)
    visible_institution(session, caller, institution_id)
    return session.get_one(Institution, institution_id, with_for_update={"key_share": True}, populate_existing=True)


def place_hold(session: Session, *, caller: Caller, institution_id: UUID, reason: str, now: datetime) -> Hold:
    """Freeze payouts and new collections of an institution; refunds go on."""
    institution = _locked_institution(session, caller, institution_id)
    institution.status = states.move("institution", states.INSTITUTION, institution.status, "hold")
    hold = Hold(institution_id=institution_id, id=new_id(), reason=reason, placed_by=caller.principal, placed_at=now)
    session.add(hold)
    session.flush()
    note(
        session,
        caller,
        "institution.held",
        institution_id=institution_id,
        object_type="institution",
        object_id=institution_id,
        at=now,
        before={"status": "active"},
        after={"status": "on_hold", "reason": reason},
    )
    return hold


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
    hold.lifted_at, hold.lifted_by, hold.lift_reason = now, caller.principal, reason
    session.flush()
    note(
        session,
        caller,
        "institution.hold_lifted",
        institution_id=institution_id,
        object_type="institution",
        object_id=institution_id,
        at=now,
        before={"status": "on_hold"},
        after={"status": "active", "reason": reason},
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
    plus the refunds on their way to families."""

    def perform() -> Institution:
        institution = _locked_institution(session, caller, institution_id)
        before = institution.status
        institution.status = states.move("institution", states.INSTITUTION, institution.status, "close")
        contracts = session.scalars(
            select(Contract)
            .where(Contract.institution_id == institution_id, Contract.status.in_(("active", "refunded")))
            .order_by(Contract.id)
            .with_for_update(key_share=True)
        ).all()
        for contract in contracts:
            _close_contract(session, contract, reason, caller.principal, now)
        session.flush()
        note(
            session,
            caller,
            "institution.closed",
            institution_id=institution_id,
            object_type="institution",
            object_id=institution_id,
            at=now,
            before={"status": before},
            after={"status": "closed", "reason": reason, "contracts_refunded": len(contracts)},
        )
        return institution

    return run_once(
        session,
        institution_id=institution_id,
        key=IdempotencyKey(caller.principal, idempotency_key),
        request={"operation": "close_institution", "reason": reason},
        perform=perform,
        remember=lambda i: {"institution_id": str(i.id)},
        recall=lambda s: session.get_one(Institution, UUID(s["institution_id"])),
    )


def _close_contract(session: Session, contract: Contract, reason: str, by: str, now: datetime) -> None:
    for request in session.scalars(
        select(RefundRequest).where(
            RefundRequest.institution_id == contract.institution_id,
            RefundRequest.contract_id == contract.id,
            RefundRequest.status == "open",
        )
    ):
        request.status = states.move("refund request", states.REFUND, request.status, "close")
        request.decision_reason, request.decided_by, request.decided_at = reason, by, now
    for record in session.scalars(
        select(ClassRecord).where(
            ClassRecord.institution_id == contract.institution_id,
            ClassRecord.contract_id == contract.id,
            ClassRecord.status.in_(("pending", "disputed")),
        )
    ):
        record.status = states.move("class", states.CLASS, record.status, "void")
        record.decided_at = now
    session.flush()
    release_ready(session, contract, now)
    refund_remaining(session, contract, cause=f"closure:{contract.id}", now=now)
    contract.status = states.move("contract", states.CONTRACT, contract.status, "close")
