"""The demo's family, for a newcomer to sign in as on the parent's phone (/m): a known phone number with
contracts at two of the district's institutions, classes waiting for its word, one class confirmed with an
evaluation, and a complaint the institution has answered. Built through the use cases, like the district."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID

from sqlalchemy import select
from sqlalchemy.orm import Session

from escrow.access.callers import Caller, Role
from escrow.access.messages import DevOutbox
from escrow.db.records import Course
from escrow.families.complaints import reply_to_complaint, submit_complaint
from escrow.families.evaluations import confirm_with_evaluation
from escrow.flows.classes import record_class
from escrow.flows.collections import collect
from escrow.ids import new_id
from escrow.registry.contracts import GuardianDetails, sign_contract
from escrow.rules.calendar import local_date
from escrow.rules.families import ComplaintCategory

DEMO_PARENT_PHONE = "13800138000"  # printed by `escrow demo`; its sign-in code appears at /m/dev/outbox
COMPLAINT = ("上周的课临时换了老师，没有提前通知。", "抱歉，原老师生病请假；以后换课会提前一天通知。")  # and its answer


@dataclass(frozen=True, slots=True)
class DemoFamily:
    phone: str
    contracts: int
    collected_fen: int


def seed_demo_family(s: Session, *, institutions: list[UUID], now: datetime) -> DemoFamily:
    """王芳's contracts at the first two institutions given (both behaving well)."""
    parent = Caller(token_id=new_id(), role=Role.PARENT, guardian_phone=DEMO_PARENT_PHONE)
    collected = 0
    for n, (institution_id, student) in enumerate(zip(institutions[:2], ("王小明", "王小红"), strict=False)):
        school = Caller(token_id=new_id(), role=Role.INSTITUTION, institution_id=institution_id)
        contract_id, paid = _contract(s, school, institution_id, student, now)
        collected += paid
        days = (3, 1, 0) if n == 0 else (2,)
        classes = [_class(s, school, institution_id, contract_id, now, days_ago=d) for d in days]
        if n == 0:  # the oldest class confirmed with five stars; the others wait for the family's word
            confirm_with_evaluation(s, caller=parent, institution_id=institution_id, class_id=classes[0], stars=5,
                                    comment="老师讲解耐心，孩子很喜欢", idempotency_key=f"demo-family-{classes[0]}",
                                    now=now)  # fmt: skip
            complaint = submit_complaint(s, caller=parent, institution_id=institution_id,
                                         category=ComplaintCategory.TEACHING, body=COMPLAINT[0],
                                         contract_id=contract_id, now=now)  # fmt: skip
            reply_to_complaint(s, caller=school, institution_id=institution_id, complaint_id=complaint.id,
                               body=COMPLAINT[1], sender=DevOutbox(), now=now)  # fmt: skip
    return DemoFamily(DEMO_PARENT_PHONE, min(len(institutions), 2), collected)


def _contract(s: Session, school: Caller, institution_id: UUID, student: str, now: datetime) -> tuple[UUID, int]:
    course = s.scalars(select(Course).where(Course.institution_id == institution_id).order_by(Course.id)).first()
    assert course is not None, "every seeded institution offers a course"
    today = local_date(now)
    view = sign_contract(s, caller=school, institution_id=institution_id, course_id=course.id,
                         guardian=GuardianDetails("王芳", DEMO_PARENT_PHONE), student_name=student, hours_bought=20,
                         bonus_hours=2, term_start=today - timedelta(days=7), term_end=today + timedelta(days=70),
                         now=now)  # fmt: skip
    collect(s, caller=school, institution_id=institution_id, contract_id=view.contract.id,
            amount_fen=view.contract.price_fen, bank_reference=f"DEMO{view.contract.id.hex[:12].upper()}",
            collected_at=None, idempotency_key=f"demo-family-{view.contract.id}", now=now)  # fmt: skip
    return view.contract.id, view.contract.price_fen


def _class(
    s: Session, school: Caller, institution_id: UUID, contract_id: UUID, now: datetime, *, days_ago: int
) -> UUID:
    """A class given `days_ago`, recorded now (the family's window to answer starts today)."""
    given_on = local_date(now) - timedelta(days=days_ago)
    key = f"demo-family-{contract_id}-{days_ago}"
    return record_class(s, caller=school, institution_id=institution_id, contract_id=contract_id, hours=2,
                        given_on=given_on, idempotency_key=key, now=now).value.id  # fmt: skip
