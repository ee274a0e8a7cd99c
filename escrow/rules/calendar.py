"""Business days: the jurisdiction's local date, and working days on the official calendar (pure).

The official calendar (holidays and make-up workdays per year, as the State Council publishes them)
is data handed in by the caller; escrow/registry/calendar.py keeps it in the database. A date in a
year with no official data is never counted: counting through it is refused.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from functools import cache
from zoneinfo import ZoneInfo

from escrow.errors import CalendarYearMissing

CHINA_TIME_ZONE = "Asia/Shanghai"  # every Chinese region keeps Beijing time
BUSINESS_TZ = ZoneInfo(CHINA_TIME_ZONE)  # bank days and deadlines such as T+1 09:00 are local


@cache
def zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def local_date(instant: datetime, time_zone: str = CHINA_TIME_ZONE) -> date:
    """The business date of an instant in a jurisdiction's time zone (Beijing time by default)."""
    if instant.tzinfo is None:
        raise ValueError("an instant must carry its time zone")
    return instant.astimezone(zone(time_zone)).date()


def local_day_start(day: date) -> datetime:
    """Midnight at the start of `day`, Beijing time."""
    return datetime.combine(day, time(), BUSINESS_TZ)


@dataclass(frozen=True, slots=True)
class OfficialCalendar:
    """The years with official data, and in them the days that differ from Monday-Friday working."""

    years: frozenset[int]
    holidays: frozenset[date]
    workdays: frozenset[date]

    @classmethod
    def of(cls, years: Iterable[int], days: Iterable[tuple[date, str]]) -> OfficialCalendar:
        """From (day, 'holiday' | 'workday') pairs."""
        days = list(days)
        return cls(
            frozenset(years),
            frozenset(d for d, kind in days if kind == "holiday"),
            frozenset(d for d, kind in days if kind == "workday"),
        )

    def is_working_day(self, day: date) -> bool:
        if day.year not in self.years:
            raise CalendarYearMissing(
                f"there is no official calendar for {day.year} yet: working days cannot be counted through "
                f"{day.isoformat()}; load the State Council's holidays and make-up workdays for {day.year}",
                year=day.year,
            )
        return day in self.workdays or (day.weekday() < 5 and day not in self.holidays)

    def add_working_days(self, start: date, days: int) -> date:
        """The working day that is `days` working days after `start` (start itself not counted)."""
        if days < 0:
            raise ValueError("days must not be negative")
        current, remaining = start, days
        while remaining:
            current += timedelta(days=1)
            if self.is_working_day(current):
                remaining -= 1
        return current


def calendar_year_problems(year: int, days: Iterable[tuple[date, str]]) -> list[str]:
    """Every reason a year's official days cannot be loaded as they are."""
    problems, seen = [], set()
    for day, kind in days:
        if day.year != year:
            problems.append(f"{day.isoformat()} is not in {year}")
        if kind not in ("holiday", "workday"):
            problems.append(f"{day.isoformat()}: kind must be 'holiday' or 'workday', not {kind!r}")
        elif kind == "workday" and day.weekday() < 5:
            problems.append(f"{day.isoformat()} is a weekday: a make-up workday falls on a Saturday or Sunday")
        if day in seen:
            problems.append(f"{day.isoformat()} is given twice")
        seen.add(day)
    if not 2000 <= year <= 2100:
        problems.append(f"{year} is not a year the calendar keeps (2000 to 2100)")
    return problems
