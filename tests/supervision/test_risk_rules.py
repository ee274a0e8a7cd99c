"""Each risk rule fires at its threshold and not one unit below, on institutions built like the demo
district's: real courses, contracts, collections, classes and refunds, made through the use cases.

Every case builds two institutions, one exactly at the threshold and one a unit short of it (or asks one
institution at two instants a unit apart), runs the rule over a database of its own, and looks at what it
found for those institutions only. Thresholds are the national defaults (see escrow/rules/policy.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from itertools import count
from uuid import UUID, uuid4

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from escrow.access.callers import Caller, Role
from escrow.bank.statements import import_statements
from escrow.db.database import make_sessionmaker
from escrow.flows.classes import confirm_class, deem_classes_confirmed, record_class
from escrow.flows.collections import collect
from escrow.flows.refunds import decide_refund, deem_refunds_approved, request_refund
from escrow.ids import new_id
from escrow.ledger.engine import post_transaction
from escrow.ledger.idempotency import IdempotencyKey
from escrow.ledger.model import Leg, NewEntry
from escrow.registry.contracts import GuardianDetails, sign_contract
from escrow.registry.courses import create_course
from escrow.registry.institutions import register_institution
from escrow.registry.jurisdictions import add_jurisdiction
from escrow.rules.calendar import BUSINESS_TZ
from escrow.rules.policy import NATIONAL_DEFAULTS, CourseCategory, SupervisionModel
from escrow.supervision.alerts import Finding
from escrow.supervision.reconcile import reconcile
from escrow.supervision.risks import RULES, risk_findings
from tests.factories import account_number, credit_code, fresh_database, parent, phone, regulator

J = "310104"
NOW = datetime(2026, 6, 15, 4, tzinfo=UTC)  # a Monday, noon in Beijing
KEYS = count(1)
THRESHOLDS = NATIONAL_DEFAULTS.alert_thresholds


@pytest.fixture(scope="module")
def db(database_url: str) -> Iterator[sessionmaker[Session]]:
    """A database of its own: the rules and jobs run over everything in it."""
    with fresh_database(database_url, "risks") as engine:
        with make_sessionmaker(engine).begin() as s:
            add_jurisdiction(s, code=J, name="Xuhui District")
        yield make_sessionmaker(engine)


@dataclass
class School:
    id: UUID
    owner: Caller
    course: UUID
    account: str


def school(s: Session, *, unit: int = 10_000, model: SupervisionModel | None = None) -> School:
    account = account_number()
    inst = register_institution(
        s,
        caller=regulator(J),
        name="Bright Future Education",
        credit_code=credit_code(),
        jurisdiction_code=J,
        custody_bank="bank_r",
        custody_account=account,
        supervision_model=model,
        today=(NOW - timedelta(days=200)).date(),
    )
    owner = Caller(token_id=new_id(), role=Role.INSTITUTION, institution_id=inst.id)
    course = create_course(
        s,
        caller=owner,
        institution_id=inst.id,
        name="Maths level 3",
        category=CourseCategory.SUBJECT,
        unit_price_fen=unit,
        guide_price_fen=unit,
        today=(NOW - timedelta(days=200)).date(),
    )
    return School(inst.id, owner, course.id, account)


def contract(s: Session, at: School, *, signed: datetime, hours: int = 20, paid: int | None = None) -> UUID:
    """A signed contract and its collection (the full price unless `paid` says less), on `signed`."""
    view = sign_contract(
        s,
        caller=at.owner,
        institution_id=at.id,
        course_id=at.course,
        guardian=GuardianDetails(name="Chen Jing", phone=phone()),
        student_name="Chen Hao",
        hours_bought=hours,
        bonus_hours=0,
        term_start=signed.date(),
        term_end=signed.date() + timedelta(days=80),
        now=signed,
    )
    collect(
        s,
        caller=at.owner,
        institution_id=at.id,
        contract_id=view.contract.id,
        amount_fen=view.contract.price_fen if paid is None else paid,
        bank_reference=f"DB{next(KEYS):010d}",
        collected_at=signed,
        idempotency_key=f"risk-{next(KEYS)}",
        now=signed,
    )
    return view.contract.id


def family(s: Session, at: School, contract_id: UUID) -> Caller:
    guardian = s.scalar(
        text("SELECT guardian_id FROM contract WHERE institution_id = :i AND id = :c"), {"i": at.id, "c": contract_id}
    )
    assert guardian is not None
    return parent(s, guardian)


def found(db: sessionmaker[Session], rule: str, at: datetime = NOW) -> dict[UUID, list[Finding]]:
    """What one rule finds, by institution, evaluated at `at`."""
    by: dict[UUID, list[Finding]] = {}
    with db.begin() as s:
        for f in risk_findings(s, now=at)[0]:
            if f.rule == rule and f.institution_id is not None:
                by.setdefault(f.institution_id, []).append(f)
    return by


def build(db: sessionmaker[Session], make: Callable[[Session], School]) -> School:
    with db.begin() as s:
        return make(s)


def test_every_rule_has_a_threshold_test() -> None:
    covered = {
        "money_idle",
        "money_idle_long",
        "refund_surge",
        "collection_surge",
        "deemed_confirmations",
        "refund_deadline_missed",
        "reserve_below_collections",
        "statement_missing",
        "custody_below_owed",
        "cap_broken",
        "calendar_year_missing",  # tests/supervision/test_calendar_alert.py
        "complaint_surge",  # tests/supervision/test_complaint_surge.py
    }
    assert {code for _, codes in RULES.values() for code in codes} == covered


def test_money_idle_at_14_and_30_days_without_a_class(db: sessionmaker[Session]) -> None:
    def idle(s: Session) -> School:
        at = school(s)
        contract_id = contract(s, at, signed=NOW - timedelta(days=60))
        record_class(
            s,
            caller=at.owner,
            institution_id=at.id,
            contract_id=contract_id,
            hours=2,
            given_on=date(2026, 5, 1),
            now=datetime(2026, 5, 1, 12, tzinfo=UTC),
            idempotency_key=uuid4().hex,
        )
        return at

    at = build(db, idle)
    last_class = date(2026, 5, 1)

    def rules_on(days: int) -> list[tuple[str, str]]:
        when = datetime.combine(last_class + timedelta(days=days), time(12), UTC)
        return sorted(
            (f.rule, f.severity.value)
            for rule in ("money_idle", "money_idle_long")
            for f in found(db, rule, when).get(at.id, [])
        )

    assert THRESHOLDS["idle_days_yellow"] == 14 and THRESHOLDS["idle_days_red"] == 30
    assert rules_on(13) == []
    assert rules_on(14) == [("money_idle", "yellow")]
    assert rules_on(29) == [("money_idle", "yellow")]
    assert rules_on(30) == [("money_idle_long", "red")]


def refunds_asked(s: Session, at: School, *, when: list[datetime], approve: bool = False) -> None:
    for asked in when:
        contract_id = contract(s, at, signed=asked - timedelta(days=1), hours=1)
        request = request_refund(
            s,
            caller=family(s, at, contract_id),
            institution_id=at.id,
            contract_id=contract_id,
            reason="moving",
            now=asked,
        )
        if approve:
            decide_refund(
                s,
                caller=at.owner,
                institution_id=at.id,
                request_id=request.id,
                approve=True,
                reason=None,
                idempotency_key=f"risk-{next(KEYS)}",
                now=asked,
            )


def test_refund_surge_by_count_against_no_baseline(db: sessionmaker[Session]) -> None:
    """No refunds before: 3 requests in 7 days (the minimum) are a surge, 2 are not."""
    recent = [NOW - timedelta(days=d, hours=1) for d in range(3)]
    surge = build(db, lambda s: _with(s, lambda at: refunds_asked(s, at, when=recent)))
    calm = build(db, lambda s: _with(s, lambda at: refunds_asked(s, at, when=recent[:2])))
    hits = found(db, "refund_surge")
    assert surge.id in hits and calm.id not in hits


def test_refund_surge_by_count_against_a_baseline(db: sessionmaker[Session]) -> None:
    """8 requests in the 4 weeks before (2 a week): 6 this week is 3 times that, 5 is not."""
    before = [NOW - timedelta(days=9 + 3 * k) for k in range(8)]
    recent = [NOW - timedelta(hours=2 + k) for k in range(6)]
    surge = build(db, lambda s: _with(s, lambda at: refunds_asked(s, at, when=before + recent)))
    calm = build(db, lambda s: _with(s, lambda at: refunds_asked(s, at, when=before + recent[:5])))
    hits = found(db, "refund_surge")
    assert surge.id in hits and calm.id not in hits


def test_refund_surge_by_share_of_held_funds(db: sessionmaker[Session]) -> None:
    """With a baseline of 2 a week, 3 requests are no surge by count; but refunds of 30.00 yuan out of
    150.00 held before them are 20% of the held funds, and one fen more held makes it less than 20%."""
    before = [NOW - timedelta(days=9 + 3 * k) for k in range(8)]
    recent = [NOW - timedelta(hours=2 + k) for k in range(3)]

    def school_holding(held: int) -> Callable[[Session], School]:
        def make(s: Session) -> School:
            at = school(s, unit=1_000)
            refunds_asked(s, at, when=before, approve=True)  # paid back before the 7 days: not held any more
            refunds_asked(s, at, when=recent, approve=True)  # 3 x 10.00 yuan refunded
            contract(s, at, signed=NOW - timedelta(days=50), hours=13, paid=held)
            return at

        return make

    assert THRESHOLDS["refund_surge_held_pct"] == 20
    surge = build(db, school_holding(12_000))
    calm = build(db, school_holding(12_001))
    hits = found(db, "refund_surge")
    assert surge.id in hits and calm.id not in hits
    assert hits[surge.id][0].evidence == {
        "requests": 3,
        "baseline": 2.0,
        "refunded_fen": 3_000,
        "held_fen": 12_000,
        "days": 7,
    }


def _with(s: Session, fill: Callable[[School], None], **kwargs: object) -> School:
    at = school(s, **kwargs)  # type: ignore[arg-type]
    fill(at)
    return at


def test_collection_surge(db: sessionmaker[Session]) -> None:
    """5 collections in 7 days against none before are a surge; 4 are not."""
    recent = [NOW - timedelta(days=d, hours=3) for d in range(5)]

    def collecting(days: list[datetime]) -> Callable[[Session], School]:
        return lambda s: _with(s, lambda at: [contract(s, at, signed=when) for when in days] and None)

    surge, calm = build(db, collecting(recent)), build(db, collecting(recent[:4]))
    hits = found(db, "collection_surge")
    assert surge.id in hits and calm.id not in hits


def test_deemed_confirmations_at_half_of_ten_classes(db: sessionmaker[Session]) -> None:
    """Of 10 classes given in 60 days, 5 only deemed confirmed is the 50% threshold; 4 is below it."""

    def classes(deemed: int) -> Callable[[Session], School]:
        def make(s: Session) -> School:
            at = school(s)
            contract_id = contract(s, at, signed=NOW - timedelta(days=58), hours=20)
            guardian = family(s, at, contract_id)
            for k in range(10):
                given = date(2026, 4, 20) + timedelta(days=k)
                record = record_class(
                    s,
                    caller=at.owner,
                    institution_id=at.id,
                    contract_id=contract_id,
                    hours=1,
                    given_on=given,
                    now=datetime.combine(given, time(12), UTC),
                    idempotency_key=uuid4().hex,
                ).value
                if k >= deemed:
                    confirm_class(
                        s,
                        caller=guardian,
                        institution_id=at.id,
                        class_id=record.id,
                        idempotency_key=f"risk-{next(KEYS)}",
                        now=datetime.combine(given, time(13), UTC),
                    )
            return at

        return make

    surge, calm = build(db, classes(5)), build(db, classes(4))
    with db.begin() as s:
        deem_classes_confirmed(s, now=NOW)
    hits = found(db, "deemed_confirmations")
    assert THRESHOLDS["deemed_confirmed_pct"] == 50
    assert surge.id in hits and calm.id not in hits
    assert hits[surge.id][0].evidence == {"classes_confirmed": 10, "deemed": 5, "by_parents": 5}
    assert hits[surge.id][0].detail == (  # the text says what the evidence says
        "5 of the 10 classes confirmed in the last 60 days were only deemed confirmed (the parent stayed silent);"
        " 5 were confirmed by parents"
    )


def test_refund_deadline_missed_by_one_request(db: sessionmaker[Session]) -> None:
    """One request left unanswered past its deadline fires; one answered in time does not."""
    asked = NOW - timedelta(days=20)
    missed = build(db, lambda s: _with(s, lambda at: refunds_asked(s, at, when=[asked])))
    answered = build(db, lambda s: _with(s, lambda at: refunds_asked(s, at, when=[asked], approve=True)))
    with db.begin() as s:
        deem_refunds_approved(s, now=NOW)
    hits = found(db, "refund_deadline_missed")
    assert missed.id in hits and answered.id not in hits


def test_reserve_below_three_months_of_collections(db: sessionmaker[Session]) -> None:
    """Under the reserve model the reserve must cover 3 months of collections: equal is enough, one fen less
    is not. Collections from before the 3 months do not count."""

    def reserve_school(reserve: int) -> Callable[[Session], School]:
        def make(s: Session) -> School:
            at = school(s, model=SupervisionModel.RESERVE)
            contract(s, at, signed=NOW - timedelta(days=120), hours=10)  # 100,000 fen, outside the 3 months
            contract(s, at, signed=NOW - timedelta(days=40), hours=20)  # 200,000 fen, inside
            accounts = {
                code: account_id
                for code, account_id in s.execute(
                    text("SELECT code, id FROM account WHERE institution_id = :i AND code LIKE 'reserve%'"),
                    {"i": at.id},
                )
            }
            post_transaction(
                s,
                institution_id=at.id,
                idempotency=IdempotencyKey("test", f"reserve-{at.id}"),
                entry=NewEntry(
                    kind="reserve_deposited",
                    legs=[Leg(accounts["reserve_cash"], reserve), Leg(accounts["reserve_deposit"], -reserve)],
                    effective_at=NOW - timedelta(days=30),
                ),
            )
            return at

        return make

    covered, short = build(db, reserve_school(200_000)), build(db, reserve_school(199_999))
    hits = found(db, "reserve_below_collections")
    assert short.id in hits and covered.id not in hits
    assert hits[short.id][0].evidence == {"reserve_fen": 199_999, "collected_fen": 200_000, "months": 3}


def deliver(s: Session, at: School, day: date, *, opening: int, lines: list[tuple[int, str]]) -> None:
    rows = [f"{at.account},{day},opening,{opening / 100:.2f},"]
    rows += [f"{at.account},{day},{'credit' if a > 0 else 'debit'},{abs(a) / 100:.2f},{ref}" for a, ref in lines]
    rows.append(f"{at.account},{day},closing,{(opening + sum(a for a, _ in lines)) / 100:.2f},")
    data = ("account,date,type,amount,reference\n" + "\n".join(rows) + "\n").encode()
    bank = Caller(token_id=new_id(), role=Role.BANK, bank_code="bank_r")
    import_statements(s, caller=bank, data=data, fmt="csv", now=NOW)


def test_statement_missing_at_nine_the_next_morning(db: sessionmaker[Session]) -> None:
    """Day T's statement is due by T+1 09:00 Beijing time: missing at 09:00, not yet at 08:59:59.999999."""
    day = date(2026, 6, 14)
    deadline = datetime.combine(day + timedelta(days=1), time(9), BUSINESS_TZ)

    def with_yesterdays(s: Session) -> School:
        at = school(s)
        contract(s, at, signed=NOW - timedelta(days=30))
        deliver(s, at, day - timedelta(days=1), opening=200_000, lines=[])  # T-1's is in
        return at

    at = build(db, with_yesterdays)
    assert [f.subject for f in found(db, "statement_missing", deadline).get(at.id, [])] == ["2026-06-14"]
    assert found(db, "statement_missing", deadline - timedelta(microseconds=1)).get(at.id) is None


