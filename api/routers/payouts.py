"""Payout instructions and their settlement by the bank; holds and closure by the regulator."""

from __future__ import annotations

from uuid import UUID

from fastapi import APIRouter, Response

from api.auth import Now
from api.deps import ApiRoute, CallerDep, SessionDep
from api.routers import documented, mark_replayed
from api.routers.contracts import IdempotencyKeyHeader
from api.routers.institutions import Cursor, Limit
from api.schemas import ExecutionIn, HoldOut, InstitutionOut, PageOf, PayoutOut, ReasonIn
from escrow.db.paging import DEFAULT_LIMIT
from escrow.errors import Conflict
from escrow.flows import holds, payouts

router = APIRouter(tags=["payouts and holds"], route_class=ApiRoute)
INSTITUTION = "/institutions/{institution_id}"
PAYOUT = INSTITUTION + "/payouts/{payout_id}"


@router.post(
    INSTITUTION + "/payouts", status_code=201, operation_id="request_payout", responses=documented(403, 404, 409)
)
def request_payout(
    institution_id: UUID,
    key: IdempotencyKeyHeader,
    session: SessionDep,
    caller: CallerDep,
    now: Now,
    response: Response,
) -> PayoutOut:
    """The institution asks for everything released so far, whatever the cadence (not while on hold)."""
    payout, replayed = payouts.request_payout(
        session, caller=caller, institution_id=institution_id, idempotency_key=key, now=now
    )
    if payout is None:
        raise Conflict("nothing has been released to this institution since its last payout")
    mark_replayed(response, replayed)
    return PayoutOut.model_validate(payout)


@router.get(INSTITUTION + "/payouts", operation_id="list_payouts", responses=documented(403, 404))
def list_payouts(
    institution_id: UUID, session: SessionDep, caller: CallerDep, cursor: Cursor = None, limit: Limit = DEFAULT_LIMIT
) -> PageOf[PayoutOut]:
    """Payout instructions to the institution and refunds to families, with their state."""
    page = payouts.list_payouts(session, caller=caller, institution_id=institution_id, cursor=cursor, limit=limit)
    return PageOf(items=[PayoutOut.model_validate(p) for p in page.items], next_cursor=page.next_cursor)


def _settle(
    session: SessionDep,
    caller: CallerDep,
    now: Now,
    response: Response,
    institution_id: UUID,
    payout_id: UUID,
    key: str,
    executed: bool,
    note: str,
) -> PayoutOut:
    payout, replayed = payouts.settle_payout(
        session,
        caller=caller,
        institution_id=institution_id,
        payout_id=payout_id,
        executed=executed,
        note_text=note,
        idempotency_key=key,
        now=now,
    )
    mark_replayed(response, replayed)
    return PayoutOut.model_validate(payout)


@router.post(PAYOUT + "/execution", operation_id="confirm_payout_executed", responses=documented(403, 404, 409))
def confirm_payout_executed(
    institution_id: UUID,
    payout_id: UUID,
    body: ExecutionIn,
    key: IdempotencyKeyHeader,
    session: SessionDep,
    caller: CallerDep,
    now: Now,
    response: Response,
) -> PayoutOut:
    """The bank executed the instruction: the cash leaves the custody account."""
    return _settle(session, caller, now, response, institution_id, payout_id, key, True, body.bank_reference)


@router.post(PAYOUT + "/failure", operation_id="report_payout_failed", responses=documented(403, 404, 409))
def report_payout_failed(
    institution_id: UUID,
    payout_id: UUID,
    body: ReasonIn,
    key: IdempotencyKeyHeader,
    session: SessionDep,
    caller: CallerDep,
    now: Now,
    response: Response,
) -> PayoutOut:
    """The bank could not execute: released money returns to releasable; a refund stays owed."""
    return _settle(session, caller, now, response, institution_id, payout_id, key, False, body.reason)


@router.post(INSTITUTION + "/holds", status_code=201, operation_id="place_hold", responses=documented(403, 404, 409))
def place_hold(institution_id: UUID, body: ReasonIn, session: SessionDep, caller: CallerDep, now: Now) -> HoldOut:
    """Freeze the institution's payouts and new collections (refunds go on)."""
    return HoldOut.model_validate(
        holds.place_hold(session, caller=caller, institution_id=institution_id, reason=body.reason, now=now)
    )


@router.get(INSTITUTION + "/holds", operation_id="list_holds", responses=documented(403, 404))
def list_holds(institution_id: UUID, session: SessionDep, caller: CallerDep) -> PageOf[HoldOut]:
    """Holds placed on the institution, current and lifted."""
    page = holds.list_holds(session, caller=caller, institution_id=institution_id)
    return PageOf(items=[HoldOut.model_validate(h) for h in page.items], next_cursor=None)


@router.post(INSTITUTION + "/holds/{hold_id}/lift", operation_id="lift_hold", responses=documented(403, 404, 409))
def lift_hold(
    institution_id: UUID, hold_id: UUID, body: ReasonIn, session: SessionDep, caller: CallerDep, now: Now
) -> HoldOut:
    """Lift a hold with a reason."""
    return HoldOut.model_validate(
        holds.lift_hold(
            session, caller=caller, institution_id=institution_id, hold_id=hold_id, reason=body.reason, now=now
        )
    )


@router.post(INSTITUTION + "/closure", operation_id="close_institution", responses=documented(403, 404, 409))
def close_institution(
    institution_id: UUID,
    body: ReasonIn,
    key: IdempotencyKeyHeader,
    session: SessionDep,
    caller: CallerDep,
    now: Now,
    response: Response,
) -> InstitutionOut:
    """Close the institution: every family's unconsumed balance is refunded in one operation. It is closing
    until the bank has executed every family's refund, then closed (at once when no family is owed anything)."""
    institution, replayed = holds.close_institution(
        session, caller=caller, institution_id=institution_id, reason=body.reason, idempotency_key=key, now=now
    )
    mark_replayed(response, replayed)
    return InstitutionOut.model_validate(institution)


@router.post(
    INSTITUTION + "/settlement",
    status_code=201,
    operation_id="settle_closed_institution",
    responses=documented(403, 404, 409),
)
def settle_closed_institution(
    institution_id: UUID,
    body: ReasonIn,
    key: IdempotencyKeyHeader,
    session: SessionDep,
    caller: CallerDep,
    now: Now,
    response: Response,
) -> PayoutOut:
    """The final settlement of a closed institution, once every family's refund is paid: what it earned is
    instructed to it, with the regulator's reason; after the bank executes it, custody holds nothing."""
    payout, replayed = payouts.settle_closure(
        session, caller=caller, institution_id=institution_id, reason=body.reason, idempotency_key=key, now=now
    )
    mark_replayed(response, replayed)
    return PayoutOut.model_validate(payout)
