"""Complaints in the regulator's console: the list with its filters, and a complaint's page, where it is
assigned, answered and closed. Each post answers with the complaint's page."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.orm import Session

from api.auth import Now
from api.deps import SessionDep
from api.web.routing import PageRoute
from api.web.sessions import CsrfDep, PersonDep
from api.web.templating import render
from escrow.access.callers import Role, require_role
from escrow.access.users import SignedIn
from escrow.errors import InvalidRequest
from escrow.families.complaints import (
    assign_complaint,
    assignable_regulators,
    close_complaint,
    get_complaint,
    recent_complaints,
    reply_to_complaint,
)
from escrow.rules.families import ComplaintCategory
from escrow.rules.states import ComplaintStatus

router = APIRouter(prefix="/console", include_in_schema=False, route_class=PageRoute)
Text = Annotated[str, Form()]
COMPLAINT = "/institutions/{institution_id}/complaints/{complaint_id}"


@router.get("/complaints")
def complaints_page(
    request: Request, session: SessionDep, person: PersonDep, status: str = "open", category: str = ""
) -> Response:
    require_role(person.caller, Role.REGULATOR)
    open_only = status == "open"
    chosen = ComplaintStatus(status) if status in set(ComplaintStatus) else None
    rows = recent_complaints(
        session,
        caller=person.caller,
        status=chosen,
        category=ComplaintCategory(category) if category in set(ComplaintCategory) else None,
        limit=200,
    )
    if open_only:
        rows = [(c, name) for c, name in rows if c.status != ComplaintStatus.CLOSED]
    context = {
        "person": person,
        "rows": rows,
        "filters": {"status": status, "category": category},
        "statuses": list(ComplaintStatus),
        "categories": list(ComplaintCategory),
    }
    return render(request, "complaints.html", context)


def _page(
    request: Request,
    session: Session,
    person: SignedIn,
    institution_id: UUID,
    complaint_id: UUID,
    errors: dict[str, str] | None = None,
    status: int = 200,
) -> Response:
    require_role(person.caller, Role.REGULATOR)
    view = get_complaint(session, caller=person.caller, institution_id=institution_id, complaint_id=complaint_id)
    context = {
        "person": person,
        "view": view,
        "regulators": assignable_regulators(session, caller=person.caller, institution_id=institution_id),
        "errors": errors or {},
        "reply_action": f"/console/institutions/{institution_id}/complaints/{complaint_id}/reply",
    }
    return render(request, "complaint.html", context, status)


@router.get(COMPLAINT)
def complaint_page(
    request: Request, session: SessionDep, person: PersonDep, institution_id: UUID, complaint_id: UUID
) -> Response:
    return _page(request, session, person, institution_id, complaint_id)


def _back(institution_id: UUID, complaint_id: UUID, done: str) -> Response:
    return RedirectResponse(f"/console/institutions/{institution_id}/complaints/{complaint_id}?done={done}", 303)


@router.post(COMPLAINT + "/assign")
def assign_submit(
    request: Request,
    session: SessionDep,
    person: PersonDep,
    csrf: CsrfDep,
    now: Now,
    institution_id: UUID,
    complaint_id: UUID,
    assignee: Text = "",
) -> Response:
    try:
        assignee_id = UUID(assignee) if assignee else person.user.id
        assign_complaint(session, caller=person.caller, institution_id=institution_id, complaint_id=complaint_id,
                         assignee_id=assignee_id, now=now)  # fmt: skip
    except (ValueError, InvalidRequest):
        session.rollback()
        return _page(request, session, person, institution_id, complaint_id, {"assignee": "assignee"}, 422)
    return _back(institution_id, complaint_id, "assigned")


@router.post(COMPLAINT + "/reply")
def reply_submit(
    request: Request,
    session: SessionDep,
    person: PersonDep,
    csrf: CsrfDep,
    now: Now,
    institution_id: UUID,
    complaint_id: UUID,
    body: Text = "",
) -> Response:
    try:
        reply_to_complaint(session, caller=person.caller, institution_id=institution_id, complaint_id=complaint_id,
                           body=body, sender=request.app.state.messages, now=now)  # fmt: skip
    except InvalidRequest:
        session.rollback()
        return _page(request, session, person, institution_id, complaint_id, {"body": "required"}, 422)
    return _back(institution_id, complaint_id, "answered")


@router.post(COMPLAINT + "/close")
def close_submit(
    request: Request,
    session: SessionDep,
    person: PersonDep,
    csrf: CsrfDep,
    now: Now,
    institution_id: UUID,
    complaint_id: UUID,
    note: Text = "",
) -> Response:
    try:
        close_complaint(session, caller=person.caller, institution_id=institution_id, complaint_id=complaint_id,
                        note_text=note, sender=request.app.state.messages, now=now)  # fmt: skip
    except InvalidRequest:
        session.rollback()
        return _page(request, session, person, institution_id, complaint_id, {"note": "required"}, 422)
    return _back(institution_id, complaint_id, "closed")
