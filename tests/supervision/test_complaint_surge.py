"""complaint_surge fires at its thresholds and not one unit below, like its siblings in test_risk_rules.py:
complaints from 3 families in 30 days, 3 times the average of the 3 windows of 30 days before."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime, timedelta

import pytest
from sqlalchemy.orm import Session, sessionmaker

from escrow.db.database import make_sessionmaker
from escrow.families.complaints import submit_complaint
from escrow.registry.jurisdictions import add_jurisdiction
from escrow.rules.families import ComplaintCategory
from tests.factories import fresh_database
from tests.supervision.test_risk_rules import NOW, THRESHOLDS, J, School, build, contract, family, found, school


@pytest.fixture(scope="module")
def db(database_url: str) -> Iterator[sessionmaker[Session]]:
    with fresh_database(database_url, "complaints") as engine:
        with make_sessionmaker(engine).begin() as s:
            add_jurisdiction(s, code=J, name="Xuhui District")
        yield make_sessionmaker(engine)


def complaining(when: list[datetime], *, families: int | None = None) -> Callable[[Session], School]:
    """A school whose families complain at these instants (all from `families` families, if fewer)."""

    def make(s: Session) -> School:
        at = school(s)
        callers = [
            family(s, at, contract(s, at, signed=NOW - timedelta(days=150))) for _ in range(families or len(when))
        ]
        for n, instant in enumerate(when):
            submit_complaint(s, caller=callers[n % len(callers)], institution_id=at.id,
                             category=ComplaintCategory.TEACHING, body="classes cancelled again", contract_id=None,
                             now=instant)  # fmt: skip
        return at

    return make


def test_the_thresholds_are_the_national_defaults() -> None:
    assert (THRESHOLDS["complaint_surge_days"], THRESHOLDS["complaint_surge_families"]) == (30, 3)
    assert THRESHOLDS["complaint_surge_multiple"] == 3


def test_three_families_in_a_month_against_none_before(db: sessionmaker[Session]) -> None:
    recent = [NOW - timedelta(days=d, hours=1) for d in (1, 10, 29)]
    surge = build(db, complaining(recent))
    two_families = build(db, complaining(recent, families=2))
    two_complaints = build(db, complaining(recent[:2]))
    older = build(db, complaining([NOW - timedelta(days=30, minutes=1), *recent[:2]]))
    hits = found(db, "complaint_surge")
    assert surge.id in hits
    assert two_families.id not in hits and two_complaints.id not in hits and older.id not in hits
    assert hits[surge.id][0].evidence == {"complaints": 3, "families": 3, "days": 30, "baseline": 1}
    assert hits[surge.id][0].severity.value == "yellow"


def test_three_times_the_months_before(db: sessionmaker[Session]) -> None:
    """6 complaints in the 3 months before (2 a month): 6 this month is 3 times that, 5 is not."""
    before = [NOW - timedelta(days=35 + 10 * k) for k in range(6)]
    recent = [NOW - timedelta(days=k, hours=2) for k in range(6)]
    surge = build(db, complaining(before + recent))
    calm = build(db, complaining(before + recent[:5]))
    hits = found(db, "complaint_surge")
    assert surge.id in hits and calm.id not in hits
