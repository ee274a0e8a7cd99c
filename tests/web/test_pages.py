"""The console over HTTP: sessions, CSRF, scope, the authorization matrix of every page, exports."""

from __future__ import annotations

import io
from uuid import UUID

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from openpyxl import load_workbook
from sqlalchemy import Engine, text

from api.app import create_app
from api.web.phone.face import PhoneRoute
from api.web.routing import PageRoute
from tests.web.conftest import csrf_of, sign_in
from tests.web.district import PEOPLE, District
from tests.web.test_phone_pages import routes_of


def test_a_signed_in_session_cookie_is_httponly_and_samesite(client: TestClient) -> None:
    answer = sign_in(client, PEOPLE["zhang"])
    assert answer.status_code == 303 and answer.headers["location"] == "/console/dashboard"
    cookie = next(c for c in answer.headers.get_list("set-cookie") if c.startswith("escrow_session="))
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Secure" not in cookie  # plain HTTP here


def test_behind_tls_the_session_cookie_is_secure(client: TestClient) -> None:
    page = client.get("/console/sign-in")
    answer = client.post(
        "/console/sign-in",
        data={"name": PEOPLE["zhang"], "password": "correct-horse-battery", "csrf_token": csrf_of(page.text)},
        headers={"X-Forwarded-Proto": "https"},
    )
    assert "Secure" in next(c for c in answer.headers.get_list("set-cookie") if c.startswith("escrow_session="))


def test_a_wrong_password_is_told_beside_the_field_and_signs_no_one_in(client: TestClient) -> None:
    answer = sign_in(client, PEOPLE["zhang"], password="not-the-password")
    assert answer.status_code == 401
    assert 'id="password-error"' in answer.text and "姓名或密码错误" in answer.text
    assert "escrow_session" not in client.cookies


def test_sign_in_is_rate_limited_per_client(client: TestClient) -> None:
    statuses = [sign_in(client, PEOPLE["zhang"], password="wrong-password").status_code for _ in range(11)]
    assert statuses[:10] == [401] * 10 and statuses[10] == 429
    assert sign_in(client, PEOPLE["zhang"]).status_code == 429  # even with the right password, for a while


def test_a_form_without_its_csrf_token_is_refused_and_changes_nothing(
    client: TestClient, district: District, web_engine: Engine
) -> None:
    sign_in(client, PEOPLE["zhang"])
    target = district.institutions["B"]
    holds = text("SELECT count(*) FROM hold WHERE institution_id = :i")
    with web_engine.connect() as conn:
        before = conn.scalar(holds, {"i": target})
    refused = client.post(f"/console/institutions/{target}/holds", data={"reason": "no token"})
    forged = client.post(f"/console/institutions/{target}/holds", data={"reason": "x", "csrf_token": "forged"})
    assert refused.status_code == forged.status_code == 403
    with web_engine.connect() as conn:
        assert conn.scalar(holds, {"i": target}) == before


def test_a_page_outside_ones_jurisdiction_is_not_found(client: TestClient, district: District) -> None:
    sign_in(client, PEOPLE["wang"])  # regulates 371311, not A's 371302
    for path in (
        f"/console/institutions/{district.institutions['A']}",
        f"/console/institutions/{district.institutions['A']}/close",
    ):
        assert client.get(path).status_code == 404
    page = client.get(f"/console/institutions/{district.institutions['C']}")
    held = client.post(
        f"/console/institutions/{district.institutions['A']}/holds",
        data={"reason": "x", "csrf_token": csrf_of(page.text)},
    )
    assert held.status_code == 404


def _pages(district: District) -> dict[str, str]:
    a, c = district.institutions["A"], district.institutions["C"]
    return {
        "dashboard": "/console/dashboard",
        "institutions": "/console/institutions",
        "institution_in_scope": f"/console/institutions/{a}",
        "institution_elsewhere": f"/console/institutions/{c}",
        "contract": f"/console/institutions/{a}/contracts/{district.contracts['A0']}",
        "alerts": "/console/alerts",
        "reports": "/console/reports",
        "report_xlsx": "/console/reports/held-funds.xlsx",
        "report_csv": "/console/reports/aging.csv",
        "close_preview": f"/console/institutions/{a}/close",
        "account": "/console/account",
        "complaints": "/console/complaints",
    }


