"""`escrow demo` leaves a family a newcomer can sign in as on the parent's phone: the printed number, its
code in the development outbox, two contracts and classes waiting for its word; the jobs tell it so."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from fastapi.testclient import TestClient
from sqlalchemy import text

from api.app import create_app
from api.web.throttle import reset_sign_in_attempts
from escrow.demo.district import run_jobs_once, seed_demo
from escrow.demo.family import DEMO_PARENT_PHONE
from tests.factories import fresh_database
from tests.web.conftest import csrf_of


def test_the_demo_family_signs_in_and_finds_classes_waiting(database_url: str) -> None:
    with fresh_database(database_url, "demo_family") as engine:
        url = engine.url.render_as_string(hide_password=False)
        district = seed_demo(url, institutions=3, seed=5, workers=1)
        assert district.parent_phone == DEMO_PARENT_PHONE
        assert run_jobs_once(url, now=datetime.now(UTC))["remind_parents"] == "ok"
        with engine.connect() as conn:
            told = conn.scalar(
                text("SELECT count(*) FROM outbox_message WHERE recipient = :p AND kind = 'class_waiting'"),
                {"p": DEMO_PARENT_PHONE},
            )
        assert told == 3  # two classes at the first institution, one at the second
        reset_sign_in_attempts()
        with TestClient(create_app(engine), follow_redirects=False) as client:
            form = client.get("/m/sign-in")
            page = client.post("/m/sign-in/code", data={"phone": DEMO_PARENT_PHONE, "csrf_token": csrf_of(form.text)})
            outbox = client.get(f"/m/dev/outbox?phone={DEMO_PARENT_PHONE}").text
            code = re.search(r"登录验证码为 (\d{6})", outbox)
            assert code, outbox[:500]
            signed = client.post(
                "/m/sign-in", data={"phone": DEMO_PARENT_PHONE, "code": code.group(1), "csrf_token": csrf_of(page.text)}
            )
            assert signed.status_code == 303
            home = client.get("/m/home").text
            assert home.count("data-contract=") == 2 and 'data-waiting="3"' in home
            complaints = client.get("/m/complaints").text
            assert "已答复" in complaints
