"""A demo district at the scale of a real one: 690 institutions, about 50 million yuan collected over
a few months, with classes, disputes, refunds and payouts, and a handful of institutions behaving
badly for the risk alerts to find. Every twentieth institution and each bad one is seeded through the use
cases; the others are copies of those seeded well-behaved ones (escrow/demo/copies.py), which is what makes
the district seed in seconds rather than minutes. Deterministic for a given seed."""

from __future__ import annotations

import multiprocessing
import random
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, time, timedelta
from uuid import UUID, uuid4

from sqlalchemy.orm import Session

from escrow.access.audit import OPERATOR
from escrow.access.callers import Caller, Role
from escrow.access.tokens import issue_token
from escrow.access.users import create_user
from escrow.bank.formats import StatementLine
from escrow.bank.statements import import_statements
from escrow.db.database import make_engine, make_sessionmaker
from escrow.db.records import Institution, Payout
from escrow.demo.bank_files import ledger_statements, statements_csv
from escrow.demo.copies import Identity, copy_institution, next_copy_number
from escrow.demo.family import seed_demo_family
from escrow.flows.classes import confirm_class, deem_classes_confirmed, dispute_class, record_class, resolve_dispute
from escrow.flows.collections import collect
from escrow.flows.holds import place_hold
from escrow.flows.payouts import make_payouts, settle_payout
from escrow.flows.refunds import decide_refund, deem_refunds_approved, request_refund
from escrow.ids import new_id
from escrow.registry.contracts import GuardianDetails, sign_contract
from escrow.registry.courses import create_course
from escrow.registry.institutions import register_institution
from escrow.registry.jurisdictions import add_jurisdiction
from escrow.rules.calendar import BUSINESS_TZ
from escrow.rules.identity import CREDIT_CODE_CHARS, credit_code_check_char
from escrow.rules.policy import CourseCategory
from escrow.rules.states import PayoutStatus
from escrow.supervision.jobs import JOBS, run_recorded

JURISDICTION = "310104"
BANK = "demo_bank"
DEMO_REGULATOR = ("张敏", "demo-regulator-pass")  # the console's demo sign-in, printed by `escrow demo`
DEMO_DESK = ("李会计", "demo-desk-pass")  # the first institution's accountant: the desk's demo sign-in
SUBJECTS = ["Maths", "English", "Chinese", "Physics", "Chemistry"]
ARTS = ["Piano", "Painting", "Go", "Swimming", "Robotics", "Dance"]
SURNAMES = [
    "Wang",
    "Li",
    "Zhang",
    "Liu",
    "Chen",
    "Yang",
    "Zhao",
    "Huang",
    "Zhou",
    "Wu",
    "Xu",
    "Sun",
    "Hu",
    "Zhu",
    "Gao",
    "Lin",
    "He",
    "Guo",
    "Ma",
    "Luo",
]


class Behaviour:
    GOOD = "good"
    REFUND_SURGE = "refund_surge"  # many families asking for their money back this week
    IDLE = "idle"  # money held, no classes recorded for over a month
    COLLECTION_SURGE = "collection_surge"  # a rush of prepayments in the last days
    SILENT_PARENTS = "silent_parents"  # nearly every class only deemed confirmed
    ON_HOLD = "on_hold"  # frozen by the bureau
    OFF_BOOKS = "off_books"  # a large prepayment taken into the custody account without registering it


BAD = [
    Behaviour.REFUND_SURGE,
    Behaviour.IDLE,
    Behaviour.COLLECTION_SURGE,
    Behaviour.SILENT_PARENTS,
    Behaviour.ON_HOLD,
    Behaviour.OFF_BOOKS,
]
ORIGINAL_EVERY = 20  # every twentieth institution is seeded through the use cases, the others copy one of them
STATEMENT_DAYS = 7  # the custody bank's daily statements the demo starts with, up to yesterday
OFF_BOOKS_FEN = 2_000_000  # 20,000 yuan in one payment: above any single collection the caps allow


@dataclass
class DemoDistrict:
    institutions: list[UUID] = field(default_factory=list)
    bad: dict[str, UUID] = field(default_factory=dict)
    collected_fen: int = 0
    contracts: int = 0
    tokens: dict[str, str] = field(default_factory=dict)
    regulator: tuple[str, str] = ("", "")  # the console's demo sign-in: name and password
    parent_phone: str = ""  # the parent's phone (/m) signs in with this number (escrow/demo/family.py)
    desk: tuple[str, str] = ("", "")  # the first institution's desk: name and password