# page -> status for: nobody signed in, 张敏 (371302), 李老师 (A's staff)
MATRIX = {
    "dashboard": (303, 200, 404),
    "institutions": (303, 200, 404),
    "institution_in_scope": (303, 200, 404),
    "institution_elsewhere": (303, 404, 404),
    "contract": (303, 200, 404),
    "alerts": (303, 200, 404),
    "reports": (303, 200, 404),
    "report_xlsx": (303, 200, 404),
    "report_csv": (303, 200, 404),
    "close_preview": (303, 200, 404),
    "account": (303, 200, 200),
    "complaints": (303, 200, 404),
}


def get_pages(app: FastAPI) -> set[str]:
    """The paths of every page served by GET, the included routers' walked route by route (as FastAPI keeps them)."""
    paths, routes = set(), list(app.routes)
    while routes:
        route = routes.pop()
        included = getattr(route, "original_router", None)
        if included is not None:
            routes.extend(included.routes)
        elif isinstance(route, PageRoute) and "GET" in route.methods:
            paths.add(route.path)
    return paths


def test_the_authorization_matrix_covers_every_page(web_engine: Engine, district: District) -> None:
    app = create_app(web_engine)
    pages = [r for r in routes_of(app) if isinstance(r, PageRoute) and not isinstance(r, PhoneRoute)]
    page_paths = {
        r.path for r in pages if "GET" in r.methods and r.path.startswith("/console")
    }  # the desk's: tests/web/desk/
    covered = {"/console", "/console/sign-in", "/console/language/{language}"}  # open to all, or a redirect
    covered |= {"/console/institutions/{institution_id}/complaints/{complaint_id}"}  # tests/web/test_phone_pages.py
    templates = {p.replace(str(district.institutions["A"]), "{institution_id}") for p in _pages(district).values()}
    templates = {p.replace(str(district.contracts["A0"]), "{contract_id}") for p in templates}
    templates |= {"/console/institutions/{institution_id}", "/console/reports/{kind}.{extension}"}
    assert page_paths - covered - templates == set(), "a page the matrix does not name"
    for who_index, who in enumerate((None, PEOPLE["zhang"], PEOPLE["staff"])):
        with TestClient(app, follow_redirects=False) as client:
            if who:
                from api.web.throttle import reset_sign_in_attempts

                reset_sign_in_attempts()
                assert sign_in(client, who).status_code == 303
            for name, path in _pages(district).items():
                assert client.get(path).status_code == MATRIX[name][who_index], (who, name)


def test_the_xlsx_report_reads_back_with_title_instant_headers_and_totals(client: TestClient) -> None:
    sign_in(client, PEOPLE["zhang"])
    answer = client.get("/console/reports/held-funds.xlsx")
    assert answer.headers["content-disposition"].startswith('attachment; filename="held-funds-')
    sheet = load_workbook(io.BytesIO(answer.content)).active
    assert sheet is not None
    assert sheet["A1"].value == "留存资金" and "北京时间" in sheet["A2"].value
    assert [c.value for c in sheet[4]][:3] == ["辖区", "机构", "为家长留存 (元)"]
    assert sheet.freeze_panes == "A5"
    rows = list(sheet.iter_rows(min_row=5, values_only=True))
    assert rows[-1][0] == "合计" and rows[-1][2] == sum(r[2] for r in rows[:-1])
    assert sheet["C5"].number_format == "#,##0.00" and sheet.column_dimensions["C"].width == 18


def test_the_csv_report_shows_yuan_with_thousands_separators(client: TestClient) -> None:
    sign_in(client, PEOPLE["zhang"])
    body = client.get("/console/reports/held-funds.csv").content.decode("utf-8-sig")
    assert body.splitlines()[0] == "留存资金" and "6,000.00" in body


def test_english_is_a_switch_away(client: TestClient) -> None:
    sign_in(client, PEOPLE["zhang"])
    assert "总览" in client.get("/console/dashboard").text
    client.get("/console/language/en?next=/console/dashboard")
    assert "<h1>Dashboard</h1>" in client.get("/console/dashboard").text


