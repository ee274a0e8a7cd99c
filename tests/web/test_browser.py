"""The console in a real browser, as a regulator uses it: by mouse and by keyboard, axe-core clean,
with a screenshot of every page (artifacts/screenshots/, desktop and phone widths)."""

from __future__ import annotations

import io
import json
from decimal import Decimal
from typing import Any

from axe_playwright_python.sync_playwright import Axe
from openpyxl import load_workbook
from sqlalchemy import Engine, text
from sqlalchemy.orm import sessionmaker

from escrow.access.callers import Role
from escrow.access.tokens import issue_token
from tests.web.conftest import SCREENSHOTS
from tests.web.district import LANSHAN, PASSWORD, PEOPLE, District


def sign_in(page: Any, name: str = PEOPLE["zhang"]) -> None:
    page.goto("/console/sign-in")
    page.fill("#name", name)
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/console/dashboard")


def _yuan(text_value: str) -> Decimal:
    return Decimal(text_value.replace("¥", "").replace(",", "").strip())


def test_the_dashboard_shows_what_the_json_reports_say(page: Any, live_server: str, web_engine: Engine) -> None:
    with sessionmaker(web_engine).begin() as session:
        _, token = issue_token(session, role=Role.REGULATOR, jurisdictions=[LANSHAN], label="web test")
    sign_in(page)
    bearer = {"Authorization": f"Bearer {token}"}
    report = page.request.get(f"{live_server}/reports/held-funds", headers=bearer).json()
    aging_at = page.get_attribute("[data-aging-at]", "data-aging-at")  # aging is kept by the figures job
    aging = page.request.get(
        f"{live_server}/reports/held-funds/aging", headers=bearer, params={"as_of": aging_at}
    ).json()
    total = report["total"]
    for column in ("held", "custody_cash", "releasable", "refund_payable"):
        shown = _yuan(page.text_content(f"[data-figure={column}]"))
        assert shown == Decimal(total[f"{column}_fen"]).scaleb(-2), column
    for bucket in ("days_0_30", "days_31_90", "days_over_90"):
        assert _yuan(page.text_content(f"[data-aging={bucket}]")) == Decimal(aging["total"][f"{bucket}_fen"]).scaleb(-2)
    assert page.locator("#held-chart svg").count() == 1, "ECharts drew the trend"


def test_an_alert_is_acknowledged_then_resolved_with_a_note(page: Any, district: District, web_engine: Engine) -> None:
    sign_in(page)
    page.goto("/console/alerts")
    item = page.locator(f"#alert-{district.alert}")
    assert "123,456.78" in item.text_content()  # the evidence in yuan
    item.locator("input[name=note]").fill("已电话联系机构负责人")
    item.locator("button", has_text="确认").click()
    page.wait_for_selector(f"#alert-{district.alert}[data-state=acknowledged]")
    item = page.locator(f"#alert-{district.alert}")
    item.locator("input[name=note]").fill("退款已核实，属正常退费")
    item.locator("button", has_text="处置").click()
    page.wait_for_selector(f"#alert-{district.alert}[data-state=resolved]")
    with web_engine.connect() as conn:
        by = conn.execute(
            text("SELECT acknowledged_by, resolved_by FROM alert WHERE id = :a"), {"a": district.alert}
        ).one()
        actors = conn.scalars(
            text("SELECT actor FROM audit_record WHERE object_id = :a"), {"a": str(district.alert)}
        ).all()
    assert all(who.startswith("张敏 (user ") for who in (*by, *actors)), "the person is named, not a token"


def test_a_hold_is_placed_by_keyboard_alone_and_shows_on_the_institution_page(page: Any, district: District) -> None:
    page.goto("/console/sign-in")
    page.keyboard.press("Tab")  # the skip link comes first
    page.focus("#name")
    page.keyboard.type(PEOPLE["zhang"])
    page.keyboard.press("Tab")
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_url("**/console/dashboard")
    page.goto(f"/console/institutions/{district.institutions['B']}")
    page.focus("#hold-reason")
    page.keyboard.type("投诉集中，暂停拨付")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "冻结机构"
    page.keyboard.press("Enter")
    page.wait_for_url("**?done=held")
    assert "投诉集中，暂停拨付" in page.text_content("#holds")
    assert "已冻结" in page.text_content("h1")


def test_an_xlsx_report_is_downloaded_and_read_back(page: Any) -> None:
    sign_in(page)
    page.goto("/console/reports")
    with page.expect_download() as download:
        page.click("text=下载 XLSX >> nth=0")
    sheet = load_workbook(io.BytesIO(download.value.path().read_bytes())).active
    assert sheet is not None and sheet["A1"].value == "留存资金"
    rows = list(sheet.iter_rows(min_row=5, values_only=True))
    assert rows[-1][0] == "合计" and rows[-1][2] > 0


def test_the_session_cookie_is_not_readable_by_script(page: Any) -> None:
    sign_in(page)
    assert "escrow_session" not in page.evaluate("document.cookie")
    cookie = next(c for c in page.context.cookies() if c["name"] == "escrow_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax"


def _pages(district: District) -> dict[str, str]:
    a = district.institutions["A"]
    return {
        "dashboard": "/console/dashboard",
        "institutions": "/console/institutions",
        "institution": f"/console/institutions/{a}",
        "contract": f"/console/institutions/{a}/contracts/{district.contracts['A0']}",
        "alerts": "/console/alerts?state=",
        "reports": "/console/reports",
        "close": f"/console/institutions/{a}/close",
        "account": "/console/account",
        "not_found": f"/console/institutions/{district.institutions['C']}",
    }


def test_every_page_passes_axe_and_is_photographed(browser: Any, live_server: str, district: District) -> None:
    axe, serious, every = Axe(), {}, {}
    for width, height, label in ((1366, 900, "desktop"), (390, 844, "phone")):
        context = browser.new_context(base_url=live_server, viewport={"width": width, "height": height})
        page = context.new_page()
        page.goto("/console/sign-in")
        page.screenshot(path=str(SCREENSHOTS / f"sign_in-{label}.png"), full_page=True)
        found = [v for v in axe.run(page).response["violations"] if v["impact"] in ("serious", "critical")]
        serious["sign_in"] = [v["id"] for v in found]
        sign_in(page)
        for name, path in _pages(district).items():
            page.goto(path)
            page.wait_for_load_state("networkidle")
            page.screenshot(path=str(SCREENSHOTS / f"{name}-{label}.png"), full_page=True)
            violations = axe.run(page).response["violations"]
            every[f"{name}-{label}"] = [f"{v['impact']} {v['id']}" for v in violations]
            found = [v for v in violations if v["impact"] in ("serious", "critical")]
            serious[f"{name}-{label}"] = [f"{v['id']}: {v['nodes'][0]['target']}" for v in found]
        context.close()
    (SCREENSHOTS.parent / "axe.json").write_text(json.dumps(every, indent=1, ensure_ascii=False))
    assert {page: ids for page, ids in serious.items() if ids} == {}


def test_docs_and_the_console_work_with_no_internet(page: Any, live_server: str) -> None:
    elsewhere: list[str] = []

    def local_only(route: Any) -> None:
        if route.request.url.startswith(live_server):
            route.continue_()
        else:
            elsewhere.append(route.request.url)
            route.abort()

    page.context.route("**/*", local_only)
    page.goto("/docs")
    page.wait_for_selector(".swagger-ui .info .title")
    assert "escrow" in page.text_content(".swagger-ui .info .title")
    sign_in(page)
    page.wait_for_selector("#held-chart svg")
    assert elsewhere == []
