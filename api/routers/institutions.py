"""Institutions and their courses."""

from __future__ import annotations

from typing import Annotated, Literal
from uuid import UUID

from fastapi import APIRouter, Query

from api.auth import Now
from api.deps import ApiRoute, CallerDep, SessionDep
from api.routers import documented
from api.schemas import CourseIn, CourseOut, Instant, InstitutionBalancesOut, InstitutionIn, InstitutionOut, PageOf
from escrow.db.paging import DEFAULT_LIMIT, MAX_LIMIT
from escrow.flows import books
from escrow.registry import courses, institutions
from escrow.registry.calendar import jurisdiction_today
from escrow.rules.calendar import local_date

router = APIRouter(prefix="/institutions", tags=["institutions"], route_class=ApiRoute)
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT)]
Cursor = Annotated[str | None, Query(pattern=r"^[A-Za-z0-9_-]{22}$", description="next_cursor of the previous page")]


@router.post("", status_code=201, operation_id="register_institution", responses=documented(403, 404, 409))
def register_institution(body: InstitutionIn, session: SessionDep, caller: CallerDep, now: Now) -> InstitutionOut:
    """Register an institution in one of your jurisdictions (regulator)."""
    row = institutions.register_institution(
        session,
        caller=caller,
        today=jurisdiction_today(session, jurisdiction_code=body.jurisdiction_code, now=now),
        **body.model_dump(),
    )
    return InstitutionOut.model_validate(row)


@router.get("", operation_id="list_institutions", responses=documented())
def list_institutions(
    session: SessionDep,
    caller: CallerDep,
    cursor: Cursor = None,
    limit: Limit = DEFAULT_LIMIT,
    jurisdiction_code: Annotated[str | None, Query(pattern=r"^[0-9]{6}$")] = None,
    status: Annotated[Literal["active", "on_hold", "closing", "closed"] | None, Query()] = None,
    q: Annotated[
        str | None, Query(min_length=1, max_length=100, description="part of the name, or the credit code's start")
    ] = None,
) -> PageOf[InstitutionOut]:
    """The institutions within your scope, filtered by jurisdiction and status, searched by name or credit code."""
    page = institutions.list_institutions(
        session,
        caller=caller,
        cursor=cursor,
        limit=limit,
        jurisdiction_code=jurisdiction_code,
        status=status,
        search=q,
    )
    return PageOf(items=[InstitutionOut.model_validate(i) for i in page.items], next_cursor=page.next_cursor)


@router.get("/{institution_id}", operation_id="get_institution", responses=documented(404))
def get_institution(institution_id: UUID, session: SessionDep, caller: CallerDep) -> InstitutionOut:
    """One institution."""
    return InstitutionOut.model_validate(institutions.visible_institution(session, caller, institution_id))


@router.get("/{institution_id}/balances", operation_id="get_institution_balances", responses=documented(403, 404))
def get_institution_balances(
    institution_id: UUID,
    session: SessionDep,
    caller: CallerDep,
    as_of: Annotated[Instant | None, Query(description="a past instant with its time zone; default now")] = None,
) -> InstitutionBalancesOut:
    """What the institution holds and owes, now or as of a past instant."""
    b = books.institution_balances(session, caller=caller, institution_id=institution_id, as_of=as_of)
    return InstitutionBalancesOut(
        institution_id=institution_id,
        as_of=as_of,
        custody_cash_fen=b.by_kind["custody_cash"],
        held_fen=b.by_kind["prepaid"],
        releasable_fen=b.by_kind["releasable"],
        payout_pending_fen=b.by_kind["payout_pending"],
        refund_payable_fen=b.by_kind["refund_payable"],
        owed_fen=b.owed_fen,
    )


@router.post("/{institution_id}/courses", status_code=201, operation_id="create_course", responses=documented(403, 404))
def create_course(institution_id: UUID, body: CourseIn, session: SessionDep, caller: CallerDep, now: Now) -> CourseOut:
    """Offer a course; a subject course's unit price may not exceed its guide price plus the margin."""
    row = courses.create_course(
        session, caller=caller, institution_id=institution_id, today=local_date(now), **body.model_dump()
    )
    return CourseOut.model_validate(row)


@router.get("/{institution_id}/courses", operation_id="list_courses", responses=documented(404))
def list_courses(
    institution_id: UUID, session: SessionDep, caller: CallerDep, cursor: Cursor = None, limit: Limit = DEFAULT_LIMIT
) -> PageOf[CourseOut]:
    """The institution's courses."""
    page = courses.list_courses(session, caller=caller, institution_id=institution_id, cursor=cursor, limit=limit)
    return PageOf(items=[CourseOut.model_validate(c) for c in page.items], next_cursor=page.next_cursor)


@router.get("/{institution_id}/courses/{course_id}", operation_id="get_course", responses=documented(404))
def get_course(institution_id: UUID, course_id: UUID, session: SessionDep, caller: CallerDep) -> CourseOut:
    """One course."""
    row = courses.get_course(session, caller=caller, institution_id=institution_id, course_id=course_id)
    return CourseOut.model_validate(row)
