"""Beijing's day and the official calendar as data: counting working days is pure, and a year with no
official data is refused, never counted Monday to Friday."""

from __future__ import annotations

from datetime import UTC, date, datetime

import chinese_calendar
import pytest

from escrow.errors import CalendarYearMissing
from escrow.rules.calendar import OfficialCalendar, calendar_year_problems, local_date

LIBRARY = OfficialCalendar.of(
    {d.year for d in chinese_calendar.holidays},
    [(d, "holiday") for d in chinese_calendar.holidays] + [(d, "workday") for d in chinese_calendar.workdays],
)


def test_the_business_date_is_beijings_at_half_past_midnight_and_half_past_eleven() -> None:
    # 00:30 Beijing time on 2 December is still 1 December in UTC
    assert local_date(datetime(2026, 12, 1, 16, 30, tzinfo=UTC)) == date(2026, 12, 2)
    # 23:30 Beijing time on 2 December is 15:30 UTC the same day
    assert local_date(datetime(2026, 12, 2, 15, 30, tzinfo=UTC)) == date(2026, 12, 2)
    assert local_date(datetime(2026, 12, 2, 15, 30, tzinfo=UTC), "Asia/Urumqi") == date(2026, 12, 2)
    with pytest.raises(ValueError, match="time zone"):
        local_date(datetime(2026, 12, 2, 15, 30))  # noqa: DTZ001 - a naive instant is the point


def test_working_days_follow_the_official_calendar() -> None:
    # National Day 2026: Oct 1-7 are holidays; Sunday Sep 20 and Saturday Oct 10 are make-up workdays
    assert not LIBRARY.is_working_day(date(2026, 10, 1))
    assert LIBRARY.is_working_day(date(2026, 10, 10))
    assert LIBRARY.is_working_day(date(2026, 9, 20))
    # 3 working days after Wed Sep 30: Thu Oct 8, Fri Oct 9, Sat Oct 10 (make-up day)
    assert LIBRARY.add_working_days(date(2026, 9, 30), 3) == date(2026, 10, 10)
    # across the Spring Festival 2026 (Feb 15-23 off; Sat Feb 14 and Sat Feb 28 worked)
    assert LIBRARY.add_working_days(date(2026, 2, 13), 1) == date(2026, 2, 14)
    assert LIBRARY.add_working_days(date(2026, 2, 14), 1) == date(2026, 2, 24)
    with pytest.raises(ValueError, match="negative"):
        LIBRARY.add_working_days(date(2026, 1, 5), -1)


def test_counting_through_a_year_with_no_official_data_is_refused() -> None:
    # from mid-December 2026 the 15th working day falls in 2027, which the library does not cover
    assert LIBRARY.add_working_days(date(2026, 12, 1), 15) == date(2026, 12, 22)
    with pytest.raises(CalendarYearMissing, match="no official calendar for 2027"):
        LIBRARY.add_working_days(date(2026, 12, 15), 15)
    # once the year is loaded (New Year's Day 2027 a holiday), it is counted by it
    loaded = OfficialCalendar.of(LIBRARY.years | {2027}, [(date(2027, 1, 1), "holiday")])
    assert loaded.add_working_days(date(2026, 12, 30), 2) == date(2027, 1, 4)


def test_a_years_official_days_are_checked_before_loading() -> None:
    assert calendar_year_problems(2027, [(date(2027, 1, 1), "holiday"), (date(2027, 2, 7), "workday")]) == []
    problems = calendar_year_problems(
        2027, [(date(2026, 1, 1), "holiday"), (date(2027, 1, 4), "workday"), (date(2027, 1, 9), "leave")]
    )
    assert problems == [
        "2026-01-01 is not in 2027",
        "2027-01-04 is a weekday: a make-up workday falls on a Saturday or Sunday",
        "2027-01-09: kind must be 'holiday' or 'workday', not 'leave'",
    ]
