"""Working days on the Chinese official calendar (holidays and make-up workdays), from chinese_calendar.

Years the library does not cover yet fall back to Monday-Friday, logged once per year.
"""

from __future__ import annotations

import logging
from datetime import date, datetime, time, timedelta
from functools import cache, lru_cache
from zoneinfo import ZoneInfo

import chinese_calendar

log = logging.getLogger(__name__)

BUSINESS_TZ = ZoneInfo("Asia/Shanghai")  # bank days and deadlines such as T+1 09:00 are local


def local_day_start(day: date) -> datetime:
    """Midnight at the start of `day`, Beijing time."""
    return datetime.combine(day, time(), BUSINESS_TZ)


@lru_cache(maxsize=4096)  # asked for every class recorded and every deadline; a day's answer never changes
def is_working_day(day: date) -> bool:
    try:
        return bool(chinese_calendar.is_workday(day))
    except NotImplementedError:
        _warn_uncovered(day.year)
        return day.weekday() < 5


@cache
def _warn_uncovered(year: int) -> None:
    log.warning("no official holiday data for %s yet: counting Monday to Friday as working days", year)


@lru_cache(maxsize=4096)
def add_working_days(start: date, days: int) -> date:
    """The working day that is `days` working days after `start` (start itself not counted)."""
    if days < 0:
        raise ValueError("days must not be negative")
    current = start
    remaining = days
    while remaining:
        current += timedelta(days=1)
        if is_working_day(current):
            remaining -= 1
    return current
