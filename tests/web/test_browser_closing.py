"""In a real browser: closing an institution (a reason of spaces refused beside the field first), which then
shows as closing (关闭中); an alert note of spaces refused beside the note in its row, swapped in by htmx;
alerts read in Chinese. Screenshots at desktop and phone widths, axe-core clean."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from axe_playwright_python.sync_playwright import Axe
from sqlalchemy import Engine, text
from sqlalchemy.orm import sessionmaker

from escrow.supervision.alerts import Finding, Severity, raise_alerts
from tests.web.conftest import SCREENSHOTS
from tests.web.district import LANSHAN, District, add_school
from tests.web.test_browser import sign_in

WIDTHS = ((1366, 900, "desktop"), (390, 844, "phone"))


def _serious(page: Any) -> list[str]:
    violations = Axe().run(page).response["violations"]
    return [f"{v['id']}: {v['nodes'][0]['target']}" for v in violations if v["impact"] in ("serious", "critical")]


def test_closing_an_institution_in_the_browser_shows_it_as_closing(
    page: Any, district: District, web_engine: Engine
) -> None:
    with sessionmaker(web_engine).begin() as session:
        school = add_school(
            session, district, "browser-closing", "博雅学堂", LANSHAN, families=2, now=datetime.now(UTC)
        )
    sign_in(page)
    page.goto(f"/console/institutions/{school}")
    page.click("text=关停该机构…")
    page.wait_for_url(f"**/console/institutions/{school}/close")
    page.fill("#close-reason", "   ")
    page.click("button.danger")
    page.wait_for_selector("#close-reason-error")
    assert "请填写此项" in page.text_content("#close-reason-error")
    assert page.get_attribute("#close-reason", "aria-invalid") == "true"
    page.screenshot(path=str(SCREENSHOTS / "close_refused-desktop.png"), full_page=True)
    page.fill("#close-reason", "停止办学，学员已通知")
    page.click("button.danger")
    page.wait_for_url("**?done=closing")
    assert "关闭中" in page.text_content("h1")
    assert "尚有 ¥11,876.55 退款待付给家庭" in page.text_content("[data-closing]")
    assert page.locator("text=关停该机构…").count() == 0 and page.locator("#hold-reason").count() == 0
    found = {}
    for width, height, label in WIDTHS:
        page.set_viewport_size({"width": width, "height": height})
        page.reload()
        page.screenshot(path=str(SCREENSHOTS / f"institution_closing-{label}.png"), full_page=True)
        found[label] = _serious(page)
    page.goto("/console/dashboard")
    page.wait_for_load_state("networkidle")
    assert "博雅学堂 关闭中" in " ".join(page.text_content("main").split())
    page.screenshot(path=str(SCREENSHOTS / "dashboard_closing-phone.png"), full_page=True)
    with web_engine.connect() as conn:
        assert conn.scalar(text("SELECT status FROM institution WHERE id = :i"), {"i": school}) == "closing"
    assert found == {"desktop": [], "phone": []}


def test_an_alert_note_of_spaces_is_refused_beside_the_note_in_its_row(
    page: Any, district: District, web_engine: Engine
) -> None:
    with sessionmaker(web_engine).begin() as session:
        school = add_school(session, district, "browser-alert", "博文书院", LANSHAN, families=1, now=datetime.now(UTC))
        said = "6000.00 yuan held for families, no class ever recorded"
        finding = Finding("money_idle_long", Severity.RED, school, "", said, {"days": None, "held_fen": 600_000})
        (alert,) = raise_alerts(session, [finding], rules=[], now=datetime.now(UTC), run_id=None)
    sign_in(page)
    page.goto("/console/alerts?rule=money_idle_long&state=open")
    row = page.locator(f"#alert-{alert}")
    assert "资金长期闲置" in row.text_content() and "为家长留存 ¥6,000.00，从未记录过课程" in row.text_content()
    row.locator("input[name=note]").fill("   ")
    row.locator("button", has_text="确认").click()
    page.wait_for_selector(f"#note-{alert}-error")
    row = page.locator(f"#alert-{alert}")
    assert "请填写此项" in row.text_content() and row.get_attribute("data-state") == "open"
    assert page.get_attribute(f"#note-{alert}", "aria-invalid") == "true"
    for width, height, label in WIDTHS:
        page.set_viewport_size({"width": width, "height": height})
        page.screenshot(path=str(SCREENSHOTS / f"alert_note_refused-{label}.png"), full_page=True)
    assert _serious(page) == []
    row.locator("input[name=note]").fill("已约谈机构负责人")
    row.locator("button", has_text="确认").click()
    page.wait_for_selector(f"#alert-{alert}[data-state=acknowledged]")
    with web_engine.connect() as conn:
        assert conn.scalar(text("SELECT acknowledge_note FROM alert WHERE id = :a"), {"a": alert}) == "已约谈机构负责人"
