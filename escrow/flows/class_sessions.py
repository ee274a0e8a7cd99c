"""A class session: what a teacher records after a lesson, one class for each student present, all or none.

The roster says, for a course and a day, which of its students can take a class and why not. A session
records each student's class as `record_class` records one (which stays the authority); if any is refused,
none is kept and every refusal is named, by contract and with a code a page can say in its own words.
The whole session is one idempotent request: the same key and students again return the first result.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from uuid import UUID

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from escrow.access.audit import all_or_nothing
from escrow.access.callers import Caller, Role, require_role
from escrow.db.records import ClassRecord, Contract, Course
from escrow.errors import Conflict, InvalidRequest, NotFound, PolicyViolation
from escrow.flows.classes import record_class
from escrow.flows.consumption import hours_used, total_hours
from escrow.ledger.idempotency import IdempotencyKey, fingerprint, run_once
from escrow.registry.calendar import jurisdiction_today
from escrow.registry.institutions import own_institution
from escrow.registry.jurisdictions import policy_in_force
from escrow.rules.policy import backdate_problem
from escrow.rules.states import ContractStatus

MAX_STUDENTS = 200  # a lecture hall, not a school


@dataclass(frozen=True, slots=True)
class RosterLine:
    """One student of the course, and whether a class of `hours` on the day can be recorded for them."""

    contract_id: UUID
    student_name: str
    status: str
    term_start: date
    term_end: date
    hours_left: int
    last_given_on: date | None
    refusal: str | None  # None: can take the class; else not_active, outside_term or hours_left


@dataclass(frozen=True, slots=True)
class Roster:
    course: Course
    day: date
    hours: int
    lines: list[RosterLine]


@dataclass(frozen=True, slots=True)
class Refusal:
    contract_id: UUID
    student_name: str
    code: str  # not_found, other_course, not_active, outside_term, hours_left, or refused (see detail)
    detail: str


@dataclass(frozen=True, slots=True)
class ClassSession:
    course_id: UUID
    given_on: date
    hours: int
    classes: list[ClassRecord]


class ClassSessionRefused(Conflict):
    """Some students' classes cannot be recorded; the session recorded nothing."""

    code = "class_session_refused"
    title = "Class session refused"

    def __init__(self, refusals: list[Refusal]) -> None:
        problems = [f"contract {r.contract_id} ({r.student_name or 'unknown'}): {r.detail}" for r in refusals]
        super().__init__("nothing was recorded: " + "; ".join(problems), problems=problems)
        self.refusals = refusals


def class_roster(
    session: Session,
    *,
    caller: Caller,
    institution_id: UUID,
    course_id: UUID,
    on: date | None,
    hours: int,
    now: datetime,
) -> Roster:
    """The course's contracts in force or ended, by student name, each with what stands in the way of a class."""
    institution = own_institution(session, caller, institution_id)
    course = _course(session, institution_id, course_id)
    day = on or jurisdiction_today(session, jurisdiction_code=institution.jurisdiction_code, now=now)
    contracts = session.scalars(
        select(Contract)
        .where(Contract.institution_id == institution_id, Contract.course_id == course_id)
        .order_by(Contract.student_name, Contract.id)
    ).all()
    last = _last_classes(session, institution_id, [c.id for c in contracts])
    lines = []
    for contract in contracts:
        left = total_hours(contract) - hours_used(session, contract)
        refusal = _refusal_code(contract, day, hours, left)
        lines.append(
            RosterLine(
                contract.id,
                contract.student_name,
                contract.status,
                contract.term_start,
                contract.term_end,
                left,
                last.get(contract.id),
                refusal,
            )
        )
    return Roster(course, day, hours, lines)


def _refusal_code(contract: Contract, day: date, hours: int, left: int) -> str | None:
    """What `record_class` would refuse for this contract on its own state (the day's own checks aside)."""
    if contract.status != ContractStatus.ACTIVE:
        return "not_active"
    if not contract.term_start <= day <= contract.term_end:
        return "outside_term"
    if hours > left:
        return "hours_left"
    return None


def _last_classes(session: Session, institution_id: UUID, contract_ids: list[UUID]) -> dict[UUID, date]:
    if not contract_ids:
        return {}
    rows = session.execute(
        select(ClassRecord.contract_id, func.max(ClassRecord.given_on))
        .where(ClassRecord.institution_id == institution_id, ClassRecord.contract_id.in_(contract_ids))
        .group_by(ClassRecord.contract_id)
    ).all()
    return {contract_id: given_on for contract_id, given_on in rows}


def _course(session: Session, institution_id: UUID, course_id: UUID) -> Course:
    course = session.get(Course, (institution_id, course_id))
    if course is None:
        raise NotFound(f"course {course_id} does not exist in this institution")
    return course


