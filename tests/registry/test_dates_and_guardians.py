"""No back door through dates or guardians.

- A class's parent window counts from when it was recorded, not from the day the institution says it was
  given; a class dated further back than the policy allows is refused; a term over, long under way, or in
  the year 9999 is refused at signing.
- Each institution keeps its own guardians: signing with a phone another institution registered behaves
  exactly as if it were new, and the parent, signed in by phone, sees their contracts at both.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from uuid import UUID

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from escrow.access.callers import Caller, Role
from escrow.db.records import ClassRecord, Guardian
from escrow.errors import Conflict, PolicyViolation
from escrow.flows.classes import deem_classes_confirmed, record_class
from escrow.flows.collections import collect
from escrow.ids import new_id
from escrow.registry.calendar import official_calendar
from escrow.registry.contracts import ContractView, GuardianDetails, get_contract, list_contracts, sign_contract
from escrow.registry.courses import create_course
from escrow.registry.institutions import register_institution
from escrow.registry.jurisdictions import add_jurisdiction
from escrow.rules.policy import NATIONAL_DEFAULTS, CourseCategory
from tests.factories import account_number, credit_code, id_number, phone, regulator, school

CODE = "310115"
NOW = datetime(2026, 11, 2, 2, 0, tzinfo=UTC)  # a Monday, 10:00 in Beijing


@pytest.fixture(scope="module")
def district(db: sessionmaker[Session]) -> None:
    with db.begin() as s:
        add_jurisdiction(s, code=CODE, name="Dates district")


def new_school(db: sessionmaker[Session]) -> tuple[UUID, UUID]:
    with db.begin() as s:
        inst = register_institution(
            s,
            caller=regulator(CODE),
            name="School",
            credit_code=credit_code(),
            jurisdiction_code=CODE,
            custody_bank="bank",
            custody_account=account_number(),
            supervision_model=None,
            today=NOW.date(),
        )
        course = create_course(
            s,
            caller=school(inst.id),
            institution_id=inst.id,
            name="Course",
            category=CourseCategory.SUBJECT,
            unit_price_fen=10_000,
            guide_price_fen=10_000,
            today=NOW.date(),
        )
        return inst.id, course.id


def sign(
    s: Session, inst: UUID, course: UUID, *, start: date, end: date, guardian: GuardianDetails | None = None
) -> ContractView:
    return sign_contract(
        s,
        caller=school(inst),
        institution_id=inst,
        course_id=course,
        guardian=guardian or GuardianDetails("Li Na", phone()),
        student_name="Li Xiao",
        hours_bought=10,
        bonus_hours=0,
        term_start=start,
        term_end=end,
        now=NOW,
    )


@pytest.mark.parametrize(
    ("start", "end", "reason"),
    [
        (date(1900, 1, 1), date(1900, 3, 1), "already over"),
        (date(1, 1, 1), date(1, 2, 1), "already over"),
        (NOW.date() - timedelta(days=60), NOW.date() + timedelta(days=20), "more than 30 days ago"),
        (date(9999, 11, 1), date(9999, 12, 31), "more than 366 days"),
    ],
    ids=["1900", "year-1", "long-under-way", "year-9999"],
)
def test_a_term_over_long_under_way_or_years_ahead_is_refused_at_signing(
    district: None, db: sessionmaker[Session], start: date, end: date, reason: str
) -> None:
    inst, course = new_school(db)
    with db.begin() as s, pytest.raises(PolicyViolation) as refused:
        sign(s, inst, course, start=start, end=end)
    assert reason in refused.value.detail


def test_a_term_that_began_this_month_may_be_signed(district: None, db: sessionmaker[Session]) -> None:
    inst, course = new_school(db)
    with db.begin() as s:
        view = sign(s, inst, course, start=NOW.date() - timedelta(days=30), end=NOW.date() + timedelta(days=30))
    assert view.contract.term_start == NOW.date() - timedelta(days=30)


def contract_with_money(db: sessionmaker[Session]) -> tuple[UUID, UUID]:
    inst, course = new_school(db)
    with db.begin() as s:
        view = sign(s, inst, course, start=NOW.date() - timedelta(days=25), end=NOW.date() + timedelta(days=60))
        collect(
            s,
            caller=school(inst),
            institution_id=inst,
            contract_id=view.contract.id,
            amount_fen=view.contract.price_fen,
            bank_reference=f"BD-{view.contract.id.hex[:12]}",
            collected_at=NOW - timedelta(days=20),
            idempotency_key=f"bd-{view.contract.id}",
            now=NOW - timedelta(days=20),
        )
    return inst, view.contract.id


def test_a_back_dated_class_waits_its_full_window_from_when_it_was_recorded(
    district: None, db: sessionmaker[Session]
) -> None:
    inst, contract = contract_with_money(db)
    given = NOW.date() - timedelta(days=NATIONAL_DEFAULTS.max_class_backdate_days)
    with db.begin() as s:
        row, _ = record_class(
            s,
            caller=school(inst),
            institution_id=inst,
            contract_id=contract,
            hours=2,
            given_on=given,
            idempotency_key="class",
            now=NOW,
        )
        class_id = row.id
        assert row.confirm_by == official_calendar(s).add_working_days(
            NOW.date(), NATIONAL_DEFAULTS.confirm_after_working_days
        )
    with db.begin() as s:  # the next day's job: the parent has had one day, not the 15 working days
        deem_classes_confirmed(s, now=NOW + timedelta(days=1), institution_ids=[inst])
    with db.begin() as s:
        assert s.get_one(ClassRecord, (inst, class_id)).status == "pending"


def test_a_class_dated_further_back_than_the_policy_allows_is_refused(
    district: None, db: sessionmaker[Session]
) -> None:
    inst, contract = contract_with_money(db)
    given = NOW.date() - timedelta(days=NATIONAL_DEFAULTS.max_class_backdate_days + 1)
    with db.begin() as s, pytest.raises(PolicyViolation) as refused:
        record_class(
            s,
            caller=school(inst),
            institution_id=inst,
            contract_id=contract,
            hours=2,
            given_on=given,
            idempotency_key="class",
            now=NOW,
        )
    assert "more than 7 days ago" in refused.value.detail


def test_a_phone_another_institution_registered_behaves_as_if_new(district: None, db: sessionmaker[Session]) -> None:
    """Whatever name or ID number school B gives, it gets what it would for a phone nobody registered:
    a new family of its own, its own details echoed, nothing of school A's."""
    a, course_a = new_school(db)
    shared, a_id_number = phone(), id_number()
    term = {"start": NOW.date(), "end": NOW.date() + timedelta(days=60)}
    with db.begin() as s:
        at_a = sign(s, a, course_a, **term, guardian=GuardianDetails("Zhang Wei", shared, a_id_number))
    answers = []
    for details in (GuardianDetails("Zhang Wei", shared), GuardianDetails("Someone Else", shared, id_number())):
        b, course_b = new_school(db)  # a school of its own for each probe
        with db.begin() as s:
            view = sign(s, b, course_b, **term, guardian=details)
            answers.append((view.guardian_name, view.guardian_id_number))
            assert view.contract.guardian_id != at_a.contract.guardian_id
    assert answers[0] == ("Zhang Wei", None)  # not A's ID number, not even masked
    assert answers[1][0] == "Someone Else"
    with db.begin() as s:
        assert s.scalar(select(func.count()).where(Guardian.phone == shared)) == 3
        with pytest.raises(Conflict):  # within one institution a phone is still one family
            sign(s, b, course_b, **term, guardian=GuardianDetails("A Third Name", shared))


def test_a_parent_signed_in_by_phone_sees_their_contracts_at_every_institution(
    district: None, db: sessionmaker[Session]
) -> None:
    (a, course_a), (b, course_b) = new_school(db), new_school(db)
    shared = phone()
    term = {"start": NOW.date(), "end": NOW.date() + timedelta(days=60)}
    with db.begin() as s:
        at_a = sign(s, a, course_a, **term, guardian=GuardianDetails("Zhao Min", shared))
        at_b = sign(s, b, course_b, **term, guardian=GuardianDetails("Zhao Min", shared))
        other = sign(s, b, course_b, **term)
    parent = Caller(token_id=new_id(), role=Role.PARENT, guardian_phone=shared)
    with db.begin() as s:
        page = list_contracts(s, caller=parent, institution_id=None, cursor=None, limit=50)
        assert {v.contract.id for v in page.items} == {at_a.contract.id, at_b.contract.id}
        mine = get_contract(s, caller=parent, institution_id=b, contract_id=at_b.contract.id)
        assert mine.guardian_phone == shared  # their own, unmasked
        with pytest.raises(Exception, match="outside your scope"):
            get_contract(s, caller=parent, institution_id=b, contract_id=other.contract.id)
