"""Classes given and confirmed or disputed; refund requests and their answers."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Query, Response
from sqlalchemy.orm import Session

from api.auth import Now
from api.deps import ApiRoute, CallerDep, SessionDep
from api.routers import documented, mark_replayed
from api.routers.contracts import CONTRACT, IdempotencyKeyHeader
from api.routers.institutions import Cursor, Limit
from api.schemas import (
    ApprovalIn,
    ClassIn,
    ClassOut,
    PageOf,
    ReasonIn,
    RefundPaymentOut,
    RefundRequestOut,
    ResolutionIn,
)
from escrow.db.paging import DEFAULT_LIMIT
from escrow.db.records import RefundRequest
from escrow.flows import classes, refunds

router = APIRouter(tags=["consumption"], route_class=ApiRoute)
CLASS = "/institutions/{institution_id}/classes/{class_id}"
REQUEST = "/institutions/{institution_id}/refund-requests/{request_id}"


@router.post(CONTRACT + "/classes", status_code=201, operation_id="record_class", responses=documented(403, 404, 409))
def record_class(
    institution_id: UUID,
    contract_id: UUID,
    body: ClassIn,
    key: IdempotencyKeyHeader,
    session: SessionDep,
    caller: CallerDep,
    now: Now,
    response: Response,
) -> ClassOut:
    """Record hours given; pending until the parent confirms or the policy's working days pass."""
    row, replayed = classes.record_class(
        session,
        caller=caller,
        institution_id=institution_id,
        contract_id=contract_id,
        hours=body.hours,
        given_on=body.given_on,
        idempotency_key=key,
        now=now,
    )
    mark_replayed(response, replayed)
    return ClassOut.model_validate(row)


@router.get(CONTRACT + "/classes", operation_id="list_classes", responses=documented(404))
def list_classes(
    institution_id: UUID,
    contract_id: UUID,
    session: SessionDep,
    caller: CallerDep,
    cursor: Cursor = None,
    limit: Limit = DEFAULT_LIMIT,
) -> PageOf[ClassOut]:
    """The classes recorded under a contract."""
    page = classes.list_classes(
        session, caller=caller, institution_id=institution_id, contract_id=contract_id, cursor=cursor, limit=limit
    )
    return PageOf(items=[ClassOut.model_validate(c) for c in page.items], next_cursor=page.next_cursor)


@router.post(CLASS + "/confirmation", operation_id="confirm_class", responses=documented(403, 404, 409))
def confirm_class(
    institution_id: UUID,
    class_id: UUID,
    key: IdempotencyKeyHeader,
    session: SessionDep,
    caller: CallerDep,
    now: Now,
    response: Response,
) -> ClassOut:
    """The parent confirms a class: its share of the prepayment is released to the institution."""
    row, replayed = classes.confirm_class(
        session, caller=caller, institution_id=institution_id, class_id=class_id, idempotency_key=key, now=now
    )
    mark_replayed(response, replayed)
    return ClassOut.model_validate(row)


@router.post(CLASS + "/dispute", operation_id="dispute_class", responses=documented(403, 404, 409))
def dispute_class(
    institution_id: UUID,
    class_id: UUID,
    body: ReasonIn,
    key: IdempotencyKeyHeader,
    session: SessionDep,
    caller: CallerDep,
    now: Now,
    response: Response,
) -> ClassOut:
    """The parent disputes a class: release for the contract stops until the regulator resolves it."""
    row, replayed = classes.dispute_class(
        session,
        caller=caller,
        institution_id=institution_id,
        class_id=class_id,
        reason=body.reason,
        idempotency_key=key,
        now=now,
    )
    mark_replayed(response, replayed)
    return ClassOut.model_validate(row)


