"""Contracts: a guardian buys class hours of a course; judged by the policy in force when signed."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from uuid import UUID

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from escrow.access.audit import note
from escrow.access.callers import Caller, contract_scope, sees_personal_data
from escrow.db.paging import Page, keyset
from escrow.db.records import Collection, Contract, Course, Guardian, Institution
from escrow.errors import Conflict, InvalidRequest, NotFound, PolicyViolation
from escrow.ids import new_id
from escrow.ledger.engine import open_account
from escrow.ledger.model import AccountKind, Side, account_code
from escrow.ledger.records import Account
from escrow.registry.calendar import jurisdiction_today
from escrow.registry.institutions import own_institution, visible_institution
from escrow.registry.jurisdictions import policy_in_force
from escrow.rules.identity import id_number_problem, mask_id_number, mask_phone
from escrow.rules.policy import CourseCategory, Policy, PolicyProblem, cap_checks, term_checks


@dataclass(frozen=True, slots=True)
class GuardianDetails:
    name: str
    phone: str
    id_number: str | None = None


@dataclass(frozen=True, slots=True)
class ContractView:
    """A contract as one caller may see it: personal data masked unless it is theirs or a regulator's."""

    contract: Contract
    guardian_name: str
    guardian_phone: str
    guardian_id_number: str | None
    held_fen: int
    collected_fen: int


def prepaid_code(contract_id: UUID) -> str:
    return account_code(AccountKind.PREPAID, contract_id)


def sign_contract(
    session: Session,
    *,
    caller: Caller,
    institution_id: UUID,
    course_id: UUID,
    guardian: GuardianDetails,
    student_name: str,
    hours_bought: int,
    bonus_hours: int,
    term_start: date,
    term_end: date,
    now: datetime,
) -> ContractView:
    """Sign a contract under the policy in force today; refused with every cap it would break."""
    terms = check_terms(
        session,
        caller=caller,
        institution_id=institution_id,
        course_id=course_id,
        hours_bought=hours_bought,
        bonus_hours=bonus_hours,
        term_start=term_start,
        term_end=term_end,
        now=now,
    )
    if term_end < term_start:
        raise InvalidRequest("term_end is before term_start")
    if terms.problems:
        raise PolicyViolation([problem.detail for problem in terms.problems])
    institution, course, price, effective = terms.institution, terms.course, terms.price_fen, terms.effective
    holder = _guardian(session, institution_id, guardian)
    contract_id = new_id()
    account = open_account(
        session,
        institution_id=institution_id,
        code=prepaid_code(contract_id),
        kind=AccountKind.PREPAID,
        contract_id=contract_id,
        normal_side=Side.CREDIT,
    )
    row = Contract(
        institution_id=institution_id,
        id=contract_id,
        course_id=course_id,
        guardian_id=holder.id,
        student_name=student_name,
        hours_bought=hours_bought,
        bonus_hours=bonus_hours,
        unit_price_fen=course.unit_price_fen,
        price_fen=price,
        term_start=term_start,
        term_end=term_end,
        policy_jurisdiction=institution.jurisdiction_code,
        policy_effective_date=effective,
        prepaid_account_id=account.id,
        signed_at=now,
    )
    session.add(row)
    session.flush()
    note(
        session,
        caller,
        "contract.signed",
        institution_id=institution_id,
        object_type="contract",
        object_id=contract_id,
        at=now,
        after={
            "course_id": course_id,
            "guardian_id": holder.id,
            "hours_bought": hours_bought,
            "bonus_hours": bonus_hours,
            "price_fen": price,
            "term_start": term_start,
            "term_end": term_end,
            "policy_effective_date": effective,
        },
    )
    return _view(session, caller, row, holder)


@dataclass(frozen=True, slots=True)
class TermsCheck:
    """What signing some terms today would cost, and every rule of the policy in force they break."""

    institution: Institution
    course: Course
    policy: Policy
    effective: date | None  # the policy version's date (None: the national defaults)
    price_fen: int
    problems: list[PolicyProblem]