def seed_demo(
    url: str,
    *,
    institutions: int = 690,
    seed: int = 1,
    now: datetime | None = None,
    workers: int = 2,
    progress: Callable[[int], None] = lambda _: None,
    family: bool = True,
) -> DemoDistrict:
    """Seed the district into the database at `url`, institutions in parallel processes;
    `progress(n)` is told as institutions are done. Every twentieth institution and every one behaving badly
    is seeded through the use cases; each other one is a copy of the last well-behaved one before it
    (escrow/demo/copies.py). Each institution has its own random stream, so the district is the same
    whatever the number of workers."""
    now = now or datetime.now(UTC)
    db = make_sessionmaker(make_engine(url, pool_size=2))
    with db.begin() as s:
        add_jurisdiction(s, code=JURISDICTION, name="Xuhui District")
        first_copy = next_copy_number(s)  # copies are numbered from here on, institution by institution
    spread = institutions // len(BAD)
    bad_slots = {i * spread + 1: b for i, b in enumerate(BAD)} if spread >= 2 else {}
    originals = [n for n in range(institutions) if n % ORIGINAL_EVERY == 0 or n in bad_slots]
    templates = [n for n in originals if n not in bad_slots]
    copies_of: dict[int, list[int]] = {n: [] for n in templates}
    for n in range(institutions):
        if n not in originals:  # 0 is always a template: bad slots start at 1
            copies_of[max(t for t in templates if t < n)].append(n)
    district = DemoDistrict()
    seeded: list[tuple[int, UUID, int, int]] = []
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        chunks = [originals[start : start + 10] for start in range(0, len(originals), 10)]
        jobs = {pool.submit(_seed_chunk, url, chunk, seed, bad_slots, now) for chunk in chunks}
        while jobs:
            done_now, jobs = wait(jobs, return_when=FIRST_COMPLETED)
            for job in done_now:
                done = job.result()
                seeded += done
                progress(len(done))
                for n, inst, collected, contracts in done:  # copy a template as soon as it is seeded
                    if copies_of.get(n):
                        copies = [(c, first_copy + c) for c in copies_of[n]]
                        jobs.add(pool.submit(_copy_chunk, url, inst, collected, contracts, copies, seed, now))
    for n, inst, collected, contracts in sorted(seeded):
        district.institutions.append(inst)
        district.collected_fen += collected
        district.contracts += contracts
        if n in bad_slots:
            district.bad[bad_slots[n]] = inst
    with db.begin() as s:
        district.tokens = _tokens(s, district)
        _demo_regulator(s, now)
        if family:  # the parent's phone's demo sign-in, at the first institutions (after they were copied)
            behaving = [i for i in district.institutions if i not in district.bad.values()]
            made = seed_demo_family(s, institutions=behaving, now=now)
            district.parent_phone = made.phone
            district.collected_fen += made.collected_fen
            district.contracts += made.contracts
        _demo_desk(s, district.institutions[0], now)
    district.regulator, district.desk = DEMO_REGULATOR, DEMO_DESK
    return district


def run_jobs_once(url: str, *, now: datetime) -> dict[str, str]:
    """Every scheduled job once, recorded, so the demo opens with its risks raised and its dashboard's
    figures kept: each job's outcome."""
    engine = make_engine(url, pool_size=1)
    try:
        return {name: run_recorded(engine, name=name, now=now).outcome for name in JOBS}
    finally:
        engine.dispose()


def _seed_chunk(
    url: str, numbers: list[int], seed: int, bad_slots: dict[int, str], now: datetime
) -> list[tuple[int, UUID, int, int]]:
    engine = make_engine(url, pool_size=1)
    db = make_sessionmaker(engine)
    regulator = Caller(token_id=new_id(), role=Role.REGULATOR, jurisdictions=frozenset({JURISDICTION}))
    done = []
    off_books = None
    for n in numbers:
        with db.begin() as s:
            rng = random.Random(f"{seed}-{n}")
            inst, collected, contracts = _seed_institution(s, rng, regulator, n, bad_slots.get(n, Behaviour.GOOD), now)
            # the scheduler's first pass over what the months left behind, and the bank paying what it instructs
            deem_classes_confirmed(s, now=now, institution_ids=[inst])
            deem_refunds_approved(s, now=now, institution_ids=[inst])
            make_payouts(s, now=now, institution_ids=[inst])
            _bank_executes(s, rng, now, inst)
        done.append((n, inst, collected, contracts))
        off_books = inst if bad_slots.get(n) == Behaviour.OFF_BOOKS else off_books
    with db.begin() as s:
        _bank_delivers_statements(s, [inst for _, inst, _, _ in done], off_books, now)
    engine.dispose()
    return done