def test_custody_below_owed_by_one_fen(db: sessionmaker[Session]) -> None:
    """The bank's closing balance equal to what families are owed is enough; one fen less is not."""
    day = date(2026, 6, 14)

    def held(opening: int) -> Callable[[Session], School]:
        def make(s: Session) -> School:
            at = school(s)
            paid = datetime.combine(day, time(10), BUSINESS_TZ)
            contract(s, at, signed=paid.astimezone(UTC), hours=20)
            reference = s.scalar(text("SELECT bank_reference FROM collection WHERE institution_id = :i"), {"i": at.id})
            deliver(s, at, day, opening=opening, lines=[(200_000, str(reference))])
            return at

        return make

    enough, short = build(db, held(0)), build(db, held(-1))
    with db.begin() as s:
        reconcile(s, now=NOW)
    hits = found(db, "custody_below_owed")
    assert short.id in hits and enough.id not in hits
    assert hits[short.id][0].evidence == {
        "statement_date": "2026-06-14",
        "bank_fen": 199_999,
        "family_owed_fen": 200_000,
    }


def test_cap_broken_by_one_fen_over_a_single_collection(db: sessionmaker[Session]) -> None:
    """60 hours at 100.00 yuan is the most one collection may be here: 6,000.00 yuan taken in off the books is
    within the cap (only unmatched), 6,000.01 breaks it."""
    day = date(2026, 6, 14)
    cap = NATIONAL_DEFAULTS.max_hours * 10_000

    def taking(amount: int) -> Callable[[Session], School]:
        def make(s: Session) -> School:
            at = school(s)
            deliver(s, at, day, opening=0, lines=[(amount, f"OFF-{next(KEYS)}")])
            return at

        return make

    within, broken = build(db, taking(cap)), build(db, taking(cap + 1))
    with db.begin() as s:
        reconcile(s, now=NOW)
    hits = found(db, "cap_broken")
    assert broken.id in hits and within.id not in hits
    assert hits[broken.id][0].evidence["cap_fen"] == cap
