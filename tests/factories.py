"""Makers of valid test data: credit codes with their check digit, institutions, callers, tokens."""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime
from uuid import UUID

from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from escrow.access.callers import Caller, Role
from escrow.db.database import make_engine, upgrade_to_head
from escrow.ids import new_id
from escrow.registry.jurisdictions import add_jurisdiction
from escrow.rules.identity import CREDIT_CODE_CHARS, ID_CHECKS, ID_WEIGHTS, credit_code_check_char

JURISDICTION = "310104"
# not the global generator: Hypothesis seeds that one, and codes must differ on every call
rng = random.SystemRandom()


def credit_code() -> str:
    first = "91" + "310104" + "".join(rng.choice(CREDIT_CODE_CHARS) for _ in range(9))
    return first + credit_code_check_char(first)


def id_number() -> str:
    first = "310104" + "2015" + f"{rng.randint(1, 12):02d}" + f"{rng.randint(1, 28):02d}" + f"{rng.randint(0, 999):03d}"
    return first + ID_CHECKS[sum(int(d) * w for d, w in zip(first, ID_WEIGHTS, strict=True)) % 11]


def account_number() -> str:
    """A custody account number no other test institution has."""
    return "6222" + "".join(rng.choice("0123456789") for _ in range(12))


def phone() -> str:
    return "13" + "".join(rng.choice("0123456789") for _ in range(9))


def bare_institution(session: Session, jurisdiction: str = JURISDICTION) -> UUID:
    """An institution row with no accounts: books for ledger tests to open as they need."""
    add_jurisdiction(session, code=jurisdiction, name="Xuhui District")
    institution_id = new_id()
    session.execute(
        text(
            "INSERT INTO institution (id, name, credit_code, jurisdiction_code, supervision_model, custody_bank,"
            " custody_account) VALUES (:id, 'Test school', :code, :j, 'custody', 'test_bank', :account)"
        ),
        {"id": institution_id, "code": credit_code(), "j": jurisdiction, "account": account_number()},
    )
    return institution_id


def stand_in_calendar(session: Session, now: datetime) -> None:
    """Tests that run on the wall clock count deadlines into next year: where its official calendar is not
    loaded yet, a stand-in (New Year's Day only, marked as such) is, so they do not fail each December."""
    from escrow.access.audit import OPERATOR
    from escrow.registry.calendar import calendar_years, load_calendar_year
    from escrow.rules.calendar import local_date

    known = {y.year for y in calendar_years(session)}
    for year in {local_date(now).year, local_date(now).year + 1} - known:
        days = [(date(year, 1, 1), "holiday", "")]
        load_calendar_year(session, caller=OPERATOR, year=year, days=days, source="test stand-in", now=now)


def regulator(*jurisdictions: str) -> Caller:
    return Caller(token_id=new_id(), role=Role.REGULATOR, jurisdictions=frozenset(jurisdictions or {JURISDICTION}))


def school(institution_id: UUID) -> Caller:
    return Caller(token_id=new_id(), role=Role.INSTITUTION, institution_id=institution_id)


def parent(session: Session, guardian_id: UUID) -> Caller:
    """The parent signed in with the phone of this guardian record."""
    phone = session.scalar(text("SELECT phone FROM guardian WHERE id = :g"), {"g": guardian_id})
    return Caller(token_id=new_id(), role=Role.PARENT, guardian_phone=phone)


def migration_head() -> str:
    from alembic.script import ScriptDirectory

    from escrow.db.database import PROJECT_ROOT, alembic_config

    head = ScriptDirectory.from_config(alembic_config("postgresql://unused")).get_current_head()
    assert head is not None and PROJECT_ROOT.exists()
    return head


@contextmanager
def fresh_database(database_url: str, suffix: str) -> Iterator[Engine]:
    """A migrated database of its own next to the test database, dropped afterwards: for jobs and
    planted faults that look at everything in the books."""
    server = make_url(database_url)
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    name = f"{server.database}_{suffix}"
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    engine = make_engine(server.set(database=name).render_as_string(hide_password=False), pool_size=4)
    try:
        upgrade_to_head(engine)
        yield engine
    finally:
        engine.dispose()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
