"""Families' complaints about the institution, at its desk: the list, and a complaint's page where the
institution answers in its thread (the bureau assigns and closes it in the console)."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.orm import Session

from api.auth import Now
from api.deps import SessionDep
from api.web.desk.common import desk_page, institution_of
from api.web.routing import PageRoute
from api.web.sessions import CsrfDep, PersonDep
from escrow.access.users import SignedIn
from escrow.errors import InvalidRequest
from escrow.families.complaints import get_complaint, recent_complaints, reply_to_complaint

router = APIRouter(prefix="/desk", include_in_schema=False, route_class=PageRoute)
Text = Annotated[str, Form()]


@router.get("/complaints")
def complaints_page(request: Request, session: SessionDep, person: PersonDep) -> Response:
    institution_id = institution_of(person)
    rows = recent_complaints(session, caller=person.caller, institution_id=institution_id, limit=200)
    return desk_page(request, session, person, "desk/complaints.html", {"rows": rows})


def _page(
    request: Request, session: Session, person: SignedIn, complaint_id: UUID, errors: dict[str, str], status: int = 200
) -> Response:
    institution_id = institution_of(person)
    view = get_complaint(session, caller=person.caller, institution_id=institution_id, complaint_id=complaint_id)
    context = {"view": view, "errors": errors, "reply_action": f"/desk/complaints/{complaint_id}/reply"}
    return desk_page(request, session, person, "desk/complaint.html", context, status)


@router.get("/complaints/{complaint_id}")
def complaint_page(request: Request, session: SessionDep, person: PersonDep, complaint_id: UUID) -> Response:
    return _page(request, session, person, complaint_id, {})


@router.post("/complaints/{complaint_id}/reply")
def reply_submit(
    request: Request,
    session: SessionDep,
    person: PersonDep,
    csrf: CsrfDep,
    now: Now,
    complaint_id: UUID,
    body: Text = "",
) -> Response:
    try:
        reply_to_complaint(
            session,
            caller=person.caller,
            institution_id=institution_of(person),
            complaint_id=complaint_id,
            body=body,
            sender=request.app.state.messages,
            now=now,
        )
    except InvalidRequest as refused:
        session.rollback()
        reason = str(refused.context.get("reason", "required"))  # the use case names it: empty or too_long
        return _page(request, session, person, complaint_id, {"body": reason}, 422)
    return RedirectResponse(f"/desk/complaints/{complaint_id}?done=answered", 303)