def check_terms(
    session: Session,
    *,
    caller: Caller,
    institution_id: UUID,
    course_id: UUID,
    hours_bought: int,
    bonus_hours: int,
    term_start: date | None,
    term_end: date | None,
    now: datetime,
) -> TermsCheck:
    """Judge a contract's terms by the policy in force today, writing nothing: what `sign_contract`
    checks, for a form that tells the person as they fill it in (the term's rules once both dates are given)."""
    institution = own_institution(session, caller, institution_id)
    course = session.get(Course, (institution_id, course_id))
    if course is None:
        raise NotFound(f"course {course_id} does not exist in this institution")
    today = jurisdiction_today(session, jurisdiction_code=institution.jurisdiction_code, now=now)
    policy, effective = policy_in_force(session, jurisdiction_code=institution.jurisdiction_code, on=today)
    price = course.unit_price_fen * hours_bought
    if term_start is None or term_end is None:  # a one-day term breaks no rule of the term: the others are judged
        problems, term_start, term_end = [], today, today
    else:
        problems = term_checks(policy, term_start=term_start, term_end=term_end, today=today)
    problems += cap_checks(
        policy,
        category=CourseCategory(course.category),
        hours_bought=hours_bought,
        bonus_hours=bonus_hours,
        term_start=term_start,
        term_end=term_end,
        amount_fen=price,
    )
    return TermsCheck(institution, course, policy, effective, price, problems)


def visible_contract(
    session: Session, caller: Caller, institution_id: UUID, contract_id: UUID, *, lock: bool = False
) -> Contract:
    query = select(Contract).where(
        Contract.institution_id == institution_id, Contract.id == contract_id, contract_scope(caller)
    )
    if lock:
        query = query.with_for_update(key_share=True)
    row = session.scalars(query).one_or_none()
    if row is None:
        raise NotFound(f"contract {contract_id} does not exist or is outside your scope")
    return row


def get_contract(session: Session, *, caller: Caller, institution_id: UUID, contract_id: UUID) -> ContractView:
    row = visible_contract(session, caller, institution_id, contract_id)
    return _view(session, caller, row, session.get_one(Guardian, row.guardian_id))


def list_contracts(
    session: Session, *, caller: Caller, institution_id: UUID | None, cursor: str | None, limit: int
) -> Page[ContractView]:
    """The caller's contracts (a parent's own; an institution's; a regulator's jurisdictions)."""
    query = select(Contract).where(contract_scope(caller))
    if institution_id is not None:
        visible_institution(session, caller, institution_id)
        query = query.where(Contract.institution_id == institution_id)
    page = keyset(session, query, Contract.id, cursor=cursor, limit=limit)
    holders = {
        g.id: g for g in session.scalars(select(Guardian).where(Guardian.id.in_({c.guardian_id for c in page.items})))
    }
    return Page([_view(session, caller, c, holders[c.guardian_id]) for c in page.items], page.next_cursor)


def _guardian(session: Session, institution_id: UUID, details: GuardianDetails) -> Guardian:
    """Find the institution's own guardian by phone, or register them there: what another institution
    registered under the same phone is never looked at (so no answer depends on it)."""
    if details.id_number is not None:
        problem = id_number_problem(details.id_number)
        if problem:
            raise InvalidRequest(problem)
    existing = session.scalars(
        select(Guardian).where(Guardian.institution_id == institution_id, Guardian.phone == details.phone)
    ).one_or_none()
    if existing is None:
        row = Guardian(
            id=new_id(),
            institution_id=institution_id,
            phone=details.phone,
            name=details.name,
            id_number=details.id_number,
        )
        session.add(row)
        session.flush()
        return row
    if existing.name != details.name or (
        details.id_number is not None and existing.id_number not in (None, details.id_number)
    ):
        raise Conflict(
            "this institution registered this phone number to a guardian with another name or ID number;"
            " check the guardian's details"
        )
    return existing


def _view(session: Session, caller: Caller, row: Contract, guardian: Guardian) -> ContractView:
    held = session.scalar(
        select(Account.balance).where(
            Account.institution_id == row.institution_id, Account.id == row.prepaid_account_id
        )
    )
    collected = session.scalar(
        select(func.coalesce(func.sum(Collection.amount_fen), 0)).where(
            Collection.institution_id == row.institution_id, Collection.contract_id == row.id
        )
    )
    mine = sees_personal_data(caller, guardian.phone)
    return ContractView(
        contract=row,
        guardian_name=guardian.name,
        guardian_phone=guardian.phone if mine else mask_phone(guardian.phone),
        guardian_id_number=(
            None if guardian.id_number is None else guardian.id_number if mine else mask_id_number(guardian.id_number)
        ),
        held_fen=int(held or 0),
        collected_fen=int(collected or 0),
    )