@router.post(CLASS + "/resolution", operation_id="resolve_dispute", responses=documented(403, 404, 409))
def resolve_dispute(
    institution_id: UUID,
    class_id: UUID,
    body: ResolutionIn,
    key: IdempotencyKeyHeader,
    session: SessionDep,
    caller: CallerDep,
    now: Now,
    response: Response,
) -> ClassOut:
    """The regulator resolves a dispute: upheld returns the hours to the family, rejected confirms the class."""
    row, replayed = classes.resolve_dispute(
        session,
        caller=caller,
        institution_id=institution_id,
        class_id=class_id,
        upheld=body.outcome == "upheld",
        note=body.note,
        idempotency_key=key,
        now=now,
    )
    mark_replayed(response, replayed)
    return ClassOut.model_validate(row)


@router.post(
    CONTRACT + "/refund-requests", status_code=201, operation_id="request_refund", responses=documented(403, 404, 409)
)
def request_refund(
    institution_id: UUID, contract_id: UUID, body: ReasonIn, session: SessionDep, caller: CallerDep, now: Now
) -> RefundRequestOut:
    """The parent asks for the unconsumed balance back (everything, before the course starts)."""
    row = refunds.request_refund(
        session, caller=caller, institution_id=institution_id, contract_id=contract_id, reason=body.reason, now=now
    )
    return refund_out(session, row)


@router.get(
    "/institutions/{institution_id}/refund-requests", operation_id="list_refund_requests", responses=documented(404)
)
def list_refund_requests(
    institution_id: UUID,
    session: SessionDep,
    caller: CallerDep,
    contract_id: Annotated[UUID | None, Query(description="required for parents")] = None,
    cursor: Cursor = None,
    limit: Limit = DEFAULT_LIMIT,
) -> PageOf[RefundRequestOut]:
    """Refund requests of an institution, or of one contract."""
    page = refunds.list_refund_requests(
        session, caller=caller, institution_id=institution_id, contract_id=contract_id, cursor=cursor, limit=limit
    )
    return PageOf(items=[refund_out(session, r) for r in page.items], next_cursor=page.next_cursor)


def refund_out(session: Session, row: RefundRequest) -> RefundRequestOut:
    payments = [
        RefundPaymentOut(
            payout_id=p.id,
            amount_fen=p.amount_fen,
            status=p.status,
            instructed_at=p.instructed_at,
            executed_at=p.settled_at if p.status == "executed" else None,
        )
        for p in refunds.refund_payouts(session, row)
    ]
    return RefundRequestOut.model_validate(row).model_copy(update={"payments": payments})


def _decide(
    session: SessionDep,
    caller: CallerDep,
    now: Now,
    response: Response,
    institution_id: UUID,
    request_id: UUID,
    key: str,
    approve: bool,
    reason: str | None,
) -> RefundRequestOut:
    row, replayed = refunds.decide_refund(
        session,
        caller=caller,
        institution_id=institution_id,
        request_id=request_id,
        approve=approve,
        reason=reason,
        idempotency_key=key,
        now=now,
    )
    mark_replayed(response, replayed)
    return refund_out(session, row)


@router.post(REQUEST + "/approval", operation_id="approve_refund", responses=documented(403, 404, 409))
def approve_refund(
    institution_id: UUID,
    request_id: UUID,
    key: IdempotencyKeyHeader,
    session: SessionDep,
    caller: CallerDep,
    now: Now,
    response: Response,
    body: ApprovalIn | None = None,
) -> RefundRequestOut:
    """The institution approves: what is unconsumed becomes a payout instruction to the family."""
    reason = body.reason if body else None
    return _decide(session, caller, now, response, institution_id, request_id, key, True, reason)


@router.post(REQUEST + "/rejection", operation_id="reject_refund", responses=documented(403, 404, 409))
def reject_refund(
    institution_id: UUID,
    request_id: UUID,
    body: ReasonIn,
    key: IdempotencyKeyHeader,
    session: SessionDep,
    caller: CallerDep,
    now: Now,
    response: Response,
) -> RefundRequestOut:
    """The institution rejects with a reason; release for the contract resumes."""
    return _decide(session, caller, now, response, institution_id, request_id, key, False, body.reason)
