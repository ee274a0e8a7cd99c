"""The desk in a real browser, as an institution's staff use it: a class session for a group, a CSV with a
bad line then a good one, a refund answered, a payout requested; one flow by keyboard alone; the dashboard's
figures against the ledger's to the fen; every page axe-clean and photographed at desktop and phone widths."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from axe_playwright_python.sync_playwright import Axe
from sqlalchemy import Engine, text
from sqlalchemy.orm import sessionmaker

from escrow.access.callers import Caller, Role
from escrow.access.tokens import issue_token
from escrow.flows.payouts import request_payout, settle_payout
from escrow.ids import new_id
from tests.factories import school
from tests.web.conftest import SCREENSHOTS
from tests.web.desk.district import DESK_PEOPLE, Desk, ask_refund, confirmed_class, family
from tests.web.district import PASSWORD


def sign_in(page: Any, name: str = DESK_PEOPLE["accountant"]) -> None:
    page.goto("/console/sign-in")
    page.fill("#name", name)
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/desk")


def _yuan(shown: str) -> Decimal:
    return Decimal(shown.replace("¥", "").replace(",", "").strip())


def _paid_out_once(engine: Engine, desk: Desk) -> None:
    """A confirmed class, its payout requested and executed by the bank: something paid out to compare."""
    now = datetime.now(UTC)
    with sessionmaker(engine).begin() as s:
        kid = family(s, desk, desk.maths, "陶小乐", 10, paid=True, now=now)
        confirmed_class(s, desk, kid, 3, now=now)
        payout, _ = request_payout(s, caller=school(desk.institution), institution_id=desk.institution,
                                   idempotency_key=f"browser-{kid}", now=now)  # fmt: skip
        assert payout is not None
        bank = Caller(token_id=new_id(), role=Role.BANK, bank_code="bank_l")
        settle_payout(s, caller=bank, institution_id=desk.institution, payout_id=payout.id, executed=True,
                      note_text=f"BANK-{kid.hex[:8]}", idempotency_key=f"x-{payout.id}", now=now)  # fmt: skip


def test_the_dashboard_shows_what_the_ledger_says_to_the_fen(
    page: Any, live_server: str, web_engine: Engine, desk: Desk
) -> None:
    _paid_out_once(web_engine, desk)
    with sessionmaker(web_engine).begin() as s:
        _, token = issue_token(s, role=Role.INSTITUTION, institution_id=desk.institution, label="desk test")
    sign_in(page)
    bearer = {"Authorization": f"Bearer {token}"}
    books = page.request.get(f"{live_server}/institutions/{desk.institution}/balances", headers=bearer).json()
    payouts = page.request.get(f"{live_server}/institutions/{desk.institution}/payouts?limit=200", headers=bearer)
    executed = sum(
        p["amount_fen"] for p in payouts.json()["items"] if p["kind"] == "release" and p["status"] == "executed"
    )
    expected = {
        "held": books["held_fen"],
        "releasable": books["releasable_fen"],
        "payout_pending": books["payout_pending_fen"],
        "refund_payable": books["refund_payable_fen"],
        "custody_cash": books["custody_cash_fen"],
        "paid_out": executed,
    }
    assert executed > 0 and books["held_fen"] > 0
    for figure, fen in expected.items():
        assert _yuan(page.text_content(f"[data-figure={figure}]")) == Decimal(fen).scaleb(-2), figure


def test_a_class_session_is_recorded_for_the_students_who_came(page: Any, web_engine: Engine, desk: Desk) -> None:
    now = datetime.now(UTC)
    with sessionmaker(web_engine).begin() as s:
        kids = [family(s, desk, desk.maths, name, 6, paid=True, now=now) for name in ("韩一", "韩二", "韩三")]
    sign_in(page)
    page.click("text=记录一节课 >> nth=0")
    page.select_option("#course", str(desk.maths))  # htmx shows the course's students
    page.wait_for_selector(f"#student-{kids[0]}")
    page.fill("#hours", "2")
    page.check(f"#student-{kids[0]}")
    page.check(f"#student-{kids[2]}")
    page.click("text=为勾选的学员记录课时")
    page.wait_for_selector("#session-done")
    assert "已为 2 名学员记录课时" in page.text_content("#session-done")
    with web_engine.connect() as conn:
        recorded = conn.scalars(text("SELECT contract_id FROM class_record WHERE contract_id IN (:a, :b, :c)"),
                                {"a": kids[0], "b": kids[1], "c": kids[2]}).all()  # fmt: skip
    assert sorted(recorded) == sorted([kids[0], kids[2]])


def _csv(*lines: str) -> dict[str, Any]:
    body = "contract_id,student,amount,bank_reference\n" + "\n".join(lines) + "\n"
    return {"name": "bank-day.csv", "mimeType": "text/csv", "buffer": body.encode("utf-8-sig")}


def test_a_file_with_a_bad_line_is_named_then_a_good_one_kept(page: Any, web_engine: Engine, desk: Desk) -> None:
    now = datetime.now(UTC)
    with sessionmaker(web_engine).begin() as s:
        a, b, c = (family(s, desk, desk.piano, name, 5, paid=False, now=now) for name in ("蒋一", "蒋二", "蒋三"))
    sign_in(page)
    page.goto("/desk/collections")
    page.set_input_files("#file", files=[_csv(f"{a},蒋一,1000,UP-1", f"{b},蒋二,1000.001,UP-2", f"{c},蒋三,1000,UP-3")])
    page.click("text=登记全部")
    page.wait_for_selector("#line-problems")
    problems = page.locator("#line-problems tbody tr")
    assert problems.count() == 1 and problems.first.get_attribute("data-line") == "3"
    assert "amount" in problems.first.text_content() and "请填写以元为单位的正数金额" in problems.first.text_content()
    page.set_input_files("#file", files=[_csv(f"{a},蒋一,1000,UP-1", f"{b},蒋二,1000.00,UP-2", f"{c},蒋三,1000,UP-3")])
    page.click("text=登记全部")
    page.wait_for_selector("[data-result=registered]")
    assert "已登记 3 笔收费，共 3,000.00 元" in page.text_content("#upload-result")
    with web_engine.connect() as conn:
        assert conn.scalar(text("SELECT count(*) FROM collection WHERE bank_reference LIKE 'UP-%'")) == 3


def test_a_refund_is_answered_before_its_deadline(page: Any, web_engine: Engine, desk: Desk) -> None:
    with sessionmaker(web_engine).begin() as s:
        asked = ask_refund(s, desk, family(s, desk, desk.piano, "杨小帆", 5, paid=True, now=datetime.now(UTC)))
    sign_in(page)
    row = page.locator("#refund-deadlines tr", has_text="杨小帆")
    assert "1,000.00" in row.text_content()
    row.locator("a").click()
    card = page.locator(f"#refund-{asked}")
    card.locator("input[name=reason]").fill("家长搬家，同意退还未上课时")
    card.locator("text=同意退款").click()
    page.wait_for_selector(".notice")
    assert "已同意退款" in page.text_content(".notice")
    with web_engine.connect() as conn:
        decided = conn.execute(text("SELECT status, decision_reason FROM refund_request WHERE id = :r"), {"r": asked})
        assert tuple(decided.one()) == ("approved", "家长搬家，同意退还未上课时")


def test_a_payout_is_requested_and_shown_with_the_bank(page: Any, web_engine: Engine, desk: Desk) -> None:
    with sessionmaker(web_engine).begin() as s:
        kid = family(s, desk, desk.maths, "曹小宇", 10, paid=True, now=datetime.now(UTC))
        confirmed_class(s, desk, kid, 2, now=datetime.now(UTC))
    sign_in(page)
    page.goto("/desk/payouts")
    releasable = page.text_content("[data-figure=releasable]")
    page.click("#payout-form button")
    page.wait_for_selector(".notice")
    first = page.locator("#payouts tbody tr").first
    assert first.get_attribute("data-status") == "instructed" and "银行处理中" in first.text_content()
    assert _yuan(first.locator("td.num").text_content()) == _yuan(releasable)
    assert _yuan(page.text_content("[data-figure=releasable]")) == 0


def test_a_class_session_is_recorded_by_keyboard_alone(page: Any, web_engine: Engine, desk: Desk) -> None:
    with sessionmaker(web_engine).begin() as s:
        kids = [family(s, desk, desk.piano, name, 4, paid=True, now=datetime.now(UTC)) for name in ("许一", "许二")]
    page.goto("/console/sign-in")
    page.keyboard.press("Tab")  # the skip link comes first
    page.focus("#name")
    page.keyboard.type(DESK_PEOPLE["accountant"])
    page.keyboard.press("Tab")
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_url("**/desk")
    page.goto(f"/desk/classes?course={desk.piano}&hours=1")
    page.focus(f"#student-{kids[0]}")
    page.keyboard.press("Space")
    while page.evaluate("document.activeElement.id") != f"student-{kids[1]}":
        page.keyboard.press("Tab")
    page.keyboard.press("Space")
    while page.evaluate("document.activeElement.tagName") != "BUTTON":
        page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "为勾选的学员记录课时"
    page.keyboard.press("Enter")
    page.wait_for_selector("#session-done")
    with web_engine.connect() as conn:
        count = text("SELECT count(*) FROM class_record WHERE contract_id IN (:a, :b)")
        assert conn.scalar(count, {"a": kids[0], "b": kids[1]}) == 2


def _pages(desk: Desk, engine: Engine) -> dict[str, str]:
    with engine.connect() as conn:
        statement: UUID = conn.scalar(
            text("SELECT id FROM bank_statement WHERE institution_id = :i ORDER BY line_count DESC LIMIT 1"),
            {"i": desk.institution},
        )
    return {
        "dashboard": "/desk",
        "contracts": "/desk/contracts",
        "contract_new": "/desk/contracts/new",
        "contract": f"/desk/contracts/{desk.contracts['张小华']}",
        "collections": "/desk/collections",
        "collections_refused": "/desk/collections",
        "classes": f"/desk/classes?course={desk.piano}",
        "refunds": "/desk/refunds",
        "payouts": "/desk/payouts",
        "statements": "/desk/statements",
        "statement": f"/desk/statements/{statement}",
        "complaints": "/desk/complaints",
        "not_found": f"/desk/contracts/{desk.other_contract}",
    }


def _filled_in(page: Any, desk: Desk) -> None:
    """The contract form as the caps refuse it: the messages beside the fields (htmx, on change)."""
    page.select_option("#course_id", str(desk.piano))
    page.fill("#student_name", "马小跳")
    page.fill("#hours_bought", "70")
    page.dispatch_event("#hours_bought", "change")
    page.wait_for_selector("#msg-hours_bought .error")


def _refused_file(page: Any, desk: Desk) -> None:
    """A file checked with a bad line: the lines named, nothing kept."""
    page.set_input_files("#file", files=[_csv(f"{desk.contracts['张小华']},李小红,500,SHOT-1", "x,,abc,SHOT 2")])
    page.click("text=检查文件")
    page.wait_for_selector("#line-problems")


def test_every_desk_page_passes_axe_and_is_photographed(
    browser: Any, live_server: str, web_engine: Engine, desk: Desk
) -> None:
    axe, found = Axe(), {}
    with sessionmaker(web_engine).begin() as s:
        ask_refund(s, desk, family(s, desk, desk.piano, "邓小雪", 5, paid=True, now=datetime.now(UTC)))
    for width, height, label in ((1366, 900, "desktop"), (390, 844, "phone")):
        context = browser.new_context(base_url=live_server, viewport={"width": width, "height": height})
        page = context.new_page()
        sign_in(page)
        for name, path in _pages(desk, web_engine).items():
            page.goto(path)
            page.wait_for_load_state("networkidle")
            if name == "contract_new":
                _filled_in(page, desk)
            if name == "collections_refused":
                _refused_file(page, desk)
            page.screenshot(path=str(SCREENSHOTS / f"desk-{name}-{label}.png"), full_page=True)
            found[f"{name}-{label}"] = [f"{v['impact']} {v['id']}: {v['nodes'][0]['target']}" for v in
                                        axe.run(page).response["violations"]]  # fmt: skip
        context.close()
    (SCREENSHOTS.parent / "axe-desk.json").write_text(json.dumps(found, indent=1, ensure_ascii=False))
    assert {page: ids for page, ids in found.items() if ids} == {}
