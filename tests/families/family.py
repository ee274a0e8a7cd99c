"""Families for the parent's tests: an institution of its own, a course, a contract paid into escrow, classes.

    a_family(s) -> Family: 1,000.00 yuan paid for 40 hours + 4 bonus (44), no class yet
Every family has a phone of its own, so tests never see each other's contracts.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from uuid import UUID

from sqlalchemy.orm import Session

from escrow.access.callers import Caller, Role
from escrow.db.records import Payout
from escrow.flows.classes import record_class
from escrow.flows.collections import collect
from escrow.flows.payouts import settle_payout
from escrow.ids import new_id
from escrow.registry.contracts import GuardianDetails, sign_contract
from escrow.registry.courses import create_course
from escrow.registry.institutions import register_institution
from escrow.registry.jurisdictions import add_jurisdiction
from escrow.rules.calendar import local_date
from escrow.rules.policy import CourseCategory
from tests.factories import JURISDICTION, account_number, credit_code, phone, regulator, school, stand_in_calendar

PAID_FEN = 100_000
HOURS = 44


@dataclass
class Family:
    institution_id: UUID
    contract_id: UUID
    course_id: UUID
    owner: Caller  # the institution
    parent: Caller
    phone: str

    def regulator(self) -> Caller:
        return regulator(JURISDICTION)


def a_family(
    s: Session, *, now: datetime | None = None, at: UUID | None = None, name: str = "Sunshine Maths"
) -> Family:
    """A family with one paid contract (at the institution `at`, or at a new one)."""
    now = now or datetime.now(UTC)
    stand_in_calendar(s, now)
    add_jurisdiction(s, code=JURISDICTION, name="Xuhui District")
    if at is None:
        at = register_institution(
            s,
            caller=regulator(JURISDICTION),
            name=name,
            credit_code=credit_code(),
            jurisdiction_code=JURISDICTION,
            custody_bank="bank_f",
            custody_account=account_number(),
            supervision_model=None,
            today=local_date(now),
        ).id
    owner = school(at)
    course = create_course(s, caller=owner, institution_id=at, name="Maths grade 5", category=CourseCategory.SUBJECT,
                           unit_price_fen=2_500, guide_price_fen=2_500, today=local_date(now))  # fmt: skip
    number = phone()
    view = sign_contract(s, caller=owner, institution_id=at, course_id=course.id,
                         guardian=GuardianDetails(name="Li Hua", phone=number), student_name="Li Ming",
                         hours_bought=40, bonus_hours=4, term_start=local_date(now),
                         term_end=local_date(now) + timedelta(days=80), now=now)  # fmt: skip
    collect(s, caller=owner, institution_id=at, contract_id=view.contract.id, amount_fen=PAID_FEN,
            bank_reference=f"F-{view.contract.id.hex[:12]}", collected_at=None,
            idempotency_key=f"family-{view.contract.id}", now=now)  # fmt: skip
    family = Caller(token_id=new_id(), role=Role.PARENT, guardian_phone=number)
    return Family(at, view.contract.id, course.id, owner, family, number)


def give_class(s: Session, family: Family, *, hours: int = 2, now: datetime | None = None) -> UUID:
    """The institution records a class of `hours` given today."""
    return record_class(s, caller=family.owner, institution_id=family.institution_id, contract_id=family.contract_id,
                        hours=hours, given_on=None, idempotency_key=f"class-{new_id()}",
                        now=now or datetime.now(UTC)).value.id  # fmt: skip


def bank_pays(s: Session, payout: Payout, *, now: datetime | None = None) -> None:
    """The custody bank executes a payout instruction."""
    bank, when = Caller(token_id=new_id(), role=Role.BANK, bank_code="bank_f"), now or datetime.now(UTC)
    settle_payout(s, caller=bank, institution_id=payout.institution_id, payout_id=payout.id, executed=True,
                  note_text="EX0000000001", idempotency_key=f"pay-{payout.id}", now=when)  # fmt: skip