def _copy_chunk(
    url: str, template: UUID, collected: int, contracts: int, copies: list[tuple[int, int]], seed: int, now: datetime
) -> list[tuple[int, UUID, int, int]]:
    """Copy the template as each (institution number, copy number) in `copies`."""
    engine = make_engine(url, pool_size=1)
    identities = []
    for n, number in copies:
        rng = random.Random(f"{seed}-{n}")
        rng.randint(100, 120)  # the draw an original makes for its opening day, so identities come out alike
        identities.append(_identity(rng, n, number))
    db = make_sessionmaker(engine)
    with db.begin() as s:
        ids = copy_institution(s, template=template, copies=identities)
    with db.begin() as s:
        _bank_delivers_statements(s, ids, None, now)
    engine.dispose()
    return [(n, inst, collected, contracts) for (n, _), inst in zip(copies, ids, strict=True)]


def _identity(rng: random.Random, n: int, number: int = 0) -> Identity:
    """Institution n's name, credit code and custody account (`number`: a copy's)."""
    name = f"{rng.choice(SURNAMES)} {rng.choice(['Bright', 'Star', 'Future', 'Sun', 'Wisdom'])} Education {n + 1}"
    return Identity(number, name, _credit_code(rng), f"6222{rng.randrange(10**12):012d}")


def _seed_institution(
    s: Session, rng: random.Random, regulator: Caller, n: int, behaviour: str, now: datetime
) -> tuple[UUID, int, int]:
    opened = now - timedelta(days=rng.randint(100, 120))
    identity = _identity(rng, n)
    inst = register_institution(
        s,
        caller=regulator,
        name=identity.name,
        credit_code=identity.credit_code,
        jurisdiction_code=JURISDICTION,
        custody_bank=BANK,
        custody_account=identity.custody_account,
        supervision_model=None,
        today=opened.date(),
    )
    school = Caller(token_id=new_id(), role=Role.INSTITUTION, institution_id=inst.id)
    courses = [_course(s, rng, school, inst.id, opened) for _ in range(rng.randint(1, 3))]
    contracts = 14 if behaviour == Behaviour.COLLECTION_SURGE else rng.randint(7, 12)
    collected = 0
    for k in range(contracts):
        course_id, category, unit = rng.choice(courses)
        recent = behaviour == Behaviour.COLLECTION_SURGE and k >= 3
        # the first contract of every school is a running one: classes go on until today
        signed = now - timedelta(
            days=rng.randint(1, 3) if recent else rng.randint(20, 40) if k == 0 else rng.randint(20, 95)
        )
        collected += _contract(s, rng, school, inst.id, course_id, category, unit, signed, now, behaviour, k)
    if behaviour == Behaviour.ON_HOLD:
        place_hold(s, caller=regulator, institution_id=inst.id, reason="unpaid rent reported by landlord", now=now)
    return inst.id, collected, contracts


