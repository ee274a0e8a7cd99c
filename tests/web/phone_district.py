"""A small district for the parent's phone, in a database of its own (its money moves as the tests go).

    371302 兰山区: 阳光教育 (A) and 启明书院 (B)
    王芳 13900001111: a maths contract at A with three classes waiting, a piano contract at B with one
    李娜 13900002222: a contract at A and a complaint about it (another family: never seen by 王芳)
People: 张敏 regulates 371302, 王强 regulates 371311, 李老师 is A's staff.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from uuid import UUID

from sqlalchemy.orm import Session

from escrow.access.audit import OPERATOR
from escrow.access.callers import Caller, Role
from escrow.access.users import create_user
from escrow.families.complaints import submit_complaint
from escrow.flows.classes import record_class
from escrow.flows.collections import collect
from escrow.ids import new_id
from escrow.registry.contracts import GuardianDetails, sign_contract
from escrow.registry.courses import create_course
from escrow.registry.institutions import register_institution
from escrow.registry.jurisdictions import add_jurisdiction
from escrow.rules.calendar import local_date
from escrow.rules.families import ComplaintCategory
from escrow.rules.policy import CourseCategory
from tests.factories import account_number, regulator, school, stand_in_calendar
from tests.web.district import LUOZHUANG, PASSWORD, _credit_code

LANSHAN = "371302"
PARENT, NEIGHBOUR = "13900001111", "13900002222"
PEOPLE = {"zhang": "张敏", "wang": "王强", "staff": "李老师"}


@dataclass
class PhoneDistrict:
    institutions: dict[str, UUID] = field(default_factory=dict)
    contracts: dict[str, UUID] = field(default_factory=dict)  # maths (A), piano (B), neighbour (A)
    classes: dict[str, list[UUID]] = field(default_factory=dict)  # waiting, per contract
    complaint: UUID = field(default_factory=new_id)  # the neighbour's


def seed_phone_district(session: Session, *, now: datetime | None = None) -> PhoneDistrict:
    now = now or datetime.now(UTC)
    stand_in_calendar(session, now)
    district = PhoneDistrict()
    add_jurisdiction(session, code=LANSHAN, name="兰山区")
    add_jurisdiction(session, code=LUOZHUANG, name="罗庄区")
    for key, name in (("A", "阳光教育"), ("B", "启明书院")):
        district.institutions[key] = register_institution(
            session, caller=regulator(LANSHAN), name=name, credit_code=_credit_code(LANSHAN),
            jurisdiction_code=LANSHAN, custody_bank="bank_m", custody_account=account_number(),
            supervision_model=None, today=local_date(now),
        ).id  # fmt: skip
    plans = (
        ("maths", "A", "数学五年级", CourseCategory.SUBJECT, 15_000, PARENT, "王芳", "王小明", 3),
        ("piano", "B", "钢琴启蒙", CourseCategory.NON_SUBJECT, 12_000, PARENT, "王芳", "王小红", 1),
        ("neighbour", "A", "英语四年级", CourseCategory.SUBJECT, 15_000, NEIGHBOUR, "李娜", "李小宝", 1),
    )
    for key, at, course, category, price, phone, guardian, student, classes in plans:
        institution_id = district.institutions[at]
        contract_id = _contract(session, institution_id, course, category, price, phone, guardian, student, now)
        district.contracts[key] = contract_id
        district.classes[key] = [
            record_class(
                session,
                caller=school(institution_id),
                institution_id=institution_id,
                contract_id=contract_id,
                hours=2,
                given_on=local_date(now) - timedelta(days=n),
                idempotency_key=f"phone-{key}-{n}",
                now=now,
            ).value.id
            for n in range(classes)
        ]
    neighbour = Caller(token_id=new_id(), role=Role.PARENT, guardian_phone=NEIGHBOUR)
    district.complaint = submit_complaint(session, caller=neighbour, institution_id=district.institutions["A"],
                                          category=ComplaintCategory.FEES, body="要求现金缴费", contract_id=None,
                                          now=now).id  # fmt: skip
    for who, jurisdictions, institution in (("zhang", [LANSHAN], None), ("wang", [LUOZHUANG], None),
                                            ("staff", None, district.institutions["A"])):  # fmt: skip
        create_user(session, name=PEOPLE[who], role=Role.INSTITUTION if institution else Role.REGULATOR,
                    password=PASSWORD, jurisdictions=jurisdictions, institution_id=institution, by=OPERATOR,
                    now=now)  # fmt: skip
    return district


def _contract(
    session: Session,
    institution_id: UUID,
    course: str,
    category: CourseCategory,
    price: int,
    phone: str,
    guardian: str,
    student: str,
    now: datetime,
) -> UUID:
    owner = school(institution_id)
    made = create_course(session, caller=owner, institution_id=institution_id, name=course, category=category,
                         unit_price_fen=price, guide_price_fen=price if category is CourseCategory.SUBJECT else None,
                         today=local_date(now))  # fmt: skip
    view = sign_contract(session, caller=owner, institution_id=institution_id, course_id=made.id,
                         guardian=GuardianDetails(name=guardian, phone=phone), student_name=student, hours_bought=20,
                         bonus_hours=2, term_start=local_date(now) - timedelta(days=10),
                         term_end=local_date(now) + timedelta(days=70), now=now)  # fmt: skip
    collect(session, caller=owner, institution_id=institution_id, contract_id=view.contract.id,
            amount_fen=view.contract.price_fen, bank_reference=f"M-{view.contract.id.hex[:12]}", collected_at=None,
            idempotency_key=f"phone-{view.contract.id}", now=now)  # fmt: skip
    return view.contract.id
