"""From 1 December (Beijing time), next year's official calendar missing is a yellow alert; it clears
once a regulator or an operator loads the year."""

from __future__ import annotations

from datetime import UTC, date, datetime

from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from escrow.access.audit import OPERATOR
from escrow.registry.calendar import load_calendar_year
from escrow.supervision.alerts import raise_alerts
from escrow.supervision.risks import calendar_year_missing

LAST_OF_NOVEMBER = datetime(2095, 11, 30, 15, 59, tzinfo=UTC)  # 23:59 on 30 November 2095, Beijing time
FIRST_OF_DECEMBER = datetime(2095, 11, 30, 16, 0, tzinfo=UTC)  # 00:00 on 1 December 2095, Beijing time


def _evaluate(s: Session, now: datetime) -> list[str]:
    findings = calendar_year_missing(s, now, lambda _: NotImplemented)
    raise_alerts(s, findings, rules=["calendar_year_missing"], now=now, run_id=None)
    rows = s.execute(
        text("SELECT severity, subject FROM alert WHERE rule = 'calendar_year_missing' AND cleared_at IS NULL")
    )
    return [f"{severity} {subject}" for severity, subject in rows]


def test_next_years_calendar_missing_is_a_yellow_alert_from_the_first_of_december(db: sessionmaker[Session]) -> None:
    with db.begin() as s:
        load_calendar_year(
            s, caller=OPERATOR, year=2095, days=[(date(2095, 1, 1), "holiday", "")], source="t", now=LAST_OF_NOVEMBER
        )
        assert _evaluate(s, LAST_OF_NOVEMBER) == []
        assert _evaluate(s, FIRST_OF_DECEMBER) == ["yellow 2096"]
        (finding,) = calendar_year_missing(s, FIRST_OF_DECEMBER, lambda _: NotImplemented)
        assert "no official holiday calendar for 2096" in finding.detail
        load_calendar_year(
            s, caller=OPERATOR, year=2096, days=[(date(2096, 1, 1), "holiday", "")], source="t", now=FIRST_OF_DECEMBER
        )
        assert _evaluate(s, FIRST_OF_DECEMBER) == []
        s.rollback()
