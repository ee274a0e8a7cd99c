"""The official calendar over HTTP: the years a fresh install knows, a regulator loading a year, a class
whose deadline falls in a year with no data refused, and /readyz warning from 1 December."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from api.app import create_app
from api.auth import utc_now
from escrow.access.callers import Role
from escrow.db.database import make_sessionmaker
from tests.api.test_http_contracts import Api, J, school

MID_DECEMBER = datetime(2093, 12, 16, 2, tzinfo=UTC)  # 10:00 on 16 December 2093, Beijing time


class Clock:
    now = MID_DECEMBER


@pytest.fixture
def api(engine: Engine) -> Iterator[Api]:
    app = create_app(engine)
    app.dependency_overrides[utc_now] = lambda: Clock.now
    with TestClient(app) as client:
        yield Api(client, make_sessionmaker(engine))
    Clock.now = MID_DECEMBER


def test_a_fresh_install_knows_the_librarys_years(api: Api) -> None:
    years = api.call("GET", "/calendar/years", api.regulator).json()["items"]
    library = [y for y in years if y["source"].startswith("chinese-calendar")]
    assert [y["year"] for y in library] == list(range(2004, 2027))
    y2026 = next(y for y in library if y["year"] == 2026)
    assert (y2026["holidays"], y2026["workdays"], y2026["loaded_by"]) == (33, 6, "migration")


def test_a_class_whose_deadline_falls_in_a_year_without_data_is_refused(api: Api) -> None:
    stand_in = [{"date": "2093-01-01", "kind": "holiday"}]
    api.call("PUT", "/calendar/years/2093", api.regulator, {"source": "test stand-in", "days": stand_in})
    inst, token = school(api)
    course = api.call(
        "POST",
        f"/institutions/{inst}/courses",
        token,
        {"name": "Art", "category": "non_subject", "unit_price_fen": 100},
    ).json()
    body = {
        "course_id": course["id"],
        "guardian": {"name": "Wu Fei", "phone": "13912345670"},
        "student_name": "Wu Xiao",
        "hours_bought": 10,
        "term_start": "2093-12-01",
        "term_end": "2094-02-28",
    }
    Clock.now = datetime(2093, 12, 1, 2, tzinfo=UTC)  # the parent's window counts from the day a class is recorded
    contract = api.call("POST", f"/institutions/{inst}/contracts", token, body).json()
    path = f"/institutions/{inst}/contracts/{contract['id']}/classes"
    ok = api.call("POST", path, token, {"hours": 1, "given_on": "2093-12-01"}, **{"Idempotency-Key": "c-1"})
    assert ok.status_code == 201, ok.text  # its 15 working days end within 2093
    Clock.now = MID_DECEMBER
    # 15 working days after 16 December 2093 end in January 2094, which has no official data (as 2027 has
    # none yet on 1 December 2026)
    r = api.call("POST", path, token, {"hours": 1, "given_on": "2093-12-16"}, **{"Idempotency-Key": "c-2"})
    assert (r.status_code, r.json()["code"]) == (409, "calendar_year_missing"), r.text
    assert "no official calendar for 2094" in r.json()["detail"]


def test_readyz_warns_from_the_first_of_december_until_the_year_is_loaded(api: Api) -> None:
    def calendar() -> str:
        ready = api.call("GET", "/readyz", None)
        assert ready.status_code == 200  # a missing year is a warning, not a reason to stop serving
        return str(ready.json()["calendar"])

    def load(year: int) -> None:
        days = [{"date": f"{year}-01-01", "kind": "holiday", "name": "New Year's Day"}]
        loaded = api.call("PUT", f"/calendar/years/{year}", api.regulator, {"source": f"notice {year}", "days": days})
        assert loaded.status_code == 200, loaded.text

    Clock.now = datetime(2098, 11, 30, 15, 30, tzinfo=UTC)  # 23:30 on 30 November 2098, Beijing time
    assert calendar().startswith("no official calendar for 2098")
    load(2098)
    assert calendar() == "ok"
    Clock.now = datetime(2098, 11, 30, 16, 30, tzinfo=UTC)  # 00:30 on 1 December 2098, Beijing time
    assert calendar().startswith("no official calendar for 2099")
    load(2099)
    assert calendar() == "ok"
    days = [{"date": "2099-01-01", "kind": "holiday"}]
    school_token = api.token(role=Role.INSTITUTION, institution_id=school(api)[0])
    refused = api.call("PUT", "/calendar/years/2097", school_token, {"source": "x", "days": days})
    assert refused.status_code == 403
    wrong_year = api.call("PUT", "/calendar/years/2097", api.regulator, {"source": "x", "days": days})
    assert (wrong_year.status_code, wrong_year.json()["detail"]) == (422, "2099-01-01 is not in 2097")


def test_a_policy_effective_today_is_beijings_today_at_half_past_midnight(api: Api) -> None:
    Clock.now = datetime(2098, 6, 1, 16, 30, tzinfo=UTC)  # 00:30 on 2 June 2098, Beijing time; UTC says 1 June
    r = api.call(
        "POST", f"/jurisdictions/{J}/policies", api.regulator, {"effective_date": "2098-06-02", "max_hours": 50}
    )
    assert r.status_code == 201, r.text
    in_force = api.call("GET", f"/jurisdictions/{J}/policy", api.regulator).json()
    assert (in_force["effective_date"], in_force["max_hours"]) == ("2098-06-02", 50)
