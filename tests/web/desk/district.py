"""An institution of the console's test district with a desk to work at, seeded through the use cases.

    371302 兰山区: 明德培训 (D), its accountant 赵会计; 启明书院 (B, of the district) gets its own staff 陈老师
D offers 少儿钢琴 (non-subject, 200 yuan an hour) and 数学六年级 (subject, 150 yuan an hour). Its families:
林小明 and 李小红 in piano (paid in full), 张小华 in piano (signed, nothing collected yet), 刘小强 in maths.
林小明 had two classes, one confirmed by the parent (so some money is releasable), one awaiting the parent.
Tests that use something up (a refund to answer, money to pay out) make their own with `family`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from uuid import UUID

from sqlalchemy.orm import Session

from escrow.access.audit import OPERATOR
from escrow.access.callers import Caller, Role
from escrow.access.users import create_user
from escrow.bank.statements import import_statements
from escrow.db.records import Contract
from escrow.demo.bank_files import ledger_statements, statements_csv
from escrow.families.complaints import submit_complaint
from escrow.flows.classes import confirm_class, record_class
from escrow.flows.collections import collect
from escrow.flows.refunds import request_refund
from escrow.ids import new_id
from escrow.registry.contracts import GuardianDetails, sign_contract
from escrow.registry.courses import create_course
from escrow.registry.institutions import register_institution
from escrow.rules.calendar import local_date
from escrow.rules.families import ComplaintCategory
from escrow.rules.policy import CourseCategory
from tests.factories import account_number, id_number, parent, phone, regulator, school, stand_in_calendar
from tests.web.district import LANSHAN, PASSWORD, District, _credit_code

DESK_PEOPLE = {"accountant": "赵会计", "other": "陈老师"}
PIANO_FEN, MATHS_FEN = 20_000, 15_000  # an hour


@dataclass
class Desk:
    institution: UUID = field(default_factory=new_id)
    other_institution: UUID = field(default_factory=new_id)  # B, whose staff must not see D's desk
    piano: UUID = field(default_factory=new_id)
    maths: UUID = field(default_factory=new_id)
    contracts: dict[str, UUID] = field(default_factory=dict)  # by student
    other_contract: UUID = field(default_factory=new_id)  # one of B's
    complaint: UUID = field(default_factory=new_id)  # 林小明's family's, about D


def seed_desk(session: Session, district: District, *, now: datetime | None = None) -> Desk:
    now = now or datetime.now(UTC)
    today = local_date(now)
    stand_in_calendar(session, now)
    desk = Desk(other_institution=district.institutions["B"], other_contract=district.contracts["B0"])
    desk.institution = register_institution(
        session, caller=regulator(LANSHAN), name="明德培训", credit_code=_credit_code(LANSHAN),
        jurisdiction_code=LANSHAN, custody_bank="bank_l", custody_account=account_number(), supervision_model=None,
        today=today,
    ).id  # fmt: skip
    owner = school(desk.institution)
    desk.piano = create_course(session, caller=owner, institution_id=desk.institution, name="少儿钢琴",
                               category=CourseCategory.NON_SUBJECT, unit_price_fen=PIANO_FEN, guide_price_fen=None,
                               today=today).id  # fmt: skip
    desk.maths = create_course(session, caller=owner, institution_id=desk.institution, name="数学六年级",
                               category=CourseCategory.SUBJECT, unit_price_fen=MATHS_FEN, guide_price_fen=MATHS_FEN,
                               today=today).id  # fmt: skip
    for student, course, hours, paid in (
        ("林小明", desk.piano, 20, True),
        ("李小红", desk.piano, 20, True),
        ("张小华", desk.piano, 10, False),
        ("刘小强", desk.maths, 40, True),
    ):
        desk.contracts[student] = family(session, desk, course, student, hours, paid=paid, now=now)
    _classes_of(session, desk, desk.contracts["林小明"], now)
    _deliver_statements(session, desk, now)
    desk.complaint = submit_complaint(
        session, caller=family_of(session, desk, desk.contracts["林小明"]), institution_id=desk.institution,
        category=ComplaintCategory.TEACHING, body="老师连续两次迟到", contract_id=desk.contracts["林小明"], now=now,
    ).id  # fmt: skip
    create_user(session, name=DESK_PEOPLE["accountant"], role=Role.INSTITUTION, password=PASSWORD,
                institution_id=desk.institution, by=OPERATOR, now=now)  # fmt: skip
    create_user(session, name=DESK_PEOPLE["other"], role=Role.INSTITUTION, password=PASSWORD,
                institution_id=desk.other_institution, by=OPERATOR, now=now)  # fmt: skip
    return desk


def family(session: Session, desk: Desk, course: UUID, student: str, hours: int, *, paid: bool, now: datetime) -> UUID:
    """A contract of D signed today for a term of 60 days, paid in full when `paid`."""
    owner = school(desk.institution)
    today = local_date(now)
    view = sign_contract(
        session, caller=owner, institution_id=desk.institution, course_id=course,
        guardian=GuardianDetails(name=f"{student[0]}家长", phone=phone(), id_number=id_number()), student_name=student,
        hours_bought=hours, bonus_hours=0, term_start=today, term_end=today + timedelta(days=60), now=now,
    )  # fmt: skip
    if paid:
        collect(session, caller=owner, institution_id=desk.institution, contract_id=view.contract.id,
                amount_fen=view.contract.price_fen, bank_reference=f"D-{view.contract.id.hex[:16]}",
                collected_at=None, idempotency_key=f"desk-{view.contract.id}", now=now)  # fmt: skip
    return view.contract.id


def family_of(session: Session, desk: Desk, contract_id: UUID) -> Caller:
    return parent(session, session.get_one(Contract, (desk.institution, contract_id)).guardian_id)


def ask_refund(session: Session, desk: Desk, contract_id: UUID, *, now: datetime | None = None) -> UUID:
    """The family asks for what is unconsumed back."""
    return request_refund(session, caller=family_of(session, desk, contract_id), institution_id=desk.institution,
                          contract_id=contract_id, reason="孩子转学", now=now or datetime.now(UTC)).id  # fmt: skip


def confirmed_class(session: Session, desk: Desk, contract_id: UUID, hours: int, *, now: datetime) -> UUID:
    """A class given today and confirmed by the parent: its share becomes releasable."""
    given = record_class(session, caller=school(desk.institution), institution_id=desk.institution,
                         contract_id=contract_id, hours=hours, given_on=None, idempotency_key=f"d-{new_id()}",
                         now=now).value  # fmt: skip
    confirm_class(session, caller=family_of(session, desk, contract_id), institution_id=desk.institution,
                  class_id=given.id, idempotency_key=f"c-{given.id}", now=now)  # fmt: skip
    return given.id


def _classes_of(session: Session, desk: Desk, contract_id: UUID, now: datetime) -> None:
    confirmed_class(session, desk, contract_id, 2, now=now)
    record_class(session, caller=school(desk.institution), institution_id=desk.institution, contract_id=contract_id,
                 hours=2, given_on=None, idempotency_key=f"d-{new_id()}", now=now)  # fmt: skip


def _deliver_statements(session: Session, desk: Desk, now: datetime) -> None:
    """The custody bank's statements of the last three days, as the books have them."""
    bank = Caller(token_id=new_id(), role=Role.BANK, bank_code="bank_l")
    for back in (2, 1, 0):
        day = local_date(now) - timedelta(days=back)
        statements = ledger_statements(session, day=day, institution_ids=[desk.institution])
        if statements:  # a day before the institution had any books has none
            import_statements(session, caller=bank, data=statements_csv(statements), fmt=None, now=now)
