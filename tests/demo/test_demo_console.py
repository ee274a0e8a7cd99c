"""`escrow demo` runs every job once after seeding: the console opens with risks raised and figures kept."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import text
from sqlalchemy.orm import sessionmaker

from escrow.access.users import sign_in
from escrow.demo.district import DEMO_DESK, DEMO_REGULATOR, run_jobs_once, seed_demo
from escrow.supervision.jobs import JOBS
from tests.factories import fresh_database


def test_the_demo_opens_with_its_risks_raised_and_its_figures_kept(database_url: str) -> None:
    with fresh_database(database_url, "demo_console") as engine:
        url = engine.url.render_as_string(hide_password=False)
        district = seed_demo(url, institutions=12, seed=3, workers=1)
        assert district.regulator == DEMO_REGULATOR
        assert run_jobs_once(url, now=datetime.now(UTC)) == dict.fromkeys(JOBS, "ok")
        with engine.connect() as conn:
            assert conn.scalar(text("SELECT count(*) FROM alert WHERE cleared_at IS NULL")) > 0
            assert conn.scalar(text("SELECT count(DISTINCT institution_id) FROM daily_figure")) == 12
            assert conn.scalar(text("SELECT count(*) FROM app_user WHERE name = :n"), {"n": DEMO_REGULATOR[0]}) == 1
        assert district.desk == DEMO_DESK  # the desk's demo sign-in: the first institution's accountant
        with sessionmaker(engine).begin() as session:
            _, staff = sign_in(session, name=DEMO_DESK[0], password=DEMO_DESK[1], now=datetime.now(UTC))
        assert staff.caller.role == "institution" and staff.caller.institution_id == district.institutions[0]
