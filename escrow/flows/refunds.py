"""Refund requests: the parent asks for what is unconsumed; the institution answers within the
policy's working days, or the request is deemed approved. A hold never blocks a refund."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from uuid import UUID

from sqlalchemy import select
from sqlalchemy.orm import Session

from escrow.access.audit import SYSTEM, Actor, actor_of, note
from escrow.access.callers import Caller, Role, require_role
from escrow.db.paging import Page, keyset
from escrow.db.records import Contract, Payout, RefundRequest
from escrow.errors import Conflict, NotFound
from escrow.flows.consumption import refund_remaining, refundable_fen, release_ready
from escrow.ids import new_id
from escrow.ledger.idempotency import IdempotencyKey, Outcome, run_once
from escrow.registry.calendar import jurisdiction_today, official_calendar
from escrow.registry.contracts import visible_contract
from escrow.registry.institutions import own_institution, visible_institution
from escrow.registry.jurisdictions import policy_version
from escrow.rules import states
from escrow.rules.calendar import local_date
from escrow.rules.states import ContractStatus, PayoutKind, RefundStatus


def request_refund(
    session: Session, *, caller: Caller, institution_id: UUID, contract_id: UUID, reason: str, now: datetime
) -> RefundRequest:
    """Ask for the unconsumed balance back; release of the contract waits until it is answered."""
    require_role(caller, Role.PARENT)
    contract = visible_contract(session, caller, institution_id, contract_id, lock=True)
    if contract.status != ContractStatus.ACTIVE:
        raise Conflict(f"contract {contract_id} is {contract.status}; it has nothing left to refund")
    if _open(session, contract) is not None:
        raise Conflict("a refund request for this contract is already open; wait for its answer")
    policy = policy_version(
        session, jurisdiction_code=contract.policy_jurisdiction, effective_date=contract.policy_effective_date
    )
    today = jurisdiction_today(session, jurisdiction_code=contract.policy_jurisdiction, now=now)
    row = RefundRequest(
        institution_id=institution_id,
        id=new_id(),
        contract_id=contract_id,
        reason=reason,
        respond_by=official_calendar(session).add_working_days(today, policy.refund_response_working_days),
        requested_at=now,
    )
    session.add(row)
    session.flush()
    note(
        session,
        caller,
        "refund.requested",
        institution_id=institution_id,
        object_type="refund_request",
        object_id=row.id,
        at=now,
        after={"contract_id": contract_id, "reason": reason, "respond_by": row.respond_by},
    )
    return row


def decide_refund(
    session: Session,
    *,
    caller: Caller,
    institution_id: UUID,
    request_id: UUID,
    approve: bool,
    reason: str | None,
    idempotency_key: str,
    now: datetime,
) -> Outcome[RefundRequest]:
    """The institution approves (the family is paid what is unconsumed; a reason is kept if given) or
    rejects with a reason."""
    own_institution(session, caller, institution_id)

    def perform() -> RefundRequest:
        row, contract = _request_for_update(session, caller, institution_id, request_id)
        if approve:
            _approve(session, row, contract, event="approve", decided_by=caller, now=now, reason=reason)
        else:
            row.status = states.move("refund request", states.REFUND, row.status, "reject")
            row.decision_reason, row.decided_by, row.decided_at = reason, caller.principal, now
            session.flush()
            note(
                session,
                caller,
                "refund.rejected",
                institution_id=institution_id,
                object_type="refund_request",
                object_id=row.id,
                at=now,
                before={"status": RefundStatus.OPEN},
                after={"status": RefundStatus.REJECTED, "reason": reason},
            )
            release_ready(session, contract, now)
        return row

    return run_once(
        session,
        institution_id=institution_id,
        key=IdempotencyKey(caller.principal, idempotency_key),
        request={"operation": "decide_refund", "request_id": str(request_id), "approve": approve, "reason": reason},
        perform=perform,
        planned={"request_id": str(request_id)},
        recall=lambda stored: session.get_one(RefundRequest, (institution_id, UUID(stored["request_id"]))),
    )


def deem_refunds_approved(
    session: Session, *, now: datetime, institution_ids: Collection[UUID] | None = None
) -> list[UUID]:
    """Approve every request the institution left unanswered past respond_by (of these institutions only,
    when given); safe to run again."""
    query = select(RefundRequest.institution_id, RefundRequest.id).where(
        RefundRequest.status == RefundStatus.OPEN, RefundRequest.respond_by < local_date(now)
    )
    if institution_ids is not None:
        query = query.where(RefundRequest.institution_id.in_(institution_ids))
    due = session.execute(query).all()
    deemed = []
    for institution_id, request_id in due:
        contract_id = session.scalar(
            select(RefundRequest.contract_id).where(
                RefundRequest.institution_id == institution_id, RefundRequest.id == request_id
            )
        )
        contract = session.get_one(Contract, (institution_id, contract_id), with_for_update={"key_share": True})
        row = session.get_one(
            RefundRequest, (institution_id, request_id), with_for_update={"key_share": True}, populate_existing=True
        )
        if row.status != RefundStatus.OPEN:
            continue
        _approve(session, row, contract, event="deem", decided_by=SYSTEM, now=now)
        deemed.append(row.id)
    return deemed


def _approve(
    session: Session,
    row: RefundRequest,
    contract: Contract,
    *,
    event: str,
    decided_by: Caller | Actor,
    now: datetime,
    reason: str | None = None,
) -> None:
    row.status = states.move("refund request", states.REFUND, row.status, event)
    row.decided_by, row.decided_at, row.decision_reason = actor_of(decided_by).name, now, reason
    contract.status = states.move("contract", states.CONTRACT, contract.status, "refund")
    session.flush()
    release_ready(session, contract, now)  # classes confirmed while the request was open
    row.amount_fen = refundable_fen(session, contract)
    refund_remaining(session, contract, cause=f"request:{row.id}", now=now)
    note(
        session,
        decided_by,
        f"refund.{row.status}",
        institution_id=row.institution_id,
        object_type="refund_request",
        object_id=row.id,
        at=now,
        before={"status": RefundStatus.OPEN},
        after={"status": row.status, "amount_fen": row.amount_fen, "reason": reason},
    )


def refund_payouts(session: Session, row: RefundRequest) -> list[Payout]:
    """The instructions paying this request's refund to the family, oldest first, as the bank settled them
    (a failed one is followed by a new instruction; money owed after an upheld dispute by another)."""
    if row.decided_at is None:
        return []
    return list(
        session.scalars(
            select(Payout)
            .where(
                Payout.institution_id == row.institution_id,
                Payout.contract_id == row.contract_id,
                Payout.kind == PayoutKind.REFUND,
                Payout.instructed_at >= row.decided_at,
            )
            .order_by(Payout.instructed_at, Payout.id)
        )
    )


def _open(session: Session, contract: Contract) -> RefundRequest | None:
    return session.scalars(
        select(RefundRequest).where(
            RefundRequest.institution_id == contract.institution_id,
            RefundRequest.contract_id == contract.id,
            RefundRequest.status == RefundStatus.OPEN,
        )
    ).one_or_none()


def _request_for_update(
    session: Session, caller: Caller, institution_id: UUID, request_id: UUID
) -> tuple[RefundRequest, Contract]:
    contract_id = session.scalar(
        select(RefundRequest.contract_id).where(
            RefundRequest.institution_id == institution_id, RefundRequest.id == request_id
        )
    )
    if contract_id is None:
        raise NotFound(f"refund request {request_id} does not exist or is outside your scope")
    contract = visible_contract(session, caller, institution_id, contract_id, lock=True)
    row = session.get_one(
        RefundRequest, (institution_id, request_id), with_for_update={"key_share": True}, populate_existing=True
    )
    return row, contract


def list_refund_requests(
    session: Session, *, caller: Caller, institution_id: UUID, contract_id: UUID | None, cursor: str | None, limit: int
) -> Page[RefundRequest]:
    visible_institution(session, caller, institution_id)
    query = select(RefundRequest).where(RefundRequest.institution_id == institution_id)
    if contract_id is not None or caller.role is Role.PARENT:
        if contract_id is None:
            raise NotFound("name the contract whose refund requests you want (contract_id)")
        visible_contract(session, caller, institution_id, contract_id)
        query = query.where(RefundRequest.contract_id == contract_id)
    return keyset(session, query, RefundRequest.id, cursor=cursor, limit=limit)
