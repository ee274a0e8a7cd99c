"""A regulator's actions on an institution: place and lift a hold, resolve a dispute, add staff, close
(its bulk refund previewed family by family before it is confirmed). Each answers with the page it acted on."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from api.auth import Now
from api.deps import SessionDep
from api.web.pages.institutions import contract_context, institution_context
from api.web.routing import PageRoute
from api.web.sessions import CsrfDep, PersonDep
from api.web.templating import render
from escrow.access.users import SignedIn, add_staff
from escrow.errors import InvalidRequest
from escrow.flows.classes import contract_of_class, resolve_dispute
from escrow.flows.holds import close_institution, lift_hold, place_hold, preview_closure
from escrow.ids import new_id
from escrow.registry.institutions import visible_institution

router = APIRouter(prefix="/console/institutions/{institution_id}", include_in_schema=False, route_class=PageRoute)
Text = Annotated[str, Form()]


def _back(institution_id: UUID, done: str) -> Response:
    return RedirectResponse(f"/console/institutions/{institution_id}?done={done}", status_code=303)


def _refused(
    request: Request, session: SessionDep, person: SignedIn, institution_id: UUID, field: str, reason: str
) -> Response:
    """The institution's page again, saying beside the field what was wrong; nothing the form began is kept."""
    session.rollback()
    return render(
        request, "institution.html", institution_context(session, person, institution_id, {field: reason}), 422
    )


@router.post("/holds")
def place_hold_submit(
    request: Request,
    session: SessionDep,
    person: PersonDep,
    csrf: CsrfDep,
    now: Now,
    institution_id: UUID,
    reason: Text = "",
) -> Response:
    if not reason.strip():
        return _refused(request, session, person, institution_id, "hold-reason", "required")
    place_hold(session, caller=person.caller, institution_id=institution_id, reason=reason.strip(), now=now)
    return _back(institution_id, "held")


@router.post("/holds/{hold_id}/lift")
def lift_hold_submit(
    request: Request,
    session: SessionDep,
    person: PersonDep,
    csrf: CsrfDep,
    now: Now,
    institution_id: UUID,
    hold_id: UUID,
    reason: Text = "",
) -> Response:
    if not reason.strip():
        return _refused(request, session, person, institution_id, f"lift-{hold_id}", "required")
    lift_hold(
        session, caller=person.caller, institution_id=institution_id, hold_id=hold_id, reason=reason.strip(), now=now
    )
    return _back(institution_id, "lifted")


@router.post("/classes/{class_id}/resolve")
def resolve_dispute_submit(
    request: Request,
    session: SessionDep,
    person: PersonDep,
    csrf: CsrfDep,
    now: Now,
    institution_id: UUID,
    class_id: UUID,
    outcome: Text = "",
    note: Text = "",
    key: Text = "",
) -> Response:
    if outcome not in ("uphold", "reject") or not note.strip():
        field = f"note-{class_id}" if outcome in ("uphold", "reject") else f"outcome-{class_id}"
        return _refused_on_contract(request, session, person, institution_id, class_id, field)
    resolve_dispute(
        session,
        caller=person.caller,
        institution_id=institution_id,
        class_id=class_id,
        upheld=outcome == "uphold",
        note=note.strip(),
        idempotency_key=key or str(new_id()),
        now=now,
    )
    return _back(institution_id, "resolved")


@router.post("/staff")
def add_staff_submit(
    request: Request,
    session: SessionDep,
    person: PersonDep,
    csrf: CsrfDep,
    now: Now,
    institution_id: UUID,
    name: Text = "",
    password: Text = "",
) -> Response:
    try:
        add_staff(session, caller=person.caller, institution_id=institution_id, name=name, password=password, now=now)
    except InvalidRequest as refused:
        field, reason = str(refused.context.get("field", "name")), str(refused.context.get("reason", "invalid"))
        return _refused(request, session, person, institution_id, f"staff-{field}", reason)
    return _back(institution_id, "staff")


@router.get("/close")
def close_preview_page(
    request: Request, session: SessionDep, person: PersonDep, now: Now, institution_id: UUID
) -> Response:
    return render(request, "close.html", _close_context(session, person, institution_id, now, {}))


def _close_context(
    session: SessionDep, person: SignedIn, institution_id: UUID, now: datetime, errors: dict[str, str]
) -> dict[str, Any]:
    institution = visible_institution(session, person.caller, institution_id)
    refunds = preview_closure(session, caller=person.caller, institution_id=institution_id, now=now)
    return {
        "person": person,
        "institution": institution,
        "refunds": refunds,
        "total_fen": sum(r.refund_fen for r in refunds),
        "key": str(new_id()),
        "errors": errors,
    }


@router.post("/close")
def close_submit(
    request: Request,
    session: SessionDep,
    person: PersonDep,
    csrf: CsrfDep,
    now: Now,
    institution_id: UUID,
    reason: Text = "",
    key: Text = "",
) -> Response:
    if not reason.strip() or not key:
        context = _close_context(session, person, institution_id, now, {"close-reason": "required"})
        return render(request, "close.html", context, 422)
    institution, _ = close_institution(
        session,
        caller=person.caller,
        institution_id=institution_id,
        reason=reason.strip(),
        idempotency_key=key,
        now=now,
    )
    return _back(institution_id, institution.status)


def _refused_on_contract(
    request: Request, session: SessionDep, person: SignedIn, institution_id: UUID, class_id: UUID, field: str
) -> Response:
    contract_id = contract_of_class(session, caller=person.caller, institution_id=institution_id, class_id=class_id)
    context = contract_context(session, person, institution_id, contract_id, {field: "required"})
    return render(request, "contract.html", context, 422)
