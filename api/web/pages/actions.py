"""A regulator's actions on an institution: place and lift a hold, resolve a dispute, add staff, close
(its bulk refund previewed family by family before it is confirmed). Each answers with the page it acted on."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from api.auth import Now
from api.deps import SessionDep
from api.web.routing import PageRoute
from api.web.sessions import CsrfDep, PersonDep
from api.web.templating import render
from escrow.access.users import add_staff
from escrow.errors import InvalidRequest
from escrow.flows.classes import resolve_dispute
from escrow.flows.holds import close_institution, lift_hold, place_hold, preview_closure
from escrow.ids import new_id
from escrow.registry.institutions import visible_institution

router = APIRouter(prefix="/console/institutions/{institution_id}", include_in_schema=False, route_class=PageRoute)
Text = Annotated[str, Form()]


def _back(institution_id: UUID, done: str) -> Response:
    return RedirectResponse(f"/console/institutions/{institution_id}?done={done}", status_code=303)


def _refused(request: Request, person: object, institution_id: UUID, action: str, field: str, reason: str) -> Response:
    context = {"person": person, "institution_id": institution_id, "action": action, "field": field, "reason": reason}
    return render(request, "action_refused.html", context, 422)


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
        return _refused(request, person, institution_id, "hold", "reason", "required")
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
        return _refused(request, person, institution_id, "lift", "reason", "required")
    lift_hold(session, caller=person.caller, institution_id=institution_id, hold_id=hold_id, reason=reason, now=now)
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
        return _refused(request, person, institution_id, "dispute", "note" if outcome else "outcome", "required")
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
        return _refused(request, person, institution_id, "staff", field, reason)
    return _back(institution_id, "staff")


@router.get("/close")
def close_preview_page(
    request: Request, session: SessionDep, person: PersonDep, now: Now, institution_id: UUID
) -> Response:
    institution = visible_institution(session, person.caller, institution_id)
    refunds = preview_closure(session, caller=person.caller, institution_id=institution_id, now=now)
    context = {
        "person": person,
        "institution": institution,
        "refunds": refunds,
        "total_fen": sum(r.refund_fen for r in refunds),
        "key": str(new_id()),
        "errors": {},
    }
    return render(request, "close.html", context)


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
        return _refused(request, person, institution_id, "close", "reason", "required")
    close_institution(
        session,
        caller=person.caller,
        institution_id=institution_id,
        reason=reason.strip(),
        idempotency_key=key,
        now=now,
    )
    return _back(institution_id, "closed")
