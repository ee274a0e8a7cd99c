"""Release cadences and failed payouts, as the scheduled payout run meets them.

One school per test, in a district of its own whose policy sets the cadence. Each contract is 30 hours
bought and 1 bonus hour at 100 yuan an hour: 300,000 fen over 31 hours, so a 3-hour class releases
300,000 x 3 / 31 fen, rounded down on the running total (29,032, then 29,032, 29,032, 29,033, ...).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from escrow.access.callers import Caller, Role
from escrow.db.records import ClassRecord, Payout
from escrow.flows.books import institution_balances
from escrow.flows.classes import confirm_class, record_class
from escrow.flows.collections import collect
from escrow.flows.payouts import make_payouts, settle_payout
from escrow.ids import new_id
from escrow.registry.contracts import GuardianDetails, sign_contract
from escrow.registry.courses import create_course
from escrow.registry.institutions import register_institution
from escrow.registry.jurisdictions import add_jurisdiction, set_policy
from escrow.rules.policy import NATIONAL_DEFAULTS, CourseCategory, ReleaseCadence
from escrow.rules.states import PayoutStatus
from tests.factories import account_number, credit_code, parent, phone, regulator, school
from tests.ledger_helpers import books_problems

START = datetime(2026, 9, 1, 2, tzinfo=UTC)  # Tuesday 1 September 2026, 10:00 in Beijing
BANK = "bank_c"


@dataclass(frozen=True)
class School:
    institution_id: UUID
    owner: Caller
    contracts: list[tuple[UUID, Caller]]  # each contract with its parent


def open_school(
    db: sessionmaker[Session],
    jurisdiction: str,
    cadence: ReleaseCadence,
    tranches: tuple[int, ...] = (),
    families: int = 1,
) -> School:
    policy = replace(NATIONAL_DEFAULTS, release_cadence=cadence, release_tranches_pct=tranches)
    with db.begin() as s:
        add_jurisdiction(s, code=jurisdiction, name=f"District {jurisdiction}")
        set_policy(
            s,
            caller=regulator(jurisdiction),
            jurisdiction_code=jurisdiction,
            effective_date=START.date(),
            policy=policy,
            today=START.date(),
        )
        inst = register_institution(
            s,
            caller=regulator(jurisdiction),
            name=f"School {jurisdiction}",
            credit_code=credit_code(),
            jurisdiction_code=jurisdiction,
            custody_bank=BANK,
            custody_account=account_number(),
            supervision_model=None,
            today=START.date(),
        )
        owner = school(inst.id)
        course = create_course(
            s,
            caller=owner,
            institution_id=inst.id,
            name="Maths",
            category=CourseCategory.SUBJECT,
            unit_price_fen=10_000,
            guide_price_fen=10_000,
            today=START.date(),
        )
        contracts = []
        for n in range(families):
            view = sign_contract(
                s,
                caller=owner,
                institution_id=inst.id,
                course_id=course.id,
                guardian=GuardianDetails(f"Parent {n}", phone()),
                student_name=f"Student {n}",
                hours_bought=30,
                bonus_hours=1,
                term_start=START.date(),
                term_end=START.date() + timedelta(days=80),
                now=START,
            )
            collect(
                s,
                caller=owner,
                institution_id=inst.id,
                contract_id=view.contract.id,
                amount_fen=300_000,
                bank_reference=f"R-{view.contract.id.hex[:12]}",
                collected_at=None,
                idempotency_key=f"pay-{n}",
                now=START,
            )
            family = parent(s, view.contract.guardian_id)
            contracts.append((view.contract.id, family))
    return School(inst.id, owner, contracts)


def give_class(db: sessionmaker[Session], school_: School, at: datetime, family: int = 0, hours: int = 3) -> UUID:
    """A class given and recorded at `at`, and confirmed by the parent a minute later (its share released)."""
    contract_id, parent = school_.contracts[family]
    with db.begin() as s:
        record = record_class(
            s,
            caller=school_.owner,
            institution_id=school_.institution_id,
            contract_id=contract_id,
            hours=hours,
            given_on=at.date(),
            idempotency_key=uuid4().hex,
            now=at,
        ).value
    with db.begin() as s:
        confirm_class(
            s,
            caller=parent,
            institution_id=school_.institution_id,
            class_id=record.id,
            idempotency_key=f"confirm-{record.id}",
            now=at + timedelta(minutes=1),
        )
    return record.id


def payouts_made(db: sessionmaker[Session], school_: School, at: datetime) -> list[int]:
    """The payout run at `at`: the amounts it instructed to this school."""
    with db.begin() as s:
        made = make_payouts(s, now=at, institution_ids=[school_.institution_id])
        return [s.get_one(Payout, (school_.institution_id, p)).amount_fen for p in made]


def balances(db: sessionmaker[Session], school_: School) -> dict[str, int]:
    with db.begin() as s:
        return institution_balances(s, caller=school_.owner, institution_id=school_.institution_id, as_of=None).by_kind


def test_weekly_release_pays_seven_days_after_the_last_payout(db: sessionmaker[Session]) -> None:
    weekly = open_school(db, "320101", ReleaseCadence.WEEKLY)
    give_class(db, weekly, START)
    assert payouts_made(db, weekly, START + timedelta(hours=1)) == [29_032]  # the first one: nothing before it
    give_class(db, weekly, START + timedelta(days=2))
    give_class(db, weekly, START + timedelta(days=4))
    last_paid = START + timedelta(hours=1)
    assert payouts_made(db, weekly, START + timedelta(days=3)) == []
    assert payouts_made(db, weekly, last_paid + timedelta(days=7, seconds=-1)) == []
    assert payouts_made(db, weekly, last_paid + timedelta(days=7)) == [29_032 + 29_032]
    give_class(db, weekly, START + timedelta(days=9))
    assert payouts_made(db, weekly, last_paid + timedelta(days=13)) == []
    assert payouts_made(db, weekly, last_paid + timedelta(days=14)) == [29_033]
    assert balances(db, weekly)["releasable"] == 0
    assert balances(db, weekly)["payout_pending"] == 29_032 * 3 + 29_033
    assert books_problems(db, weekly.institution_id) == []


def test_monthly_release_pays_once_a_month_has_turned(db: sessionmaker[Session]) -> None:
    monthly = open_school(db, "320102", ReleaseCadence.MONTHLY)
    give_class(db, monthly, START)
    assert payouts_made(db, monthly, START + timedelta(hours=1)) == [29_032]
    give_class(db, monthly, datetime(2026, 9, 15, 2, tzinfo=UTC))
    give_class(db, monthly, datetime(2026, 9, 29, 2, tzinfo=UTC))
    assert payouts_made(db, monthly, datetime(2026, 9, 30, 2, tzinfo=UTC)) == []
    assert payouts_made(db, monthly, datetime(2026, 10, 1, 2, tzinfo=UTC)) == [29_032 + 29_032]
    give_class(db, monthly, datetime(2026, 10, 2, 2, tzinfo=UTC))
    assert payouts_made(db, monthly, datetime(2026, 10, 31, 2, tzinfo=UTC)) == []  # paid this month already
    # 17:00 UTC on 31 October is 01:00 on 1 November in Beijing: the district's month has turned
    assert payouts_made(db, monthly, datetime(2026, 10, 31, 17, tzinfo=UTC)) == [29_033]
    assert balances(db, monthly)["releasable"] == 0


def test_tranche_release_pays_each_contract_as_its_releases_cross_30_60_and_100_percent(
    db: sessionmaker[Session],
) -> None:
    # boundaries of 300,000 fen: 90,000, 180,000 and 300,000 (what was paid in, times 30%, 60%, 100%)
    tranches = open_school(db, "320103", ReleaseCadence.TRANCHES, (30, 30, 40), families=2)
    day = iter(START + timedelta(days=d) for d in range(40))
    for _ in range(3):  # 87,096 of the first family's 300,000: below 30%
        give_class(db, tranches, next(day))
    assert payouts_made(db, tranches, next(day)) == []
    give_class(db, tranches, next(day))  # 116,129: past 30%, so everything released so far goes
    assert payouts_made(db, tranches, next(day)) == [116_129]
    give_class(db, tranches, next(day), family=1)  # the other family's first class: 29,032 is below its 30%
    for _ in range(2):  # the first family at 174,193: below 60%
        give_class(db, tranches, next(day))
    assert payouts_made(db, tranches, next(day)) == []
    give_class(db, tranches, next(day))  # 203,225: past 60%
    assert payouts_made(db, tranches, next(day)) == [203_225 - 116_129]
    for _ in range(3):  # 30 hours given: 290,322, below 100%
        give_class(db, tranches, next(day))
    assert payouts_made(db, tranches, next(day)) == []
    give_class(db, tranches, next(day), hours=1)  # the last hour takes the rounding remainder: 300,000 exactly
    assert payouts_made(db, tranches, next(day)) == [300_000 - 203_225]
    assert balances(db, tranches)["releasable"] == 29_032  # the other family's class waits for its 30%
    assert balances(db, tranches)["prepaid"] == 300_000 - 29_032


def test_a_failed_payout_returns_its_money_to_releasable_and_is_instructed_again(db: sessionmaker[Session]) -> None:
    per_class = open_school(db, "320104", ReleaseCadence.PER_CLASS)
    first = give_class(db, per_class, START)
    second = give_class(db, per_class, START + timedelta(hours=1))
    assert payouts_made(db, per_class, START + timedelta(hours=2)) == [58_064]
    with db.begin() as s:
        payout_id = s.scalars(select(Payout.id).where(Payout.institution_id == per_class.institution_id)).one()
    assert balances(db, per_class)["releasable"] == 0
    assert balances(db, per_class)["payout_pending"] == 58_064
    bank = Caller(token_id=new_id(), role=Role.BANK, bank_code=BANK)
    with db.begin() as s:
        payout, _ = settle_payout(
            s,
            caller=bank,
            institution_id=per_class.institution_id,
            payout_id=payout_id,
            executed=False,
            note_text="account frozen by the receiving bank",
            idempotency_key="fail-1",
            now=START + timedelta(hours=3),
        )
        assert payout.status == PayoutStatus.FAILED
    after_failure = balances(db, per_class)
    assert (after_failure["releasable"], after_failure["payout_pending"]) == (58_064, 0)
    assert after_failure["custody_cash"] == 300_000  # nothing left custody
    with db.begin() as s:
        waiting = s.scalars(select(ClassRecord.payout_id).where(ClassRecord.id.in_([first, second]))).all()
        assert waiting == [None, None]
    assert payouts_made(db, per_class, START + timedelta(days=1)) == [58_064]  # the next run instructs it again
    with db.begin() as s:
        statuses = s.scalars(
            select(Payout.status).where(Payout.institution_id == per_class.institution_id).order_by(Payout.id)
        ).all()
        assert statuses == [PayoutStatus.FAILED, PayoutStatus.INSTRUCTED]
    assert books_problems(db, per_class.institution_id) == []
    assert payouts_made(db, per_class, START + timedelta(days=2)) == []  # and only once
    assert balances(db, per_class)["payout_pending"] == 58_064
