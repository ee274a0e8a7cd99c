"""Contracts: the list, one contract with its money and classes, and signing a new one with the policy's
caps checked as the form is filled in (htmx posts the form on each change) and again on submit."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.orm import Session

from api.auth import Now
from api.deps import SessionDep
from api.web.desk.common import FormDep, Translate, desk_page, institution_of, new_key, translator
from api.web.desk.contract_form import FIELDS, Draft, policy_messages, read_draft
from api.web.routing import PageRoute
from api.web.sessions import CsrfDep, PersonDep
from api.web.templating import render
from escrow.access.audit import all_or_nothing
from escrow.access.users import SignedIn
from escrow.db.records import Course
from escrow.errors import Conflict, InvalidRequest, NotFound, PolicyViolation
from escrow.flows.classes import list_classes
from escrow.flows.collections import list_collections
from escrow.flows.desk import LISTED, contract_row, desk_contracts
from escrow.flows.refunds import list_refund_requests
from escrow.registry.contracts import TermsCheck, check_terms, sign_contract
from escrow.registry.courses import list_courses

router = APIRouter(prefix="/desk/contracts", include_in_schema=False, route_class=PageRoute)
STATUSES = ("active", "refunded", "closed")


@router.get("")
def contracts_page(request: Request, session: SessionDep, person: PersonDep, q: str = "", status: str = "") -> Response:
    rows = desk_contracts(
        session,
        caller=person.caller,
        institution_id=institution_of(person),
        search=q,
        status=status if status in STATUSES else None,
    )
    context = {"rows": rows, "filters": {"q": q, "status": status}, "statuses": STATUSES, "listed": LISTED}
    return desk_page(request, session, person, "desk/contracts.html", context)


@router.get("/new")
def new_contract_page(request: Request, session: SessionDep, person: PersonDep, now: Now) -> Response:
    draft, _ = read_draft({"bonus_hours": "0"}, translator(request), complete=False)
    return _form(request, session, person, draft, {}, None)


@router.post("/check")
def check_contract(
    request: Request, session: SessionDep, person: PersonDep, csrf: CsrfDep, now: Now, form: FormDep
) -> Response:
    """As the form is filled in: what is wrong so far, field by field, and what the contract would cost."""
    institution_of(person)
    draft, errors = read_draft(form, translator(request), complete=False)
    terms = _terms(session, person, draft, errors, translator(request), now)
    context = {"person": person, "errors": errors, "fields": FIELDS, "terms": terms, "draft": draft}
    return render(request, "desk/contract_checks.html", context)


@router.post("")
def sign_contract_submit(
    request: Request, session: SessionDep, person: PersonDep, csrf: CsrfDep, now: Now, form: FormDep
) -> Response:
    _ = translator(request)
    draft, errors = read_draft(form, _, complete=True)
    terms = _terms(session, person, draft, errors, _, now)
    if errors or terms is None:
        return _form(request, session, person, draft, errors, terms, 422)
    try:
        view = all_or_nothing(session, lambda: _sign(session, person, draft, now))
    except (PolicyViolation, Conflict, InvalidRequest) as refused:
        return _form(request, session, person, draft, _refusal(refused, _), terms, 422)
    return RedirectResponse(f"/desk/contracts/{view.contract.id}?done=signed", status_code=303)


def _sign(session: Session, person: SignedIn, draft: Draft, now: Any) -> Any:
    assert draft.course_id and draft.hours_bought and draft.term_start and draft.term_end, "read completely"
    return sign_contract(
        session,
        caller=person.caller,
        institution_id=institution_of(person),
        course_id=draft.course_id,
        guardian=draft.guardian,
        student_name=draft.text("student_name"),
        hours_bought=draft.hours_bought,
        bonus_hours=draft.bonus_hours or 0,
        term_start=draft.term_start,
        term_end=draft.term_end,
        now=now,
    )


def _refusal(refused: Exception, _: Translate) -> dict[str, str]:
    """What signing refused after the form's own checks passed: a guardian's details, or a policy changed since."""
    if isinstance(refused, PolicyViolation):
        return {"form": _("The policy in force refused this contract; check the terms and try again.")}
    if isinstance(refused, Conflict):
        return {
            "guardian_phone": _(
                "Your institution registered this phone number to a guardian with another name or ID number:"
                " check the guardian's details."
            )
        }
    return {"guardian_id_number": _("This is not a valid resident ID number. Check it for a typo.")}


def _terms(
    session: Session, person: SignedIn, draft: Draft, errors: dict[str, str], _: Translate, now: Any
) -> TermsCheck | None:
    """The policy's judgement of the terms once they can be read; its problems join `errors` beside their fields."""
    if not draft.terms_readable or {"course_id", "hours_bought", "bonus_hours"} & set(errors):
        return None
    dated = not {"term_start", "term_end"} & set(errors)  # a date mistyped: the term's rules wait for it
    assert draft.course_id is not None, "readable terms"
    try:
        terms = check_terms(
            session,
            caller=person.caller,
            institution_id=institution_of(person),
            course_id=draft.course_id,
            hours_bought=draft.hours_bought or 0,
            bonus_hours=draft.bonus_hours or 0,
            term_start=draft.term_start if dated else None,
            term_end=draft.term_end if dated else None,
            now=now,
        )
    except NotFound:
        errors["course_id"] = _("Choose one of your courses.")
        return None
    for field, message in policy_messages(terms.problems, _).items():
        errors.setdefault(field, message)
    return terms


def _form(
    request: Request,
    session: Session,
    person: SignedIn,
    draft: Draft,
    errors: dict[str, str],
    terms: TermsCheck | None,
    status: int = 200,
) -> Response:
    courses = _courses(session, person)
    context = {"draft": draft, "errors": errors, "terms": terms, "courses": courses, "key": new_key("contract")}
    return desk_page(request, session, person, "desk/contract_new.html", context, status)


def _courses(session: Session, person: SignedIn) -> list[Course]:
    page = list_courses(session, caller=person.caller, institution_id=institution_of(person), cursor=None, limit=200)
    return page.items


@router.get("/{contract_id}")
def contract_page(request: Request, session: SessionDep, person: PersonDep, contract_id: UUID) -> Response:
    return contract_view(request, session, person, contract_id, errors={}, values={})


def contract_view(
    request: Request,
    session: Session,
    person: SignedIn,
    contract_id: UUID,
    *,
    errors: dict[str, str],
    values: dict[str, str],
) -> Response:
    """One contract: its money, collections, classes and refund requests, and a collection to register
    (shown again with `errors` beside its fields when one was refused)."""
    institution_id, caller = institution_of(person), person.caller
    row = contract_row(session, caller=caller, institution_id=institution_id, contract_id=contract_id)
    if row is None:
        raise NotFound(f"contract {contract_id} does not exist or is outside your scope")
    context = {
        "row": row,
        "collections": list_collections(
            session, caller=caller, institution_id=institution_id, contract_id=contract_id, cursor=None, limit=200
        ).items,
        "classes": list_classes(
            session, caller=caller, institution_id=institution_id, contract_id=contract_id, cursor=None, limit=200
        ).items,
        "refunds": list_refund_requests(
            session, caller=caller, institution_id=institution_id, contract_id=contract_id, cursor=None, limit=200
        ).items,
        "done": request.query_params.get("done", ""),
        "errors": errors,
        "values": values,
        "key": values.get("key") or new_key("collection"),
    }
    return desk_page(request, session, person, "desk/contract.html", context, 422 if errors else 200)
