"""The official calendar kept as data: the library's years seeded by migration 0015, each further year
loaded by a regulator (HTTP) or an operator (`escrow calendar load FILE`) as the State Council
publishes it. Counting lives in escrow/rules/calendar.py; this module hands it the data."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from escrow.access.audit import Actor, note
from escrow.access.callers import Caller, Role, require_role
from escrow.db.records import Jurisdiction, OfficialCalendarDay, OfficialCalendarYear
from escrow.errors import InvalidRequest
from escrow.rules.calendar import CHINA_TIME_ZONE, OfficialCalendar, calendar_year_problems, local_date

_cached: tuple[tuple[Any, ...], OfficialCalendar] | None = None
_lock = threading.Lock()


@dataclass(frozen=True, slots=True)
class CalendarYear:
    year: int
    holidays: int
    workdays: int
    source: str
    loaded_by: str
    loaded_at: datetime


def official_calendar(session: Session) -> OfficialCalendar:
    """The official calendar as the database keeps it (re-read only when a year was loaded since)."""
    global _cached
    stamp = tuple(session.execute(select(func.count(), func.max(OfficialCalendarYear.loaded_at))).one())
    with _lock:
        if _cached is not None and _cached[0] == stamp:
            return _cached[1]
    years = session.scalars(select(OfficialCalendarYear.year)).all()
    days = session.execute(select(OfficialCalendarDay.day, OfficialCalendarDay.kind)).all()
    calendar = OfficialCalendar.of(years, days)
    with _lock:
        _cached = (stamp, calendar)
    return calendar


def jurisdiction_today(session: Session, *, jurisdiction_code: str, now: datetime) -> date:
    """The jurisdiction's business date at `now` (its own time zone; Beijing time for every Chinese region)."""
    time_zone = session.scalar(select(Jurisdiction.time_zone).where(Jurisdiction.code == jurisdiction_code))
    return local_date(now, time_zone or CHINA_TIME_ZONE)


def load_calendar_year(
    session: Session,
    *,
    caller: Caller | Actor,
    year: int,
    days: list[tuple[date, str, str]],
    source: str,
    now: datetime,
) -> CalendarYear:
    """Put a year's official holidays and make-up workdays (day, kind, name) in force, replacing what was
    kept for it: the State Council's notice is the source of truth, and a correction is a new load."""
    if isinstance(caller, Caller):
        require_role(caller, Role.REGULATOR)
    problems = calendar_year_problems(year, [(d, kind) for d, kind, _ in days])
    if not any(kind == "holiday" for _, kind, _ in days):
        problems.append(f"{year} has no holidays: an official calendar names at least New Year's Day")
    if problems:
        raise InvalidRequest("; ".join(problems), problems=problems)
    by = caller.principal if isinstance(caller, Caller) else caller.name
    before = calendar_years(session, only=year)
    session.execute(delete(OfficialCalendarYear).where(OfficialCalendarYear.year == year))
    session.add(OfficialCalendarYear(year=year, source=source, loaded_by=by, loaded_at=now))
    session.flush()
    session.add_all(OfficialCalendarDay(day=d, year=year, kind=kind, name=name) for d, kind, name in days)
    session.flush()
    (loaded,) = calendar_years(session, only=year)
    note(
        session,
        caller,
        "calendar.loaded",
        institution_id=None,
        object_type="calendar_year",
        object_id=year,
        at=now,
        before={"holidays": before[0].holidays, "workdays": before[0].workdays} if before else None,
        after={"holidays": loaded.holidays, "workdays": loaded.workdays, "source": source},
    )
    return loaded


def calendar_years(session: Session, *, only: int | None = None) -> list[CalendarYear]:
    """The years with official data, oldest first, with how many holidays and make-up workdays each has."""
    counted = (
        select(
            OfficialCalendarDay.year,
            func.count().filter(OfficialCalendarDay.kind == "holiday").label("holidays"),
            func.count().filter(OfficialCalendarDay.kind == "workday").label("workdays"),
        )
        .group_by(OfficialCalendarDay.year)
        .subquery()
    )
    query = (
        select(OfficialCalendarYear, counted.c.holidays, counted.c.workdays)
        .outerjoin(counted, counted.c.year == OfficialCalendarYear.year)
        .order_by(OfficialCalendarYear.year)
    )
    if only is not None:
        query = query.where(OfficialCalendarYear.year == only)
    return [
        CalendarYear(row.year, int(h or 0), int(w or 0), row.source, row.loaded_by, row.loaded_at)
        for row, h, w in session.execute(query)
    ]


def parse_calendar_file(text: str) -> tuple[int, list[tuple[date, str, str]]]:
    """A year's days from a CSV of `date,kind,name` lines (a header line is allowed): the operator's file."""
    days: list[tuple[date, str, str]] = []
    for number, line in enumerate(text.splitlines(), 1):
        fields = [f.strip() for f in line.split(",", 2)]
        if not line.strip() or fields[0] == "date":
            continue
        try:
            day = date.fromisoformat(fields[0])
        except ValueError as exc:
            raise InvalidRequest(f"line {number}: {fields[0]!r} is not a date (YYYY-MM-DD)") from exc
        days.append((day, fields[1] if len(fields) > 1 else "", fields[2] if len(fields) > 2 else ""))
    years = {d.year for d, _, _ in days}
    if len(years) != 1:
        raise InvalidRequest(f"a calendar file holds one year's days; this one has {sorted(years) or 'none'}")
    return years.pop(), days


def missing_calendar_year(session: Session, *, now: datetime) -> int | None:
    """The year whose official data is missing and soon needed: this year, or from 1 December next year."""
    today = local_date(now)
    needed = [today.year] + ([today.year + 1] if today.month == 12 else [])
    known = set(session.scalars(select(OfficialCalendarYear.year).where(OfficialCalendarYear.year.in_(needed))))
    return next((y for y in needed if y not in known), None)