def _course(
    s: Session, rng: random.Random, school: Caller, institution_id: UUID, opened: datetime
) -> tuple[UUID, CourseCategory, int]:
    subject = rng.random() < 0.75
    guide = rng.choice([10_000, 12_000, 15_000, 18_000, 20_000])
    unit = guide + rng.randint(0, guide // 10) if subject else rng.choice([6_000, 9_000, 12_000, 16_000])
    category = CourseCategory.SUBJECT if subject else CourseCategory.NON_SUBJECT
    course = create_course(
        s,
        caller=school,
        institution_id=institution_id,
        name=rng.choice(SUBJECTS if subject else ARTS) + f" level {rng.randint(1, 6)}",
        category=category,
        unit_price_fen=unit,
        guide_price_fen=guide if subject else None,
        today=opened.date(),
    )
    return course.id, category, unit


def _contract(
    s: Session,
    rng: random.Random,
    school: Caller,
    institution_id: UUID,
    course_id: UUID,
    category: CourseCategory,
    unit: int,
    signed: datetime,
    now: datetime,
    behaviour: str,
    k: int,
) -> int:
    most = 60 if category is CourseCategory.SUBJECT else min(60, 500_000 // unit)
    hours = rng.randint(max(10, most * 2 // 3), most) // 2 * 2  # classes are 2 hours
    bonus = min(rng.choice([0, 0, 2, 4]), 60 - hours)
    phone = f"13{rng.randrange(10**9):09d}"
    view = sign_contract(
        s,
        caller=school,
        institution_id=institution_id,
        course_id=course_id,
        guardian=GuardianDetails(f"{rng.choice(SURNAMES)} {rng.choice(['Min', 'Jing', 'Wei', 'Fang', 'Lei'])}", phone),
        student_name=f"{rng.choice(SURNAMES)} {rng.choice(['Xiao', 'Tong', 'Yu', 'Hao', 'Xin'])}",
        hours_bought=hours,
        bonus_hours=bonus,
        term_start=signed.date(),
        term_end=signed.date() + timedelta(days=85),
        now=signed,
    )
    contract = view.contract
    paid_at = signed + timedelta(hours=rng.randint(1, 48))
    paid_at = min(paid_at, now - timedelta(minutes=1))
    collect(
        s,
        caller=school,
        institution_id=institution_id,
        contract_id=contract.id,
        amount_fen=contract.price_fen,
        bank_reference=f"DB{paid_at:%Y%m%d}{rng.randrange(10**8):08d}",
        collected_at=paid_at,
        idempotency_key=f"demo-{contract.id}",
        now=now,
    )
    family = Caller(token_id=new_id(), role=Role.PARENT, guardian_phone=phone)
    _classes(s, rng, school, family, contract.id, institution_id, signed, now, behaviour, hours + bonus, k == 0)
    refunding = (behaviour == Behaviour.REFUND_SURGE and k < 4) or rng.random() < 0.04
    if refunding:
        asked = now - timedelta(days=rng.randint(0, 5) if behaviour == Behaviour.REFUND_SURGE else rng.randint(0, 20))
        request = request_refund(
            s, caller=family, institution_id=institution_id, contract_id=contract.id, reason="moving", now=asked
        )
        if behaviour != Behaviour.REFUND_SURGE:  # good institutions answer in time
            decide_refund(
                s,
                caller=school,
                institution_id=institution_id,
                request_id=request.id,
                approve=rng.random() < 0.8,
                reason="classes were given as agreed",
                idempotency_key=f"demo-r-{request.id}",
                now=asked,
            )
    return contract.price_fen


def _classes(
    s: Session,
    rng: random.Random,
    school: Caller,
    family: Caller,
    contract_id: UUID,
    institution_id: UUID,
    signed: datetime,
    now: datetime,
    behaviour: str,
    hours_left: int,
    running: bool,
) -> None:
    last_day = (now - timedelta(days=35)).date() if behaviour == Behaviour.IDLE else now.date()
    day = signed.date() + timedelta(days=rng.randint(1, 6))
    while day <= last_day and day < signed.date() + timedelta(days=85) and hours_left >= 2:
        hours_left -= 2
        given = datetime.combine(day, time(18), UTC)
        record = record_class(
            s,
            caller=school,
            institution_id=institution_id,
            contract_id=contract_id,
            hours=2,
            given_on=day,
            now=max(given, now) if day == now.date() else given,
            idempotency_key=uuid4().hex,
        ).value
        roll = rng.random()
        silent = 0.9 if behaviour == Behaviour.SILENT_PARENTS else 0.3
        answered = min(given + timedelta(days=rng.randint(0, 3)), now)
        if roll < 0.02:
            dispute_class(
                s,
                caller=family,
                institution_id=institution_id,
                class_id=record.id,
                reason="the class was cancelled",
                idempotency_key=f"demo-d-{record.id}",
                now=answered,
            )
            if rng.random() < 0.5:
                resolve_dispute(
                    s,
                    caller=Caller(token_id=new_id(), role=Role.REGULATOR, jurisdictions=frozenset({JURISDICTION})),
                    institution_id=institution_id,
                    class_id=record.id,
                    upheld=rng.random() < 0.5,
                    note="checked the attendance sheet",
                    idempotency_key=f"demo-x-{record.id}",
                    now=answered,
                )
        elif roll > silent and answered <= now:
            confirm_class(
                s,
                caller=family,
                institution_id=institution_id,
                class_id=record.id,
                idempotency_key=f"demo-c-{record.id}",
                now=answered,
            )
        day += timedelta(days=rng.choice([7, 7, 3, 4]))
        if not running and rng.random() < 0.15:  # some contracts are not used up yet
            break


def _bank_executes(s: Session, rng: random.Random, now: datetime, institution_id: UUID) -> None:
    from sqlalchemy import select

    bank = Caller(token_id=new_id(), role=Role.BANK, bank_code=BANK)
    instructed = (
        select(Payout)
        .where(Payout.institution_id == institution_id, Payout.status == PayoutStatus.INSTRUCTED)
        .order_by(Payout.id)
    )
    for payout in s.scalars(instructed).all():
        if rng.random() < 0.97:
            settle_payout(
                s,
                caller=bank,
                institution_id=payout.institution_id,
                payout_id=payout.id,
                executed=True,
                note_text=f"EX{rng.randrange(10**10):010d}",
                idempotency_key=f"demo-p-{payout.id}",
                now=now,
            )


def _bank_delivers_statements(s: Session, institutions: list[UUID], off_books: UUID | None, now: datetime) -> None:
    """The custody bank's statements of the last days for these institutions, as the ledger has them, but
    for one payment the off-books institution (if one of them) took in yesterday and never registered.
    Delivered as each chunk of institutions is seeded: the processes share the work, none waits for the end."""
    bank = Caller(token_id=new_id(), role=Role.BANK, bank_code=BANK)
    yesterday = now.astimezone(BUSINESS_TZ).date() - timedelta(days=1)
    for back in range(STATEMENT_DAYS, 0, -1):
        day = yesterday - timedelta(days=back - 1)
        statements = ledger_statements(s, day=day, institution_ids=institutions)
        if off_books is not None:
            account = s.get_one(Institution, off_books).custody_account
            shift = OFF_BOOKS_FEN if day == yesterday else 0
            statements = [
                replace(
                    st,
                    closing_fen=st.closing_fen + shift,
                    lines=(*st.lines, StatementLine(day, shift, f"OFF{day:%Y%m%d}0001", "Zhou Min", "tuition")),
                )
                if st.account == account and shift
                else st
                for st in statements
            ]
        import_statements(s, caller=bank, data=statements_csv(statements), fmt="csv", now=now)


def _tokens(s: Session, district: DemoDistrict) -> dict[str, str]:
    from sqlalchemy import select

    from escrow.db.records import Contract, Guardian

    first = district.institutions[0]
    phone = s.scalar(
        select(Guardian.phone)
        .join(Contract, Contract.guardian_id == Guardian.id)
        .where(Contract.institution_id == first)
    )
    return {
        "regulator": issue_token(s, role=Role.REGULATOR, jurisdictions=[JURISDICTION], label="demo")[1],
        "institution": issue_token(s, role=Role.INSTITUTION, institution_id=first, label="demo")[1],
        "parent": issue_token(s, role=Role.PARENT, guardian_phone=phone, label="demo")[1],
        "bank": issue_token(s, role=Role.BANK, bank_code=BANK, label="demo")[1],
    }


def _demo_regulator(s: Session, now: datetime) -> None:
    """The console's demo sign-in, made once per database (a district seeded again keeps it)."""
    from sqlalchemy import select

    from escrow.db.records import AppUser

    if s.scalar(select(AppUser.id).where(AppUser.name == DEMO_REGULATOR[0])) is None:
        create_user(s, name=DEMO_REGULATOR[0], role=Role.REGULATOR, password=DEMO_REGULATOR[1],
                    jurisdictions=[JURISDICTION], by=OPERATOR, now=now)  # fmt: skip


def _demo_desk(s: Session, institution_id: UUID, now: datetime) -> None:
    """The desk's demo sign-in, the first institution's accountant, made once per database like the console's."""
    from sqlalchemy import select

    from escrow.db.records import AppUser

    if s.scalar(select(AppUser.id).where(AppUser.name == DEMO_DESK[0])) is None:
        create_user(s, name=DEMO_DESK[0], role=Role.INSTITUTION, password=DEMO_DESK[1], institution_id=institution_id,
                    by=OPERATOR, now=now)  # fmt: skip


def _credit_code(rng: random.Random) -> str:
    first = "52" + JURISDICTION + "".join(rng.choice(CREDIT_CODE_CHARS) for _ in range(9))
    return first + credit_code_check_char(first)
