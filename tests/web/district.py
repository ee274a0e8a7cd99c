"""A small district for the console's tests, in a database of its own (so the dashboard sums only it).

    371302 兰山区: 阳光教育 (A: two families, a disputed class, an open alert), 启明书院 (B)
    371311 罗庄区: 远山学堂 (C)
People: 张敏 regulates 371302, 王强 regulates 371311, 李老师 is A's staff.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from uuid import UUID

from sqlalchemy.orm import Session

from escrow.access.audit import OPERATOR
from escrow.access.callers import Role
from escrow.access.users import create_user
from escrow.db.records import Contract
from escrow.flows.classes import dispute_class, record_class
from escrow.flows.collections import collect
from escrow.ids import new_id
from escrow.registry.contracts import GuardianDetails, sign_contract
from escrow.registry.courses import create_course
from escrow.registry.institutions import register_institution
from escrow.registry.jurisdictions import add_jurisdiction
from escrow.rules.identity import CREDIT_CODE_CHARS, credit_code_check_char
from escrow.rules.policy import CourseCategory
from escrow.supervision.alerts import Finding, Severity, raise_alerts
from escrow.supervision.dashboard import record_daily_figures
from tests.factories import account_number, id_number, parent, phone, regulator, rng, school

LANSHAN, LUOZHUANG = "371302", "371311"
PASSWORD = "correct-horse-battery"
PEOPLE = {"zhang": "张敏", "wang": "王强", "staff": "李老师"}


@dataclass
class District:
    institutions: dict[str, UUID] = field(default_factory=dict)
    contracts: dict[str, UUID] = field(default_factory=dict)
    disputed_class: UUID = field(default_factory=new_id)
    alert: UUID = field(default_factory=new_id)


def seed_district(session: Session, *, now: datetime | None = None) -> District:
    now = now or datetime.now(UTC)
    district = District()
    add_jurisdiction(session, code=LANSHAN, name="兰山区")
    add_jurisdiction(session, code=LUOZHUANG, name="罗庄区")
    for key, name, code, families in (
        ("A", "阳光教育", LANSHAN, 2),
        ("B", "启明书院", LANSHAN, 1),
        ("C", "远山学堂", LUOZHUANG, 1),
    ):
        add_school(session, district, key, name, code, families=families, now=now)
    owner = school(district.institutions["A"])
    contract = district.contracts["A0"]
    given = record_class(session, caller=owner, institution_id=district.institutions["A"], contract_id=contract,
                         hours=1, given_on=None, idempotency_key="class-A0", now=now).value  # fmt: skip
    guardian = session.get_one(Contract, (district.institutions["A"], contract)).guardian_id
    family = parent(session, guardian)
    dispute_class(session, caller=family, institution_id=district.institutions["A"], class_id=given.id,
                  reason="没有上课", idempotency_key=f"d-{given.id}", now=now)  # fmt: skip
    district.disputed_class = given.id
    evidence = {"requests": 4, "baseline": 0.5, "refunded_fen": 123_456_78, "held_fen": 50_000_00, "days": 7}
    finding = Finding("refund_surge", Severity.RED, district.institutions["A"], "",
                      "4 refund requests in 7 days against 0.5 before; refunds took 71.2% of the held funds",
                      evidence)  # fmt: skip
    (district.alert,) = raise_alerts(session, [finding], rules=[], now=now, run_id=None)
    create_user(session, name=PEOPLE["zhang"], role=Role.REGULATOR, password=PASSWORD, jurisdictions=[LANSHAN],
                by=OPERATOR, now=now)  # fmt: skip
    create_user(session, name=PEOPLE["wang"], role=Role.REGULATOR, password=PASSWORD, jurisdictions=[LUOZHUANG],
                by=OPERATOR, now=now)  # fmt: skip
    create_user(session, name=PEOPLE["staff"], role=Role.INSTITUTION, password=PASSWORD,
                institution_id=district.institutions["A"], by=OPERATOR, now=now)  # fmt: skip
    record_daily_figures(session, now=now)
    return district


def add_school(
    session: Session, district: District, key: str, name: str, code: str, *, families: int, now: datetime
) -> UUID:
    """An institution with `families` contracts, each paid for (6,000.00 yuan less 123.45 per family before)."""
    institution = register_institution(
        session,
        caller=regulator(code),
        name=name,
        credit_code=_credit_code(code),
        jurisdiction_code=code,
        custody_bank="bank_l",
        custody_account=account_number(),
        supervision_model=None,
        today=now.date(),
    )
    district.institutions[key] = institution.id
    for n in range(families):
        district.contracts[f"{key}{n}"] = _family(session, institution.id, n, now)
    return institution.id


def _family(session: Session, institution_id: UUID, n: int, now: datetime) -> UUID:
    owner = school(institution_id)
    course = create_course(session, caller=owner, institution_id=institution_id, name=f"数学五年级 {n}",
                           category=CourseCategory.SUBJECT, unit_price_fen=15_000, guide_price_fen=15_000,
                           today=now.date())  # fmt: skip
    view = sign_contract(
        session,
        caller=owner,
        institution_id=institution_id,
        course_id=course.id,
        guardian=GuardianDetails(name=f"王{'芳丽'[n % 2]}", phone=phone(), id_number=id_number()),
        student_name=f"王小{'明红'[n % 2]}",
        hours_bought=40,
        bonus_hours=0,
        term_start=now.date(),
        term_end=now.date() + timedelta(days=80),
        now=now,
    )
    collect(session, caller=owner, institution_id=institution_id, contract_id=view.contract.id,
            amount_fen=600_000 - n * 12_345, bank_reference=f"REF-{view.contract.id.hex[:12]}", collected_at=None,
            idempotency_key=f"web-{view.contract.id}", now=now)  # fmt: skip
    return view.contract.id


def _credit_code(jurisdiction: str) -> str:
    first = "52" + jurisdiction + "".join(rng.choice(CREDIT_CODE_CHARS) for _ in range(9))
    return first + credit_code_check_char(first)
