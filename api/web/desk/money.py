"""Money out of escrow: refund requests answered before their deadline (approved, or refused with a reason,
as the flows allow), and payouts of what was released, requested and followed through the bank."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.orm import Session

from api.auth import Now
from api.deps import SessionDep
from api.web.desk.common import Translate, desk_page, institution_of, new_key, translator
from api.web.routing import PageRoute
from api.web.sessions import CsrfDep, PersonDep
from escrow.access.audit import all_or_nothing
from escrow.access.users import SignedIn
from escrow.errors import Conflict, IdempotencyConflict, InstitutionOnHold
from escrow.flows.books import institution_balances
from escrow.flows.desk import answered_refunds, desk_contracts, desk_today, open_refunds
from escrow.flows.payouts import list_payouts, request_payout
from escrow.flows.refunds import decide_refund, refund_payouts

router = APIRouter(prefix="/desk", include_in_schema=False, route_class=PageRoute)
Text = Annotated[str, Form()]
MAX_REASON = 500


@router.get("/refunds")
def refunds_page(request: Request, session: SessionDep, person: PersonDep, now: Now, done: str = "") -> Response:
    return _refunds(request, session, person, now, errors={}, done=done)


def _refunds(
    request: Request,
    session: Session,
    person: SignedIn,
    now: datetime,
    *,
    errors: dict[str, str],
    done: str = "",
    status: int = 200,
) -> Response:
    """Open requests by their deadline, each with what approving it would pay; the answered ones after,
    each followed to the bank."""
    institution_id, caller = institution_of(person), person.caller
    answered = answered_refunds(session, caller=caller, institution_id=institution_id)
    context = {
        "open": open_refunds(session, caller=caller, institution_id=institution_id),
        "answered": answered,
        "payments": {r.request.id: refund_payouts(session, r.request) for r in answered},
        "today": desk_today(session, caller=caller, institution_id=institution_id, now=now),
        "errors": errors,
        "done": done,
        "key": new_key("refund"),
    }
    return desk_page(request, session, person, "desk/refunds.html", context, status)


@router.post("/refunds/{request_id}/{answer}")
def answer_refund_submit(
    request: Request,
    session: SessionDep,
    person: PersonDep,
    csrf: CsrfDep,
    now: Now,
    request_id: UUID,
    answer: str,
    reason: Text = "",
    key: Text = "",
) -> Response:
    """Approve (a note kept if given) or refuse (a reason required, which the family sees)."""
    _ = translator(request)
    reason, field = reason.strip(), f"reason-{request_id}"
    problem = _answer_problem(answer, reason, _)
    if problem:
        return _refunds(request, session, person, now, errors={field: problem}, status=422)
    try:
        all_or_nothing(
            session,
            lambda: decide_refund(
                session,
                caller=person.caller,
                institution_id=institution_of(person),
                request_id=request_id,
                approve=answer == "approve",
                reason=reason or None,
                idempotency_key=key or new_key("refund"),
                now=now,
            ),
        )
    except IdempotencyConflict:
        errors = {field: _("This form was already sent with another answer: reload the page.")}
        return _refunds(request, session, person, now, errors=errors, status=422)
    except Conflict:
        errors = {field: _("This request was answered already, or deemed approved: see below.")}
        return _refunds(request, session, person, now, errors=errors, status=422)
    done = "approved" if answer == "approve" else "rejected"
    return RedirectResponse(f"/desk/refunds?done={done}#refund-{request_id}", status_code=303)


def _answer_problem(answer: str, reason: str, _: Translate) -> str | None:
    if answer not in ("approve", "reject"):
        return _("Approve or refuse.")
    if answer == "reject" and not reason:
        return _("Give the family the reason for refusing.")
    if len(reason) > MAX_REASON:
        return _("A reason has at most %(n)s characters.") % {"n": MAX_REASON}
    return None


@router.get("/payouts")
def payouts_page(request: Request, session: SessionDep, person: PersonDep, done: str = "") -> Response:
    return _payouts(request, session, person, errors={}, done=done)


def _payouts(
    request: Request, session: Session, person: SignedIn, *, errors: dict[str, str], done: str = "", status: int = 200
) -> Response:
    institution_id, caller = institution_of(person), person.caller
    payouts = list_payouts(session, caller=caller, institution_id=institution_id, cursor=None, limit=200).items
    rows = desk_contracts(session, caller=caller, institution_id=institution_id)
    context = {
        "balances": institution_balances(session, caller=caller, institution_id=institution_id, as_of=None).by_kind,
        "payouts": sorted(payouts, key=lambda p: p.instructed_at, reverse=True),
        "students": {r.contract.id: r.contract.student_name for r in rows},
        "errors": errors,
        "done": done,
        "key": new_key("payout"),
    }
    return desk_page(request, session, person, "desk/payouts.html", context, status)


@router.post("/payouts")
def request_payout_submit(
    request: Request, session: SessionDep, person: PersonDep, csrf: CsrfDep, now: Now, key: Text = ""
) -> Response:
    """Everything released so far, instructed to the bank whatever the cadence (not while on hold)."""
    _ = translator(request)
    try:
        payout, _replayed = all_or_nothing(
            session,
            lambda: request_payout(
                session,
                caller=person.caller,
                institution_id=institution_of(person),
                idempotency_key=key or new_key("payout"),
                now=now,
            ),
        )
    except InstitutionOnHold:
        errors = {"payout": _("A hold is in place on your institution: payouts to you are blocked.")}
        return _payouts(request, session, person, errors=errors, status=422)
    if payout is None:
        errors = {"payout": _("Nothing has been released to you since your last payout.")}
        return _payouts(request, session, person, errors=errors, status=422)
    return RedirectResponse(f"/desk/payouts?done=requested#payout-{payout.id}", status_code=303)
