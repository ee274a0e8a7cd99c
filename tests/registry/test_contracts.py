"""Contracts and collections as use cases: caps per jurisdiction and per policy version, races."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime
from uuid import UUID

import pytest
from sqlalchemy.orm import Session, sessionmaker

from escrow.db.records import PolicyVersion
from escrow.errors import PolicyViolation
from escrow.flows.collections import collect
from escrow.registry.contracts import GuardianDetails, sign_contract
from escrow.registry.courses import create_course
from escrow.registry.institutions import register_institution
from escrow.registry.jurisdictions import add_jurisdiction
from escrow.rules.policy import CourseCategory
from tests.factories import account_number, credit_code, phone, regulator, school

STRICT, NATIONAL = "310113", "310114"


def version(code: str, effective: date, **numbers: int) -> PolicyVersion:
    fields = {
        "max_months": 3,
        "max_hours": 60,
        "max_non_subject_fen": 500_000,
        "guide_price_margin_bp": 1_000,
        "confirm_after_working_days": 15,
        "refund_response_working_days": 5,
        "max_class_backdate_days": 7,
        "max_term_start_past_days": 30,
        "release_cadence": "per_class",
        "release_tranches_pct": [],
        "default_supervision_model": "custody",
        "alert_thresholds": {},
    }
    fields.update(numbers)
    return PolicyVersion(jurisdiction_code=code, effective_date=effective, created_by="test", **fields)


@pytest.fixture(scope="module")
def districts(engine: object, db: sessionmaker[Session]) -> None:
    with db.begin() as s:
        add_jurisdiction(s, code=STRICT, name="Strict district")
        add_jurisdiction(s, code=NATIONAL, name="Defaults district")
        # history, as if set by the regulator on those days
        s.add(version(STRICT, date(2026, 1, 1), max_hours=40, max_non_subject_fen=300_000))
        s.add(version(STRICT, date(2026, 6, 1), max_hours=50, max_non_subject_fen=300_000))


def school_in(db: sessionmaker[Session], code: str, category: CourseCategory) -> tuple[UUID, UUID]:
    with db.begin() as s:
        inst = register_institution(
            s,
            caller=regulator(code),
            name="School",
            credit_code=credit_code(),
            jurisdiction_code=code,
            custody_bank="bank",
            custody_account=account_number(),
            supervision_model=None,
            today=date(2026, 1, 1),
        )
        course = create_course(
            s,
            caller=school(inst.id),
            institution_id=inst.id,
            name="Course",
            category=category,
            unit_price_fen=10_000,
            guide_price_fen=10_000,
            today=date(2026, 1, 1),
        )
        return inst.id, course.id


def sign(db: sessionmaker[Session], inst: UUID, course: UUID, hours: int, on: date) -> UUID:
    with db.begin() as s:
        view = sign_contract(
            s,
            caller=school(inst),
            institution_id=inst,
            course_id=course,
            guardian=GuardianDetails("Chen Jing", phone()),
            student_name="Chen Chen",
            hours_bought=hours,
            bonus_hours=0,
            term_start=on,
            term_end=on,
            now=datetime.combine(on, datetime.min.time(), UTC),
        )
        return view.contract.id


@pytest.mark.parametrize(
    ("code", "on", "cap"),
    [(STRICT, date(2026, 3, 1), 40), (STRICT, date(2026, 7, 1), 50), (NATIONAL, date(2026, 7, 1), 60)],
)
def test_the_hours_cap_of_the_version_in_force_when_signed(
    districts: None, db: sessionmaker[Session], code: str, on: date, cap: int
) -> None:
    inst, course = school_in(db, code, CourseCategory.SUBJECT)
    sign(db, inst, course, cap, on)
    with pytest.raises(PolicyViolation, match=f"{cap + 1} class hours .* cap of {cap} hours"):
        sign(db, inst, course, cap + 1, on)


def test_collections_are_judged_by_the_contracts_own_policy_version(districts: None, db: sessionmaker[Session]) -> None:
    inst, course = school_in(db, STRICT, CourseCategory.NON_SUBJECT)
    # 3,000.00 yuan is this district's non-subject cap: 30 hours at 100 yuan is exactly at it
    contract = sign(db, inst, course, 30, date(2026, 3, 1))
    with pytest.raises(PolicyViolation, match="exceeds the non-subject cap of 300000 fen"):
        sign(db, inst, course, 31, date(2026, 3, 1))
    with db.begin() as s:
        done = collect(
            s,
            caller=school(inst),
            institution_id=inst,
            contract_id=contract,
            amount_fen=300_000,
            bank_reference="B-1",
            collected_at=None,
            idempotency_key="k1",
            now=datetime.now(UTC),
        )
    assert done.value.amount_fen == 300_000


def test_racing_collections_never_exceed_the_contract_price(districts: None, db: sessionmaker[Session]) -> None:
    inst, course = school_in(db, NATIONAL, CourseCategory.SUBJECT)
    contract = sign(db, inst, course, 40, date(2026, 7, 1))  # 400,000 fen
    start = threading.Barrier(8)

    def pay(n: int) -> bool:
        start.wait()
        try:
            with db.begin() as s:
                collect(
                    s,
                    caller=school(inst),
                    institution_id=inst,
                    contract_id=contract,
                    amount_fen=100_000,
                    bank_reference=f"RACE-{n}",
                    collected_at=None,
                    idempotency_key=f"race-{n}",
                    now=datetime.now(UTC),
                )
            return True
        except PolicyViolation:
            return False

    with ThreadPoolExecutor(8) as pool:
        assert sum(pool.map(pay, range(8))) == 4
