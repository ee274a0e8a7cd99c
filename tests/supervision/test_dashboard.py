"""The dashboard's kept figures agree with the books: held at each day's end, flows per day, aging now."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import UUID

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from escrow.db.records import DailyFigure
from escrow.flows.collections import collect
from escrow.registry.contracts import GuardianDetails, sign_contract
from escrow.registry.courses import create_course
from escrow.registry.institutions import register_institution
from escrow.registry.jurisdictions import add_jurisdiction
from escrow.rules.calendar import BUSINESS_TZ, local_day_start
from escrow.rules.policy import CourseCategory
from escrow.supervision import dashboard, reports
from tests.factories import account_number, credit_code, id_number, phone, regulator, school

JURISDICTION = "371399"


def _school_with_two_collections(session: Session, now: datetime) -> UUID:
    add_jurisdiction(session, code=JURISDICTION, name="测试区")
    institution = register_institution(
        session,
        caller=regulator(JURISDICTION),
        name="测试学校",
        credit_code=credit_code(),
        jurisdiction_code=JURISDICTION,
        custody_bank="bank_t",
        custody_account=account_number(),
        supervision_model=None,
        today=now.date() - timedelta(days=10),
    )
    owner = school(institution.id)
    course = create_course(session, caller=owner, institution_id=institution.id, name="英语",
                           category=CourseCategory.SUBJECT, unit_price_fen=10_000, guide_price_fen=10_000,
                           today=now.date())  # fmt: skip
    for days_ago, fen in ((3, 50_000), (0, 25_000)):
        view = sign_contract(
            session,
            caller=owner,
            institution_id=institution.id,
            course_id=course.id,
            guardian=GuardianDetails(name="李华", phone=phone(), id_number=id_number()),
            student_name="李明",
            hours_bought=10,
            bonus_hours=0,
            term_start=now.date(),
            term_end=now.date() + timedelta(days=60),
            now=now - timedelta(days=days_ago),
        )
        collect(session, caller=owner, institution_id=institution.id, contract_id=view.contract.id, amount_fen=fen,
                bank_reference=f"R-{view.contract.id.hex}", collected_at=now - timedelta(days=days_ago),
                idempotency_key=f"k-{view.contract.id}", now=now)  # fmt: skip
    return institution.id


def test_each_days_held_funds_and_collections_are_the_books_as_of_its_end(db: sessionmaker[Session]) -> None:
    now = datetime.now(UTC)
    with db.begin() as session:
        institution_id = _school_with_two_collections(session, now)
    with db.begin() as session:
        dashboard.record_daily_figures(session, now=now)
        dashboard.record_daily_figures(session, now=now)  # a rerun writes the same rows
    with db.begin() as session:
        rows = session.scalars(select(DailyFigure).where(DailyFigure.institution_id == institution_id)).all()
        assert len(rows) == dashboard.TREND_DAYS
        today = now.astimezone(BUSINESS_TZ).date()
        by_day = {r.business_date: r for r in rows}
        caller = regulator(JURISDICTION)
        for day in (today - timedelta(days=4), today - timedelta(days=3), today - timedelta(days=1), today):
            end = min(local_day_start(day + timedelta(days=1)) - timedelta(microseconds=1), now)
            books = reports.held_funds(session, caller=caller, as_of=end, now=now)
            held = next(i.fen["held"] for i in books.institutions if i.institution_id == institution_id)
            assert by_day[day].held_fen == held, day
        assert by_day[today - timedelta(days=3)].collected_fen == 50_000
        assert by_day[today].collected_fen == 25_000 and by_day[today].held_fen == 75_000
        kept = dashboard.kept_aging(session, caller=caller)
        aging = reports.held_funds_aging(session, caller=caller, as_of=None, now=now).total()
        assert kept.fen == {k: aging[k] for k in ("days_0_30", "days_31_90", "days_over_90")}
        assert kept.computed_at == now
