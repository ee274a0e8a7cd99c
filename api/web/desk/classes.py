"""A class session, as a teacher records it after a lesson: pick the course, the day and the hours, tick the
students present, one submit records a class for each, or none (each refusal named beside its student)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.orm import Session

from api.auth import Now
from api.deps import SessionDep
from api.web.desk.common import Translate, desk_page, institution_of, new_key, to_uuid, translator
from api.web.routing import PageRoute
from api.web.sessions import CsrfDep, PersonDep
from escrow.access.users import SignedIn
from escrow.errors import IdempotencyConflict, InvalidRequest, NotFound
from escrow.flows.class_sessions import (
    ClassSessionRefused,
    Refusal,
    Roster,
    class_days,
    class_roster,
    record_class_session,
)
from escrow.registry.courses import list_courses

router = APIRouter(prefix="/desk/classes", include_in_schema=False, route_class=PageRoute)
Text = Annotated[str, Form()]
MAX_SESSION_HOURS = 24


@router.get("")
def classes_page(
    request: Request,
    session: SessionDep,
    person: PersonDep,
    now: Now,
    course: str = "",
    day: str = "",
    hours: str = "1",
    done: str = "",
) -> Response:
    choice = {"course": course, "day": day, "hours": hours}
    return _page(request, session, person, now, choice, errors={}, ticked=set(), key=new_key("class"), done=done)


@router.post("")
def record_session_submit(
    request: Request,
    session: SessionDep,
    person: PersonDep,
    csrf: CsrfDep,
    now: Now,
    course: Text = "",
    day: Text = "",
    hours: Text = "",
    key: Text = "",
    contract: Annotated[list[str] | None, Form()] = None,
) -> Response:
    _ = translator(request)
    choice = {"course": course, "day": day, "hours": hours}
    ticked = {c for c in (to_uuid(t) for t in contract or []) if c is not None}
    errors = _choice_errors(choice, _)
    if not ticked:
        errors["students"] = _("Tick the students who came.")
    if not errors:
        try:
            done, replayed = _record(session, person, choice, sorted(ticked), key, now)
        except ClassSessionRefused as refused:
            errors = {"students": _("Nothing was recorded: the classes below cannot be recorded.")}
            errors |= {str(r.contract_id): _refusal_text(r, _) for r in refused.refusals}
        except IdempotencyConflict:
            errors = {"form": _("This form was already sent with other students: reload the page and tick again.")}
        except InvalidRequest:  # the day, for everyone: in the future, or too far back
            errors = {"day": _day_text(session, person, choice["day"], now, _)}
        else:
            query = f"course={course}&day={done.given_on}&hours={done.hours}&done={len(done.classes)}"
            return RedirectResponse(f"/desk/classes?{query}{'&replayed=1' if replayed else ''}", status_code=303)
    return _page(request, session, person, now, choice, errors=errors, ticked=ticked, key=key, status=422)


def _record(
    session: Session, person: SignedIn, choice: dict[str, str], ticked: list[UUID], key: str, now: datetime
) -> Any:
    course = to_uuid(choice["course"])
    assert course is not None, "checked by _choice_errors"
    return record_class_session(
        session,
        caller=person.caller,
        institution_id=institution_of(person),
        course_id=course,
        given_on=date.fromisoformat(choice["day"]),
        hours=int(choice["hours"]),
        contract_ids=ticked,
        idempotency_key=key,
        now=now,
    )


def _choice_errors(choice: dict[str, str], _: Translate) -> dict[str, str]:
    errors = {}
    if to_uuid(choice["course"]) is None:
        errors["course"] = _("Choose a course.")
    try:
        date.fromisoformat(choice["day"])
    except ValueError:
        errors["day"] = _("Give a date, for example 2027-03-01.")
    if not choice["hours"].isdigit() or not 1 <= int(choice["hours"]) <= MAX_SESSION_HOURS:
        errors["hours"] = _("Give a whole number of hours from %(least)s to %(most)s.") % {
            "least": 1,
            "most": MAX_SESSION_HOURS,
        }
    return errors


def _day_text(session: Session, person: SignedIn, day: str, now: datetime, _: Translate) -> str:
    earliest, today = class_days(session, caller=person.caller, institution_id=institution_of(person), now=now)
    if date.fromisoformat(day) > today:
        return _("This day is in the future: record a class once it is given.")
    return _("A class is recorded within days of being given: on %(earliest)s or later.") % {"earliest": earliest}


def _refusal_text(refusal: Refusal, _: Translate) -> str:
    texts = {
        "not_found": _("Not a contract of your institution."),
        "other_course": _("A student of another course."),
        "not_active": _("The contract has ended."),
        "outside_term": _("The day is outside the contract's term."),
        "hours_left": _("Fewer hours are left than this class takes."),
    }
    return texts.get(refusal.code, refusal.detail)


def _page(
    request: Request,
    session: Session,
    person: SignedIn,
    now: datetime,
    choice: dict[str, str],
    *,
    errors: dict[str, str],
    ticked: set[UUID],
    key: str,
    done: str = "",
    status: int = 200,
) -> Response:
    institution_id = institution_of(person)
    courses = list_courses(session, caller=person.caller, institution_id=institution_id, cursor=None, limit=200).items
    earliest, today = class_days(session, caller=person.caller, institution_id=institution_id, now=now)
    choice = {**choice, "day": choice["day"] or today.isoformat(), "hours": choice["hours"] or "1"}
    roster = _roster(session, person, choice, errors, translator(request), now)
    context = {
        "courses": courses,
        "choice": choice,
        "earliest": earliest,
        "today": today,
        "roster": roster,
        "errors": errors,
        "ticked": ticked,
        "key": key,
        "done": done,
        "replayed": request.query_params.get("replayed") == "1",
    }
    return desk_page(request, session, person, "desk/classes.html", context, status)


def _roster(
    session: Session, person: SignedIn, choice: dict[str, str], errors: dict[str, str], _: Translate, now: datetime
) -> Roster | None:
    """The course's students on the day, each with what stands in the way of a class of at least one hour
    (the session's hours are checked on submit, student by student)."""
    course = to_uuid(choice["course"])
    if course is None or {"day", "course"} & set(_choice_errors(choice, _)):
        return None
    try:
        return class_roster(
            session,
            caller=person.caller,
            institution_id=institution_of(person),
            course_id=course,
            on=date.fromisoformat(choice["day"]),
            hours=1,
            now=now,
        )
    except NotFound:
        errors["course"] = _("Choose a course.")
        return None
