"""The parent's phone in a real browser at a phone's size (390 x 844), as a family uses it: signing in with a
code read from the development outbox, confirming a class with stars, disputing another, asking for a refund
and seeing the bank pay it, complaining (by keyboard alone) and reading the regulator's answer. Every figure is
checked against the JSON API, every page photographed (artifacts/screenshots/phone-*) and run through axe."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

import pytest
from axe_playwright_python.sync_playwright import Axe
from sqlalchemy import Engine, text
from sqlalchemy.orm import sessionmaker

from api.web.throttle import reset_sign_in_attempts
from escrow.access.callers import Caller, Role
from escrow.access.tokens import issue_token
from escrow.db.records import Payout
from escrow.flows.payouts import settle_payout
from escrow.flows.refunds import decide_refund, refund_payouts
from escrow.ids import new_id
from tests.factories import school
from tests.web.conftest import SCREENSHOTS
from tests.web.district import PASSWORD
from tests.web.phone_district import NEIGHBOUR, PARENT, PEOPLE, PhoneDistrict

PHONE = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True, "locale": "zh-CN"}


def shoot(page: Any, name: str) -> None:
    page.screenshot(path=str(SCREENSHOTS / f"phone-{name}.png"), full_page=True)


def fen_of(page: Any, selector: str) -> int:
    """An amount as a page shows it (¥1,234.56), in fen."""
    shown = page.text_content(selector).replace("¥", "").replace(",", "").strip()
    return int(Decimal(shown) * 100)


def code_from_outbox(page: Any, phone: str) -> str:
    """Read the newest sign-in code from the development outbox, in a tab of its own."""
    outbox = page.context.new_page()
    outbox.goto(f"/m/dev/outbox?phone={phone}")
    body = outbox.text_content("[data-kind=sign_in_code] .message-text")
    outbox.close()
    found = re.search(r"\d{6}", body or "")
    assert found, body
    return found.group(0)


def api(page: Any, server: str, token: str, path: str) -> Any:
    answer = page.request.get(f"{server}{path}", headers={"Authorization": f"Bearer {token}"})
    assert answer.ok, answer.text()
    return answer.json()


@pytest.fixture(scope="module")
def parent_state(browser: Any, phone_server: str, phone_district: PhoneDistrict) -> dict[str, Any]:
    """王芳 signs in once with a code from the outbox (a phone is sent a code once a minute at most)."""
    reset_sign_in_attempts()
    context = browser.new_context(base_url=phone_server, **PHONE)
    page = context.new_page()
    page.goto("/m")
    page.wait_for_url("**/m/sign-in?next=/m")
    shoot(page, "sign_in")
    page.fill("#phone", PARENT)
    page.click("text=获取验证码")
    page.wait_for_selector("#code")
    shoot(page, "code")
    page.fill("#code", code_from_outbox(page, PARENT))
    page.click("button:has-text('登录')")
    page.wait_for_url("**/m/home")
    state: dict[str, Any] = context.storage_state()
    cookie = next(c for c in state["cookies"] if c["name"] == "escrow_parent")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax"
    context.close()
    return state


@pytest.fixture
def parent_page(browser: Any, phone_server: str, parent_state: dict[str, Any]) -> Iterator[Any]:
    context = browser.new_context(base_url=phone_server, storage_state=parent_state, **PHONE)
    yield context.new_page()
    context.close()


@pytest.fixture(scope="module")
def parent_token(phone_engine: Engine) -> str:
    with sessionmaker(phone_engine).begin() as session:
        return str(issue_token(session, role=Role.PARENT, guardian_phone=PARENT, label="phone test")[1])


def test_home_shows_what_the_api_says_is_held(parent_page: Any, phone_server: str, parent_token: str) -> None:
    page = parent_page
    page.goto("/m/home")
    contracts = api(page, phone_server, parent_token, "/contracts")["items"]
    assert len(contracts) == 2
    for contract in contracts:
        assert fen_of(page, f"[data-contract='{contract['id']}'] [data-fen=held]") == contract["held_fen"]
    assert page.get_attribute("[data-waiting]", "data-waiting") == "4"
    shoot(page, "home")


def test_a_class_is_confirmed_with_stars_and_another_disputed(
    parent_page: Any, phone_server: str, phone_district: PhoneDistrict, phone_engine: Engine, parent_token: str
) -> None:
    page, a = parent_page, phone_district.institutions["A"]
    first, second, _ = phone_district.classes["maths"]
    page.goto("/m/classes")
    shoot(page, "classes")
    page.click(f"[data-class='{first}']")
    shoot(page, "class")
    page.click("label.star >> nth=4")
    page.fill("#comment", "老师讲得很耐心")
    page.click("text=确认已上课")
    page.wait_for_url("**?done=confirmed")
    shoot(page, "class_confirmed")
    page.goto(f"/m/classes/{a}/{second}")
    page.click("text=我有异议")
    page.wait_for_url("**/dispute")
    shoot(page, "dispute")
    page.fill("#reason", "那天老师请假，没有上课")
    page.click("text=提交异议")
    page.wait_for_url("**?done=disputed")
    with phone_engine.connect() as conn:
        rows = dict(
            conn.execute(
                text("SELECT id, status FROM class_record WHERE id IN (:a, :b)"), {"a": first, "b": second}
            ).all()
        )
        stars = conn.scalar(text("SELECT stars FROM evaluation WHERE class_id = :c"), {"c": first})
    assert (rows[first], rows[second], stars) == ("confirmed", "disputed", 5)
    contract = phone_district.contracts["maths"]
    page.goto(f"/m/contracts/{a}/{contract}")
    shoot(page, "contract")
    balance = api(page, phone_server, parent_token, f"/institutions/{a}/contracts/{contract}/balance")
    collected = api(page, phone_server, parent_token, f"/institutions/{a}/contracts/{contract}")["collected_fen"]
    classes = api(page, phone_server, parent_token, f"/institutions/{a}/contracts/{contract}/classes")["items"]
    released = sum(c["amount_fen"] or 0 for c in classes)
    assert fen_of(page, "[data-fen=held]") == balance["held_fen"] and fen_of(page, "[data-fen=paid]") == collected
    assert fen_of(page, "[data-fen=released]") == released > 0
    assert collected == balance["held_fen"] + released  # nothing refunded yet: every fen is held or released
    assert [page.text_content(f"[data-hours={k}]") for k in ("given", "confirmed", "waiting", "disputed")] == [
        "6", "2", "2", "2",
    ]  # fmt: skip
    page.click("text=电子合同")
    page.wait_for_url("**/terms")
    assert "15 个工作日" in page.text_content("article")
    shoot(page, "terms")


def test_a_refund_is_previewed_asked_for_approved_and_paid(
    parent_page: Any, phone_server: str, phone_district: PhoneDistrict, phone_engine: Engine, parent_token: str
) -> None:
    page, b, contract = parent_page, phone_district.institutions["B"], phone_district.contracts["piano"]
    page.goto(f"/m/contracts/{b}/{contract}")
    page.click("text=申请退费")
    page.wait_for_url("**/refund")
    preview = api(page, phone_server, parent_token, f"/institutions/{b}/contracts/{contract}/refund-preview")
    assert fen_of(page, "[data-fen=refundable]") == preview["refundable_fen"] > 0
    assert fen_of(page, "[data-fen=reserved]") == preview["reserved_fen"] > 0  # the piano class still waits
    shoot(page, "refund")
    page.fill("#reason", "孩子转学，不再上课")
    page.click("text=提交退费申请")
    page.wait_for_url("**?done=asked")
    shoot(page, "refund_asked")
    request_id = page.url.split("/")[-1].split("?")[0]
    with sessionmaker(phone_engine).begin() as session:  # the institution approves, the bank pays
        row, _ = decide_refund(session, caller=school(b), institution_id=b, request_id=UUID(request_id), approve=True,
                               reason=None, idempotency_key=f"approve-{request_id}", now=datetime.now(UTC))  # fmt: skip
        (payout,) = refund_payouts(session, row)
        _bank_pays(session, payout)
        approved = row.amount_fen
    assert approved == preview["refundable_fen"]
    page.reload()
    assert fen_of(page, "[data-fen=approved]") == approved
    assert f"¥{approved // 100:,}.{approved % 100:02d}" in page.text_content("[data-step=paid]")
    assert page.text_content("[data-paid-at]").startswith(datetime.now(UTC).astimezone().strftime("%Y-"))
    shoot(page, "refund_paid")
    page.goto("/m/refunds")
    shoot(page, "refunds")


def _bank_pays(session: Any, payout: Payout) -> None:
    bank = Caller(token_id=new_id(), role=Role.BANK, bank_code="bank_m")
    settle_payout(session, caller=bank, institution_id=payout.institution_id, payout_id=payout.id, executed=True,
                  note_text="EX20261202001", idempotency_key=f"bank-{payout.id}", now=datetime.now(UTC))  # fmt: skip


def test_a_complaint_goes_to_the_regulator_and_back_by_keyboard(
    browser: Any, phone_server: str, phone_district: PhoneDistrict
) -> None:
    reset_sign_in_attempts()
    phone = browser.new_context(base_url=phone_server, **PHONE)
    page = phone.new_page()
    page.goto("/m/sign-in")  # 李娜 signs in and complains with the keyboard alone
    page.keyboard.press("Tab")  # the skip link comes first
    page.focus("#phone")
    page.keyboard.type(NEIGHBOUR)
    page.keyboard.press("Enter")
    page.wait_for_selector("#code")
    assert page.evaluate("document.activeElement.id") == "code"  # the code field has the focus
    page.keyboard.type(code_from_outbox(page, NEIGHBOUR))
    page.keyboard.press("Enter")
    page.wait_for_url("**/m/home")
    page.goto("/m/complaints/new")
    page.focus("input[name=institution]")  # one institution: chosen already
    page.keyboard.press("Tab")  # to the categories
    page.keyboard.press("ArrowDown")  # 教学质量 (arrows move within a radio group)
    page.keyboard.press("Tab")
    page.keyboard.type("老师一个月换了三次，课程进度跟不上")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "提交投诉"
    page.keyboard.press("Enter")
    page.wait_for_url("**?done=submitted")
    shoot(page, "complaint_submitted")
    complaint_url = page.url.split("?")[0]
    complaint_id = complaint_url.rsplit("/", 1)[1]

    desk = browser.new_context(base_url=phone_server, viewport={"width": 1366, "height": 900}, locale="zh-CN")
    console = desk.new_page()
    console.goto("/console/sign-in")
    console.fill("#name", PEOPLE["zhang"])
    console.fill("#password", PASSWORD)
    console.click("button[type=submit]")
    console.wait_for_url("**/console/dashboard")
    console.click("nav >> text=投诉")
    console.wait_for_url("**/console/complaints")
    console.screenshot(path=str(SCREENSHOTS / "complaints-desktop.png"), full_page=True)
    console.click(f"[data-complaint='{complaint_id}'] a >> nth=1")
    console.click("button:has-text('指派')")
    console.wait_for_url("**?done=assigned")
    console.fill("#reply-body", "已联系机构，要求固定任课老师，一周内回复。")
    console.click("button:has-text('发送答复')")
    console.wait_for_url("**?done=answered")
    console.screenshot(path=str(SCREENSHOTS / "complaint-desktop.png"), full_page=True)
    console.fill("#close-note", "机构已承诺本学期不再更换老师。")
    console.click("button:has-text('办结投诉')")
    console.wait_for_url("**?done=closed")
    assert "已办结" in console.text_content("h1")
    desk.close()

    page.goto(complaint_url)
    assert page.get_attribute("[data-status]", "data-status") == "closed"
    answers = page.locator("[data-author=regulator]").all_text_contents()
    assert any("一周内回复" in a for a in answers) and any("不再更换老师" in a for a in answers)
    shoot(page, "complaint")
    phone.close()


def _phone_pages(district: PhoneDistrict, engine: Engine) -> dict[str, str]:
    a, b = district.institutions["A"], district.institutions["B"]
    maths, waiting = district.contracts["maths"], district.classes["maths"][2]
    with engine.connect() as conn:
        refund = conn.scalar(text("SELECT id FROM refund_request WHERE institution_id = :b"), {"b": b})
        complaint = conn.scalar(text("SELECT id FROM complaint WHERE guardian_phone = :p LIMIT 1"), {"p": NEIGHBOUR})
    pages = {
        "home": "/m/home",
        "contract": f"/m/contracts/{a}/{maths}",
        "terms": f"/m/contracts/{a}/{maths}/terms",
        "classes": "/m/classes",
        "class": f"/m/classes/{a}/{waiting}",
        "dispute": f"/m/classes/{a}/{waiting}/dispute",
        "refund": f"/m/contracts/{a}/{maths}/refund",
        "refunds": "/m/refunds",
        "complaints": "/m/complaints",
        "complaint_new": "/m/complaints/new",
        "outbox": f"/m/dev/outbox?phone={PARENT}",
        "not_found": f"/m/contracts/{a}/{district.contracts['neighbour']}",
    }
    if refund:
        pages["refund_status"] = f"/m/refunds/{b}/{refund}"
    if complaint:
        pages["others_complaint"] = f"/m/complaints/{a}/{complaint}"  # another family's: not found
    return pages


def test_every_parent_page_passes_axe_and_is_photographed(
    browser: Any, phone_server: str, phone_district: PhoneDistrict, phone_engine: Engine, parent_state: dict[str, Any]
) -> None:
    axe, found = Axe(), {}
    signed_out = browser.new_context(base_url=phone_server, **PHONE)
    page = signed_out.new_page()
    page.goto("/m/sign-in")
    found["sign_in"] = axe.run(page).response["violations"]
    signed_out.close()
    context = browser.new_context(base_url=phone_server, storage_state=parent_state, **PHONE)
    page = context.new_page()
    for name, path in _phone_pages(phone_district, phone_engine).items():
        page.goto(path)
        page.screenshot(path=str(SCREENSHOTS / f"phone-page-{name}.png"), full_page=True)
        found[name] = axe.run(page).response["violations"]
    context.close()
    for width, height, label in ((1366, 900, "desktop"), (390, 844, "phone")):
        desk = browser.new_context(base_url=phone_server, viewport={"width": width, "height": height})
        console = desk.new_page()
        console.goto("/console/sign-in")
        console.fill("#name", PEOPLE["zhang"])
        console.fill("#password", PASSWORD)
        console.click("button[type=submit]")
        console.wait_for_url("**/console/dashboard")
        a = phone_district.institutions["A"]
        for name, path in (
            ("complaints", "/console/complaints?status="),
            ("complaint", f"/console/institutions/{a}/complaints/{phone_district.complaint}"),
            ("institution_voice", f"/console/institutions/{a}"),
        ):
            console.goto(path)
            console.wait_for_load_state("networkidle")
            console.screenshot(path=str(SCREENSHOTS / f"console-{name}-{label}.png"), full_page=True)
            found[f"console-{name}-{label}"] = axe.run(console).response["violations"]
        desk.close()
    report = {name: [f"{v['impact']} {v['id']}: {v['nodes'][0]['target']}" for v in vs] for name, vs in found.items()}
    (SCREENSHOTS.parent / "axe-phone.json").write_text(json.dumps(report, indent=1, ensure_ascii=False))
    assert {name: vs for name, vs in report.items() if vs} == {}
