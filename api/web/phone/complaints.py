"""A parent's complaints to the regulator (投诉): written with a category, and followed in their thread."""

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
from escrow.errors import InvalidRequest
from escrow.families.complaints import get_complaint, recent_complaints, reply_to_complaint, submit_complaint
from escrow.families.overview import my_contracts
from escrow.rules.families import ComplaintCategory

router = APIRouter(prefix=PREFIX, include_in_schema=False, route_class=PhoneRoute)
Text = Annotated[str, Form()]


def _parse_uuid(value: str) -> UUID | None:
    try:
        return UUID(value)
    except ValueError:
        return None


@router.get("/complaints")
def complaints_page(request: Request, session: SessionDep, person: ParentDep) -> Response:
    rows = recent_complaints(session, caller=person.caller)
    return phone_page(request, session, person, "m/complaints.html", {"complaints": rows})


def _new_form(
    request: Request,
    session: Session,
    person: ParentSignedIn,
    form: dict[str, str],
    errors: dict[str, str],
    status: int,
) -> Response:
    contracts = my_contracts(session, caller=person.caller)
    institutions = {c.contract.institution_id: c.institution_name for c in contracts}
    context = {"institutions": institutions, "categories": list(ComplaintCategory), "form": form, "errors": errors}
    return phone_page(request, session, person, "m/complaint_new.html", context, status)


@router.get("/complaints/new")
def new_complaint_page(
    request: Request, session: SessionDep, person: ParentDep, institution: str = "", contract: str = ""
) -> Response:
    return _new_form(request, session, person, {"institution": institution, "contract": contract}, {}, 200)


@router.post("/complaints")
def complaint_submit(
    request: Request,
    session: SessionDep,
    person: ParentDep,
    csrf: CsrfDep,
    now: Now,
    institution: Text = "",
    category: Text = "",
    body: Text = "",
    contract: Text = "",
) -> Response:
    form = {"institution": institution, "category": category, "body": body, "contract": contract}
    errors: dict[str, str] = {}
    institution_id = _parse_uuid(institution)
    if institution_id is None:
        errors["institution"] = "required"
    if category not in set(ComplaintCategory):
        errors["category"] = "required"
    if errors or institution_id is None:
        return _new_form(request, session, person, form, errors, 422)
    try:
        row = submit_complaint(session, caller=person.caller, institution_id=institution_id,
                               category=ComplaintCategory(category), body=body,
                               contract_id=_parse_uuid(contract), now=now)  # fmt: skip
    except InvalidRequest as refused:
        reason = str(refused.context.get("reason", "invalid"))
        return _new_form(request, session, person, form, {"body": "required" if reason == "empty" else reason}, 422)
    return RedirectResponse(f"{PREFIX}/complaints/{row.institution_id}/{row.id}?done=submitted", status_code=303)


def _complaint_page(
    request: Request,
    session: Session,
    person: ParentSignedIn,
    institution_id: UUID,
    complaint_id: UUID,
    *,
    errors: dict[str, str],
    status: int = 200,
) -> Response:
    view = get_complaint(session, caller=person.caller, institution_id=institution_id, complaint_id=complaint_id)
    return phone_page(request, session, person, "m/complaint.html", {"view": view, "errors": errors}, status)


@router.get("/complaints/{institution_id}/{complaint_id}")
def complaint_page(
    request: Request, session: SessionDep, person: ParentDep, institution_id: UUID, complaint_id: UUID
) -> Response:
    return _complaint_page(request, session, person, institution_id, complaint_id, errors={})


@router.post("/complaints/{institution_id}/{complaint_id}/messages")
def message_submit(
    request: Request,
    session: SessionDep,
    person: ParentDep,
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
        return _complaint_page(request, session, person, institution_id, complaint_id, errors={"body": "required"},
                               status=422)  # fmt: skip
    return RedirectResponse(f"{PREFIX}/complaints/{institution_id}/{complaint_id}?done=sent", status_code=303)
