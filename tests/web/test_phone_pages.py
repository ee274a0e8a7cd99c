"""The parent's phone over HTTP: signing in by code (refusals beside the field, tries counted, per-client
limits, the same answer for any number), the session cookie, CSRF, scope (another family's pages are not
found), the figures equal to the JSON API's, and the console's complaint pages for who may see them."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text
from sqlalchemy.orm import sessionmaker

from api.app import create_app
from api.web.phone.face import PhoneRoute
from api.web.throttle import reset_sign_in_attempts
from escrow.access.callers import Role
from escrow.access.messages import DevOutbox
from escrow.access.parents import request_code, sign_in_with_code
from escrow.access.tokens import issue_token
from escrow.registry.contracts import GuardianDetails, sign_contract
from escrow.rules.calendar import local_date
from escrow.rules.identity import mask_phone
from escrow.settings import Settings
from tests.factories import phone, school
from tests.web.conftest import csrf_of, routes_of, sign_in
from tests.web.phone_district import NEIGHBOUR, PARENT, PEOPLE, PhoneDistrict


def last_code(engine: Engine, to: str) -> str:
    with engine.connect() as conn:
        body = conn.scalar(
            text("SELECT body FROM outbox_message WHERE recipient = :p AND kind = 'sign_in_code'"
                 " ORDER BY created_at DESC LIMIT 1"), {"p": to},
        )  # fmt: skip
    found = re.search(r"\d{6}", body or "")
    assert found, body
    return found.group(0)


def ask_code(client: TestClient, to: str) -> Any:
    page = client.get("/m/sign-in")
    return client.post("/m/sign-in/code", data={"phone": to, "csrf_token": csrf_of(page.text), "next": ""})


def send_code(client: TestClient, page: Any, to: str, code: str) -> Any:
    return client.post("/m/sign-in", data={"phone": to, "code": code, "csrf_token": csrf_of(page.text), "next": ""})


def signed_in(client: TestClient, engine: Engine, to: str) -> Any:
    page = ask_code(client, to)
    assert page.status_code == 200, page.text[:300]
    answer = send_code(client, page, to, last_code(engine, to))
    assert answer.status_code == 303 and answer.headers["location"] == "/m/home"
    return answer


@pytest.fixture(scope="module")
def parent_client(phone_engine: Engine, phone_district: PhoneDistrict) -> Any:
    """王芳 signed in through the use cases, an hour ahead: a phone is sent one code a minute, and the browser
    tests sign her in now."""
    ahead = datetime.now(UTC) + timedelta(hours=1)
    with sessionmaker(phone_engine).begin() as session:
        request_code(session, phone=PARENT, sender=DevOutbox(), now=ahead)
    with sessionmaker(phone_engine).begin() as session:
        checked = sign_in_with_code(session, phone=PARENT, code=last_code(phone_engine, PARENT), now=ahead)
    assert checked.secret
    with TestClient(create_app(phone_engine), follow_redirects=False) as client:
        client.cookies.set("escrow_parent", checked.secret)
        yield client


def test_signing_in_sets_an_httponly_cookie_of_the_parents_own(phone_client: TestClient, phone_engine: Engine) -> None:
    answer = signed_in(phone_client, phone_engine, phone())
    cookie = next(c for c in answer.headers.get_list("set-cookie") if c.startswith("escrow_parent="))
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "escrow_session" not in phone_client.cookies
    assert phone_client.get("/console/dashboard").status_code == 303  # a parent is no one in the console


def test_a_wrong_code_is_told_beside_the_field_with_the_tries_left(
    phone_client: TestClient, phone_engine: Engine
) -> None:
    to = phone()
    page = ask_code(phone_client, to)
    right = last_code(phone_engine, to)
    wrong = send_code(phone_client, page, to, f"{(int(right) + 1) % 10**6:06d}")
    assert wrong.status_code == 401 and 'id="code-error"' in wrong.text and "验证码不正确" in wrong.text
    assert "还可尝试 4 次" in wrong.text and "escrow_parent" not in phone_client.cookies
    last = wrong
    for _ in range(4):
        last = send_code(phone_client, last, to, "000000" if right != "000000" else "111111")
    assert last.status_code == 410 and "错误次数过多" in last.text
    assert send_code(phone_client, last, to, right).status_code == 410  # the code is spent


def test_any_number_is_answered_alike(
    phone_client: TestClient, phone_engine: Engine, phone_district: PhoneDistrict
) -> None:
    """A guardian's number and a stranger's get the same page and message: nothing tells who has contracts."""
    guardian = _new_guardian(phone_engine, phone_district)
    pages = []
    for to in (guardian, phone()):
        answer = ask_code(phone_client, to)
        with phone_engine.connect() as conn:
            sent = conn.scalar(text("SELECT body FROM outbox_message WHERE recipient = :p"), {"p": to})
        pages.append((answer.status_code, _same(answer.text, to), re.sub(r"\d{6}", "CODE", sent)))
    assert pages[0] == pages[1]


def _new_guardian(engine: Engine, district: PhoneDistrict) -> str:
    """A family who signed a contract at A a moment ago (and never asked for a code)."""
    number, a = phone(), district.institutions["A"]
    with sessionmaker(engine).begin() as session:
        course = session.scalar(text("SELECT id FROM course WHERE institution_id = :a LIMIT 1"), {"a": a})
        sign_contract(session, caller=school(a), institution_id=a, course_id=course,
                      guardian=GuardianDetails(name="赵敏", phone=number), student_name="赵小月", hours_bought=10,
                      bonus_hours=0, term_start=local_date(datetime.now(UTC)),
                      term_end=local_date(datetime.now(UTC)) + timedelta(days=30), now=datetime.now(UTC))  # fmt: skip
    return number


def _same(html: str, to: str) -> str:
    html = html.replace(to, "PHONE").replace(mask_phone(to), "MASKED")
    return re.sub(r'name="csrf_token" value="[^"]+"', "CSRF", html)


def test_a_malformed_number_is_refused_beside_the_field(phone_client: TestClient, phone_engine: Engine) -> None:
    answer = ask_code(phone_client, "1380013")
    assert answer.status_code == 422 and 'id="phone-error"' in answer.text and "11 位手机号码" in answer.text
    with phone_engine.connect() as conn:
        assert conn.scalar(text("SELECT count(*) FROM sign_in_code WHERE phone = '1380013'")) == 0


def test_code_requests_are_limited_per_client(phone_client: TestClient) -> None:
    reset_sign_in_attempts()
    statuses = [ask_code(phone_client, phone()).status_code for _ in range(21)]
    assert statuses[:20] == [200] * 20 and statuses[20] == 429
    reset_sign_in_attempts()


def test_a_code_form_without_its_token_is_refused(phone_client: TestClient, phone_engine: Engine) -> None:
    to = phone()
    answer = phone_client.post("/m/sign-in/code", data={"phone": to, "csrf_token": "forged"})
    assert answer.status_code == 403
    with phone_engine.connect() as conn:
        assert conn.scalar(text("SELECT count(*) FROM outbox_message WHERE recipient = :p"), {"p": to}) == 0


def test_signed_out_pages_send_to_the_sign_in_page(phone_client: TestClient, phone_district: PhoneDistrict) -> None:
    answer = phone_client.get(f"/m/contracts/{phone_district.institutions['A']}/{phone_district.contracts['maths']}")
    assert answer.status_code == 303 and answer.headers["location"].startswith("/m/sign-in?next=/m/contracts/")


def _pages(district: PhoneDistrict) -> dict[str, str]:
    a, maths, waiting = district.institutions["A"], district.contracts["maths"], district.classes["maths"][-1]
    return {
        "/m": "/m",
        "/m/home": "/m/home",
        "/m/contracts/{institution_id}/{contract_id}": f"/m/contracts/{a}/{maths}",
        "/m/contracts/{institution_id}/{contract_id}/terms": f"/m/contracts/{a}/{maths}/terms",
        "/m/contracts/{institution_id}/{contract_id}/refund": f"/m/contracts/{a}/{maths}/refund",
        "/m/classes": "/m/classes",
        "/m/classes/{institution_id}/{class_id}": f"/m/classes/{a}/{waiting}",
        "/m/classes/{institution_id}/{class_id}/dispute": f"/m/classes/{a}/{waiting}/dispute",
        "/m/refunds": "/m/refunds",
        "/m/complaints": "/m/complaints",
        "/m/complaints/new": "/m/complaints/new",
    }


def test_every_phone_page_is_the_parents_and_no_one_elses(
    parent_client: TestClient, phone_engine: Engine, phone_district: PhoneDistrict
) -> None:
    paths = {r.path for r in routes_of(create_app(phone_engine)) if isinstance(r, PhoneRoute) and "GET" in r.methods}
    open_to_all = {"/m/sign-in", "/m/language/{language}", "/m/dev/outbox"}
    others = {"/m/refunds/{institution_id}/{request_id}", "/m/complaints/{institution_id}/{complaint_id}"}
    assert paths - open_to_all - others == set(_pages(phone_district)), "a phone page this test does not name"
    for path in _pages(phone_district).values():
        assert parent_client.get(path).status_code in (200, 303), path
    a = phone_district.institutions["A"]
    theirs = (
        f"/m/contracts/{a}/{phone_district.contracts['neighbour']}",
        f"/m/contracts/{a}/{phone_district.contracts['neighbour']}/terms",
        f"/m/contracts/{a}/{phone_district.contracts['neighbour']}/refund",
        f"/m/classes/{a}/{phone_district.classes['neighbour'][0]}",
        f"/m/complaints/{a}/{phone_district.complaint}",
        f"/m/refunds/{a}/{phone_district.complaint}",
    )
    for path in theirs:
        answer = parent_client.get(path)
        assert answer.status_code == 404 and "页面不存在" in answer.text, path
    posted = parent_client.post(
        f"/m/complaints/{a}/{phone_district.complaint}/messages",
        data={"body": "x", "csrf_token": csrf_of(parent_client.get("/m/home").text)},
    )
    assert posted.status_code == 404


def test_a_post_without_the_sessions_token_changes_nothing(
    parent_client: TestClient, phone_engine: Engine, phone_district: PhoneDistrict
) -> None:
    a, waiting = phone_district.institutions["A"], phone_district.classes["maths"][-1]
    for token in ("", "forged"):
        answer = parent_client.post(f"/m/classes/{a}/{waiting}/confirmation", data={"csrf_token": token})
        assert answer.status_code == 403
    with phone_engine.connect() as conn:
        assert conn.scalar(text("SELECT status FROM class_record WHERE id = :c"), {"c": waiting}) == "pending"


def test_bad_stars_are_told_beside_the_field_and_confirm_nothing(
    parent_client: TestClient, phone_engine: Engine, phone_district: PhoneDistrict
) -> None:
    a, waiting = phone_district.institutions["A"], phone_district.classes["maths"][-1]
    page = parent_client.get(f"/m/classes/{a}/{waiting}")
    answer = parent_client.post(
        f"/m/classes/{a}/{waiting}/confirmation",
        data={"stars": "", "comment": "a comment without stars", "csrf_token": csrf_of(page.text)},
    )
    assert answer.status_code == 422 and 'id="stars-error"' in answer.text
    with phone_engine.connect() as conn:
        assert conn.scalar(text("SELECT status FROM class_record WHERE id = :c"), {"c": waiting}) == "pending"


def test_the_pages_figures_are_the_apis(
    parent_client: TestClient, phone_engine: Engine, phone_district: PhoneDistrict
) -> None:
    with sessionmaker(phone_engine).begin() as session:
        _, token = issue_token(session, role=Role.PARENT, guardian_phone=PARENT, label="figures")
    bearer = {"Authorization": f"Bearer {token}"}
    for key in ("maths", "piano"):
        at = phone_district.institutions["A" if key == "maths" else "B"]
        contract = f"/institutions/{at}/contracts/{phone_district.contracts[key]}"
        shown = _figures(parent_client.get(f"/m/contracts/{at}/{phone_district.contracts[key]}"))
        api = parent_client.get(contract, headers=bearer).json()
        balance = parent_client.get(f"{contract}/balance", headers=bearer).json()
        assert (shown["held"], shown["paid"]) == (balance["held_fen"], api["collected_fen"])
        assert shown["paid"] == shown["held"] + shown["released"] + shown["refund_owed"] + shown["refunded"]
        preview = parent_client.get(f"{contract}/refund-preview", headers=bearer).json()
        page = _figures(parent_client.get(f"/m/contracts/{at}/{phone_district.contracts[key]}/refund"))
        assert (page["held"], page["refundable"], page["reserved"]) == (
            preview["held_fen"], preview["refundable_fen"], preview["reserved_fen"],
        )  # fmt: skip


def _figures(page: Any) -> dict[str, int]:
    assert page.status_code == 200, page.text[:200]
    return {name: int(value) for name, value in re.findall(r'data-fen="(\w+)" data-value="(-?\d+)"', page.text)}


def test_the_dev_outbox_is_a_page_only_in_development(phone_engine: Engine, phone_district: PhoneDistrict) -> None:
    gateway = Settings(message_sender="sms_gateway", sms_gateway_url="http://127.0.0.1:9/sms")
    with TestClient(create_app(phone_engine, gateway), follow_redirects=False) as client:
        assert client.get("/m/dev/outbox").status_code == 404
    with TestClient(create_app(phone_engine), follow_redirects=False) as client:
        assert "开发发件箱" in client.get("/m/dev/outbox").text


@pytest.mark.parametrize(("who", "status"), [(None, 303), (PEOPLE["zhang"], 200), (PEOPLE["wang"], 404),
                                             (PEOPLE["staff"], 404)])  # fmt: skip
def test_the_consoles_complaint_pages_are_the_regulators_of_the_jurisdiction(
    phone_engine: Engine, phone_district: PhoneDistrict, who: str | None, status: int
) -> None:
    reset_sign_in_attempts()
    a = phone_district.institutions["A"]
    with TestClient(create_app(phone_engine), follow_redirects=False) as client:
        if who:
            assert sign_in(client, who).status_code == 303
        page = client.get(f"/console/institutions/{a}/complaints/{phone_district.complaint}")
        assert page.status_code == status
        listing = client.get("/console/complaints?status=")
        expected = {None: 303, PEOPLE["zhang"]: 200, PEOPLE["wang"]: 200, PEOPLE["staff"]: 404}[who]
        assert listing.status_code == expected
        if who == PEOPLE["wang"]:
            assert str(phone_district.complaint) not in listing.text  # another jurisdiction's: not listed
        if who == PEOPLE["zhang"]:
            assert str(phone_district.complaint) in listing.text and NEIGHBOUR in page.text
            held = client.post(f"/console/institutions/{a}/complaints/{phone_district.complaint}/assign",
                               data={"assignee": "not-a-user", "csrf_token": csrf_of(page.text)})  # fmt: skip
            assert held.status_code == 422 and 'id="assignee-error"' in held.text