def record_class_session(
    session: Session,
    *,
    caller: Caller,
    institution_id: UUID,
    course_id: UUID,
    given_on: date | None,
    hours: int,
    contract_ids: Sequence[UUID],
    idempotency_key: str,
    now: datetime,
) -> tuple[ClassSession, bool]:
    """Record a class of `hours` on `given_on` (default today) for each contract, or none: refused with
    every student's refusal named. (the session, replayed)"""
    require_role(caller, Role.INSTITUTION)
    if caller.institution_id != institution_id:
        raise NotFound(f"institution {institution_id} does not exist or is outside your scope")
    chosen = _students(contract_ids)
    _course(session, institution_id, course_id)
    request = {
        "operation": "record_class_session",
        "course_id": str(course_id),
        "given_on": given_on,
        "hours": hours,
        "contract_ids": [str(c) for c in chosen],
    }

    def perform() -> ClassSession:
        day = _session_day(session, caller, institution_id, given_on, now)
        return _record_each(session, caller, institution_id, course_id, day, hours, chosen, idempotency_key, now)

    return all_or_nothing(
        session,
        lambda: run_once(
            session,
            institution_id=institution_id,
            key=IdempotencyKey(caller.principal, idempotency_key),
            request=request,
            perform=perform,
            remember=lambda done: {"class_ids": [str(c.id) for c in done.classes], "day": done.given_on.isoformat()},
            recall=lambda stored: _recalled(session, institution_id, course_id, hours, stored),
        ),
    )


def _students(contract_ids: Sequence[UUID]) -> list[UUID]:
    """The session's contracts in one order, so two sessions sharing students queue on them, never deadlock."""
    if not 1 <= len(contract_ids) <= MAX_STUDENTS:
        raise InvalidRequest(f"a class session has 1 to {MAX_STUDENTS} students, not {len(contract_ids)}")
    if len(set(contract_ids)) != len(contract_ids):
        raise InvalidRequest("a student appears more than once in the session; name each contract once")
    return sorted(contract_ids)


def _record_each(
    session: Session,
    caller: Caller,
    institution_id: UUID,
    course_id: UUID,
    day: date,
    hours: int,
    chosen: list[UUID],
    session_key: str,
    now: datetime,
) -> ClassSession:
    """Each student's class as `record_class` records it; any refused, the session is refused with them all."""
    query = select(Contract).where(Contract.institution_id == institution_id, Contract.id.in_(chosen))
    known = {c.id: c for c in session.scalars(query)}
    recorded, refusals = [], []
    for contract_id in chosen:
        contract = known.get(contract_id)
        refusal = _not_of_course(contract_id, contract, course_id)
        if refusal is None and contract is not None:
            try:
                # each class under a key of its own, derived from the session's (at most 255 characters)
                key = f"class-session:{fingerprint({'key': session_key})[:32]}:{contract_id}"
                recorded.append(
                    record_class(session, caller=caller, institution_id=institution_id, contract_id=contract_id,
                                 hours=hours, given_on=day, idempotency_key=key, now=now).value
                )  # fmt: skip
            except (Conflict, InvalidRequest) as refused:
                left = total_hours(contract) - hours_used(session, contract)
                code = _refusal_code(contract, day, hours, left) or "refused"
                refusal = Refusal(contract_id, contract.student_name, code, refused.detail)
        if refusal is not None:
            refusals.append(refusal)
    if refusals:
        raise ClassSessionRefused(refusals)
    return ClassSession(course_id, day, hours, recorded)


def _not_of_course(contract_id: UUID, contract: Contract | None, course_id: UUID) -> Refusal | None:
    if contract is None:
        return Refusal(contract_id, "", "not_found", "the contract does not exist or is outside your scope")
    if contract.course_id != course_id:
        return Refusal(contract_id, contract.student_name, "other_course", "a contract of another course")
    return None


def _session_day(session: Session, caller: Caller, institution_id: UUID, given_on: date | None, now: datetime) -> date:
    """The day of the session (default today), refused for everyone at once when it is in the future or
    further back than the policy in force lets a class be dated (each contract's own policy is checked too)."""
    institution = own_institution(session, caller, institution_id)
    today = jurisdiction_today(session, jurisdiction_code=institution.jurisdiction_code, now=now)
    day = given_on or today
    if day > today:
        raise InvalidRequest(f"given_on {day} is in the future; record a class once it is given", field="given_on")
    policy, _ = policy_in_force(session, jurisdiction_code=institution.jurisdiction_code, on=today)
    too_old = backdate_problem(policy, given_on=day, today=today)
    if too_old:
        raise PolicyViolation([too_old])
    return day


def _recalled(
    session: Session, institution_id: UUID, course_id: UUID, hours: int, stored: Mapping[str, Any]
) -> ClassSession:
    ids = [UUID(c) for c in stored["class_ids"]]
    rows = session.scalars(
        select(ClassRecord).where(ClassRecord.institution_id == institution_id, ClassRecord.id.in_(ids))
    ).all()
    by_id = {row.id: row for row in rows}
    return ClassSession(course_id, date.fromisoformat(stored["day"]), hours, [by_id[i] for i in ids])


def class_days(session: Session, *, caller: Caller, institution_id: UUID, now: datetime) -> tuple[date, date]:
    """The days a class may be recorded on today, by the policy in force: (the earliest, today)."""
    institution = own_institution(session, caller, institution_id)
    today = jurisdiction_today(session, jurisdiction_code=institution.jurisdiction_code, now=now)
    policy, _ = policy_in_force(session, jurisdiction_code=institution.jurisdiction_code, on=today)
    return today - timedelta(days=policy.max_class_backdate_days), today
