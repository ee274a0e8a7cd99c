"""A refund: previewed (what it would return, changing nothing), asked for with a reason, and followed from
the institution's answer to the bank's payment."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.orm import Session

from api.auth import Now
from api.deps import SessionDep
from api.web.phone.face import PREFIX, ParentDep, PhoneRoute, phone_page
from api.web.sessions import CsrfDep
from escrow.access.parents import ParentSignedIn
from escrow.families.overview import contract_summary
from escrow.families.refunds import my_refunds, preview_refund, refund_progress
from escrow.flows.refunds import request_refund

router = APIRouter(prefix=PREFIX, include_in_schema=False, route_class=PhoneRoute)
Text = Annotated[str, Form()]


def _refund_form(
    request: Request,
    session: Session,
    person: ParentSignedIn,
    institution_id: UUID,
    contract_id: UUID,
    *,
    errors: dict[str, str],
    reason: str = "",
    status: int = 200,
) -> Response:
    caller = person.caller
    context = {
        "summary": contract_summary(session, caller=caller, institution_id=institution_id, contract_id=contract_id),
        "preview": preview_refund(session, caller=caller, institution_id=institution_id, contract_id=contract_id),
        "errors": errors,
        "reason": reason,
    }
    return phone_page(request, session, person, "m/refund.html", context, status)


@router.get("/contracts/{institution_id}/{contract_id}/refund")
def refund_page(
    request: Request, session: SessionDep, person: ParentDep, institution_id: UUID, contract_id: UUID
) -> Response:
    return _refund_form(request, session, person, institution_id, contract_id, errors={})


@router.post("/contracts/{institution_id}/{contract_id}/refund")
def refund_submit(
    request: Request,
    session: SessionDep,
    person: ParentDep,
    csrf: CsrfDep,
    now: Now,
    institution_id: UUID,
    contract_id: UUID,
    reason: Text = "",
) -> Response:
    if not reason.strip() or len(reason) > 500:
        errors = {"reason": "required" if not reason.strip() else "too_long"}
        return _refund_form(request, session, person, institution_id, contract_id, errors=errors, reason=reason,
                            status=422)  # fmt: skip
    preview = preview_refund(session, caller=person.caller, institution_id=institution_id, contract_id=contract_id)
    if preview.open_request is not None:  # sent twice: follow the one already asked for
        return RedirectResponse(f"{PREFIX}/refunds/{institution_id}/{preview.open_request.id}", status_code=303)
    asked = request_refund(session, caller=person.caller, institution_id=institution_id, contract_id=contract_id,
                           reason=reason.strip(), now=now)  # fmt: skip
    return RedirectResponse(f"{PREFIX}/refunds/{institution_id}/{asked.id}?done=asked", status_code=303)


@router.get("/refunds")
def refunds_page(request: Request, session: SessionDep, person: ParentDep) -> Response:
    return phone_page(
        request, session, person, "m/refunds.html", {"refunds": my_refunds(session, caller=person.caller)}
    )


@router.get("/refunds/{institution_id}/{request_id}")
def refund_status_page(
    request: Request, session: SessionDep, person: ParentDep, institution_id: UUID, request_id: UUID
) -> Response:
    progress = refund_progress(session, caller=person.caller, institution_id=institution_id, request_id=request_id)
    return phone_page(request, session, person, "m/refund_status.html", {"progress": progress})
