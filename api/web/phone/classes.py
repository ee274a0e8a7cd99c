"""Classes waiting for the parent's word: confirmed (with stars and a comment, if they like), disputed with
a reason, or evaluated afterwards. Each post answers with the class's page, saying what was done."""

from __future__ import annotations

from datetime import datetime
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
from escrow.families.evaluations import confirm_with_evaluation, evaluate_class
from escrow.families.overview import family_class, waiting_classes
from escrow.flows.classes import dispute_class
from escrow.rules.calendar import local_date

router = APIRouter(prefix=PREFIX, include_in_schema=False, route_class=PhoneRoute)
Text = Annotated[str, Form()]
CLASS = "/classes/{institution_id}/{class_id}"


def _stars(value: str) -> int | None:
    return int(value) if value.isdigit() else None


@router.get("/classes")
def classes_page(request: Request, session: SessionDep, person: ParentDep, now: Now) -> Response:
    context = {"classes": waiting_classes(session, caller=person.caller), "today": local_date(now)}
    return phone_page(request, session, person, "m/classes.html", context)


def _class_page(
    request: Request,
    session: Session,
    person: ParentSignedIn,
    now: datetime,
    institution_id: UUID,
    class_id: UUID,
    *,
    errors: dict[str, str] | None = None,
    form: dict[str, str] | None = None,
    status: int = 200,
    template: str = "m/class.html",
) -> Response:
    line = family_class(session, caller=person.caller, institution_id=institution_id, class_id=class_id)
    context = {"line": line, "today": local_date(now), "errors": errors or {}, "form": form or {}}
    return phone_page(request, session, person, template, context, status)


@router.get(CLASS)
def class_page(
    request: Request, session: SessionDep, person: ParentDep, now: Now, institution_id: UUID, class_id: UUID
) -> Response:
    return _class_page(request, session, person, now, institution_id, class_id)


def _refused(refused: InvalidRequest) -> dict[str, str]:
    return {str(refused.context.get("field", "form")): str(refused.context.get("reason", "invalid"))}


@router.post(CLASS + "/confirmation")
def confirm_submit(
    request: Request,
    session: SessionDep,
    person: ParentDep,
    csrf: CsrfDep,
    now: Now,
    institution_id: UUID,
    class_id: UUID,
    stars: Text = "",
    comment: Text = "",
) -> Response:
    try:
        confirm_with_evaluation(session, caller=person.caller, institution_id=institution_id, class_id=class_id,
                                stars=_stars(stars), comment=comment or None,
                                idempotency_key=f"m-confirm:{class_id}", now=now)  # fmt: skip
    except InvalidRequest as refused:
        session.rollback()
        form = {"stars": stars, "comment": comment}
        return _class_page(request, session, person, now, institution_id, class_id, errors=_refused(refused),
                           form=form, status=422)  # fmt: skip
    return RedirectResponse(f"{PREFIX}/classes/{institution_id}/{class_id}?done=confirmed", status_code=303)


@router.post(CLASS + "/evaluation")
def evaluate_submit(
    request: Request,
    session: SessionDep,
    person: ParentDep,
    csrf: CsrfDep,
    now: Now,
    institution_id: UUID,
    class_id: UUID,
    stars: Text = "",
    comment: Text = "",
) -> Response:
    try:
        evaluate_class(session, caller=person.caller, institution_id=institution_id, class_id=class_id,
                       stars=_stars(stars) or 0, comment=comment or None, now=now)  # fmt: skip
    except InvalidRequest as refused:
        session.rollback()
        form = {"stars": stars, "comment": comment}
        return _class_page(request, session, person, now, institution_id, class_id, errors=_refused(refused),
                           form=form, status=422)  # fmt: skip
    return RedirectResponse(f"{PREFIX}/classes/{institution_id}/{class_id}?done=evaluated", status_code=303)


@router.get(CLASS + "/dispute")
def dispute_page(
    request: Request, session: SessionDep, person: ParentDep, now: Now, institution_id: UUID, class_id: UUID
) -> Response:
    return _class_page(request, session, person, now, institution_id, class_id, template="m/dispute.html")


@router.post(CLASS + "/dispute")
def dispute_submit(
    request: Request,
    session: SessionDep,
    person: ParentDep,
    csrf: CsrfDep,
    now: Now,
    institution_id: UUID,
    class_id: UUID,
    reason: Text = "",
) -> Response:
    if not reason.strip() or len(reason) > 500:
        errors = {"reason": "required" if not reason.strip() else "too_long"}
        return _class_page(request, session, person, now, institution_id, class_id, errors=errors,
                           form={"reason": reason}, status=422, template="m/dispute.html")  # fmt: skip
    dispute_class(session, caller=person.caller, institution_id=institution_id, class_id=class_id,
                  reason=reason.strip(), idempotency_key=f"m-dispute:{class_id}", now=now)  # fmt: skip
    return RedirectResponse(f"{PREFIX}/classes/{institution_id}/{class_id}?done=disputed", status_code=303)
