"""Courses an institution offers; a subject course is priced within its guide price plus the margin."""

from __future__ import annotations

from datetime import date
from uuid import UUID

from sqlalchemy import select
from sqlalchemy.orm import Session

from escrow.access.audit import note
from escrow.access.callers import Caller
from escrow.db.paging import Page, keyset
from escrow.db.records import Course
from escrow.errors import InvalidRequest, NotFound, PolicyViolation
from escrow.ids import new_id
from escrow.registry.institutions import own_institution, visible_institution
from escrow.registry.jurisdictions import policy_in_force
from escrow.rules.policy import CourseCategory, price_problem


def create_course(
    session: Session,
    *,
    caller: Caller,
    institution_id: UUID,
    name: str,
    category: CourseCategory,
    unit_price_fen: int,
    guide_price_fen: int | None,
    today: date,
) -> Course:
    institution = own_institution(session, caller, institution_id)
    if category is CourseCategory.SUBJECT:
        if guide_price_fen is None:
            raise InvalidRequest("a subject course needs the guide price set for it (guide_price_fen)")
        policy, _ = policy_in_force(session, jurisdiction_code=institution.jurisdiction_code, on=today)
        problem = price_problem(policy, unit_price_fen=unit_price_fen, guide_price_fen=guide_price_fen)
        if problem:
            raise PolicyViolation([problem])
    row = Course(
        institution_id=institution_id,
        id=new_id(),
        name=name,
        category=category.value,
        unit_price_fen=unit_price_fen,
        guide_price_fen=guide_price_fen,
    )
    session.add(row)
    session.flush()
    note(
        session,
        caller,
        "course.created",
        institution_id=institution_id,
        object_type="course",
        object_id=row.id,
        after={
            "name": name,
            "category": category.value,
            "unit_price_fen": unit_price_fen,
            "guide_price_fen": guide_price_fen,
        },
    )
    return row


def get_course(session: Session, *, caller: Caller, institution_id: UUID, course_id: UUID) -> Course:
    visible_institution(session, caller, institution_id)
    row = session.get(Course, (institution_id, course_id))
    if row is None:
        raise NotFound(f"course {course_id} does not exist in this institution")
    return row


def list_courses(
    session: Session, *, caller: Caller, institution_id: UUID, cursor: str | None, limit: int
) -> Page[Course]:
    visible_institution(session, caller, institution_id)
    query = select(Course).where(Course.institution_id == institution_id)
    return keyset(session, query, Course.id, cursor=cursor, limit=limit)
