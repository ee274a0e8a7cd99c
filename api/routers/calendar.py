"""The official calendar: the years the service counts working days through, and a regulator's load of
a year's holidays and make-up workdays as the State Council publishes them."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Path
from pydantic import Field, StringConstraints

from api.auth import Now
from api.deps import ApiRoute, CallerDep, SessionDep
from api.routers import documented
from api.schemas import Day, PageOf, Request, Response, example
from escrow.access.callers import Role, require_role
from escrow.registry import calendar

router = APIRouter(prefix="/calendar", tags=["calendar"], route_class=ApiRoute)
Year = Annotated[int, Path(ge=2000, le=2100)]


class CalendarDayIn(Request):
    date: Day
    kind: Literal["holiday", "workday"]
    name: Annotated[str, StringConstraints(strip_whitespace=True, max_length=100)] = ""


class CalendarYearIn(Request):
    model_config = example(
        source="国务院办公厅关于2027年部分节假日安排的通知",
        days=[{"date": "2027-01-01", "kind": "holiday", "name": "元旦"}],
    )

    source: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)] = Field(
        description="where the days come from, e.g. the State Council notice's number"
    )
    days: list[CalendarDayIn] = Field(min_length=1, max_length=366)


class CalendarYearOut(Response):
    year: int
    holidays: int
    workdays: int
    source: str
    loaded_by: str
    loaded_at: datetime


@router.get("/years", operation_id="list_calendar_years", responses=documented(403))
def list_calendar_years(session: SessionDep, caller: CallerDep) -> PageOf[CalendarYearOut]:
    """The years with official holiday data; working days are never counted through any other year."""
    require_role(caller, Role.REGULATOR, Role.INSTITUTION, Role.PARENT, Role.BANK)
    years = calendar.calendar_years(session)
    return PageOf(items=[CalendarYearOut.model_validate(y) for y in years], next_cursor=None)


@router.put("/years/{year}", operation_id="load_calendar_year", responses=documented(403))
def load_calendar_year(
    year: Year, body: CalendarYearIn, session: SessionDep, caller: CallerDep, now: Now
) -> CalendarYearOut:
    """Put a year's official holidays and make-up workdays in force (regulator), replacing what was kept."""
    days: list[tuple[date, str, str]] = [(d.date, d.kind, d.name) for d in body.days]
    loaded = calendar.load_calendar_year(session, caller=caller, year=year, days=days, source=body.source, now=now)
    return CalendarYearOut.model_validate(loaded)