def test_the_closure_preview_changes_nothing(client: TestClient, district: District, web_engine: Engine) -> None:
    sign_in(client, PEOPLE["zhang"])
    a = district.institutions["A"]
    with web_engine.connect() as conn:
        before = conn.scalar(text("SELECT count(*) FROM audit_record WHERE chain = :c"), {"c": a})
    page = client.get(f"/console/institutions/{a}/close")
    assert page.status_code == 200 and "王小明" in page.text and "王小红" in page.text
    with web_engine.connect() as conn:
        assert conn.scalar(text("SELECT status FROM institution WHERE id = :i"), {"i": a}) == "active"
        assert conn.scalar(text("SELECT count(*) FROM audit_record WHERE chain = :c"), {"c": a}) == before


def test_changing_the_password_ends_the_other_sessions(web_engine: Engine, district: District) -> None:
    from datetime import UTC, datetime

    from sqlalchemy.orm import sessionmaker

    from api.web.throttle import reset_sign_in_attempts
    from escrow.access.audit import OPERATOR
    from escrow.access.callers import Role
    from escrow.access.users import create_user

    with sessionmaker(web_engine).begin() as session:
        create_user(session, name="周洁", role=Role.REGULATOR, password="first-password", jurisdictions=["371302"],
                    by=OPERATOR, now=datetime.now(UTC))  # fmt: skip
    reset_sign_in_attempts()
    app = create_app(web_engine)
    with TestClient(app, follow_redirects=False) as first, TestClient(app, follow_redirects=False) as second:
        sign_in(first, "周洁", "first-password")
        sign_in(second, "周洁", "first-password")
        account = first.get("/console/account")
        short = first.post(
            "/console/account/password",
            data={"current": "first-password", "new": "short", "csrf_token": csrf_of(account.text)},
        )
        assert short.status_code == 422 and 'id="new-error"' in short.text
        done = first.post(
            "/console/account/password",
            data={"current": "first-password", "new": "second-password", "csrf_token": csrf_of(account.text)},
        )
        assert done.status_code == 200
        assert first.get("/console/dashboard").status_code == 200
        assert second.get("/console/dashboard").status_code == 303  # signed out
        assert sign_in(second, "周洁", "second-password").status_code == 303


def test_signing_out_ends_the_session(client: TestClient) -> None:
    sign_in(client, PEOPLE["zhang"])
    page = client.get("/console/account")
    cookie = client.cookies["escrow_session"]
    assert client.post("/console/sign-out", data={"csrf_token": csrf_of(page.text)}).status_code == 303
    client.cookies.set("escrow_session", cookie)  # a copy of the cookie signs no one in any more
    assert client.get("/console/dashboard").status_code == 303


def test_docs_load_swagger_ui_from_the_app_itself(client: TestClient) -> None:
    html = client.get("/docs").text
    assert "/console/static/vendor/swagger-ui/swagger-ui-bundle.js" in html and "cdn" not in html.lower()
    assert '"validatorUrl": null' in html
    assert client.get("/console/static/vendor/swagger-ui/swagger-ui-bundle.js").status_code == 200


@pytest.mark.parametrize("role", ["regulator", "institution"])
def test_the_users_command_creates_a_person_who_signs_in(role: str, web_engine: Engine, district: District) -> None:
    from typer.testing import CliRunner

    from escrow.cli import app as cli
    from escrow.settings import get_settings

    url = web_engine.url.render_as_string(hide_password=False)
    where = ["--jurisdiction", "371302"] if role == "regulator" else ["--institution", str(district.institutions["B"])]
    name = f"赵{role[:3]}"
    get_settings.cache_clear()  # read again, with the console's database
    try:
        result = CliRunner().invoke(
            cli, ["users", "create", "--role", role, "--name", name, *where], env={"ESCROW_DATABASE_URL": url}
        )
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    password = result.output.strip().splitlines()[-1].split(": ")[-1]
    with TestClient(create_app(web_engine), follow_redirects=False) as client:
        from api.web.throttle import reset_sign_in_attempts

        reset_sign_in_attempts()
        assert sign_in(client, name, password).status_code == 303
    assert UUID(result.output.split()[1])
