"""An institution whose closure has begun shows as closing (关闭中) on the dashboard, in the institutions
list (and its filter) and on its own page, until the bank has paid every family; then as closed."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlalchemy.orm import sessionmaker

from escrow.access.callers import Role
from escrow.access.tokens import issue_token
from tests.web.conftest import csrf_of, sign_in
from tests.web.district import LANSHAN, PEOPLE, District, add_school


def _listed(html: str, name: str) -> str | None:
    """The status shown beside an institution's name in the institutions table, if it is listed."""
    found = re.search(rf">{name}</a></td><td><code>[^<]*</code></td><td>[^<]*</td><td>([^<]*)</td>", html)
    return found.group(1) if found else None


def test_a_closing_institution_shows_as_closing_until_the_bank_pays_the_last_refund(
    client: TestClient, web_engine: Engine, district: District
) -> None:
    with sessionmaker(web_engine).begin() as session:
        school = add_school(session, district, "closing", "明德学堂", LANSHAN, families=1, now=datetime.now(UTC))
        _, token = issue_token(session, role=Role.REGULATOR, jurisdictions=[LANSHAN], label="closing pages")
    sign_in(client, PEOPLE["zhang"])
    preview = client.get(f"/console/institutions/{school}/close")
    key = preview.text.split('name="key" value="')[1].split('"')[0]
    closed = client.post(
        f"/console/institutions/{school}/close",
        data={"reason": "停止办学", "key": key, "csrf_token": csrf_of(preview.text)},
    )
    assert closed.status_code == 303 and closed.headers["location"].endswith("?done=closing")

    page = client.get(closed.headers["location"]).text
    assert '<span class="tag">关闭中</span>' in page and "关停已开始" in page
    assert "data-closing" in page and "尚有 ¥6,000.00 退款待付给家庭" in page
    assert f"/console/institutions/{school}/close" not in page and 'id="hold-reason"' not in page
    listing = client.get("/console/institutions?status=closing").text
    assert '<option value="closing" selected>关闭中</option>' in listing and _listed(listing, "明德学堂") == "关闭中"
    assert _listed(client.get("/console/institutions?status=closed").text, "明德学堂") is None
    dashboard = client.get("/console/dashboard").text
    assert "冻结、关闭中或已关停的机构" in dashboard
    assert re.search(r">明德学堂</a> <span class=\"tag\">关闭中</span>", dashboard)

    bank = {"Authorization": f"Bearer {token}"}
    (refund,) = [p for p in client.get(f"/institutions/{school}/payouts", headers=bank).json()["items"]]
    assert (refund["kind"], refund["amount_fen"], refund["status"]) == ("refund", 600_000, "instructed")
    paid = client.post(
        f"/institutions/{school}/payouts/{refund['id']}/execution",
        json={"bank_reference": "ICBC-CLOSE-1"},
        headers={**bank, "Idempotency-Key": "closing-pages"},
    )
    assert paid.status_code == 200
    assert client.get(f"/institutions/{school}", headers=bank).json()["status"] == "closed"
    page = client.get(f"/console/institutions/{school}").text
    assert '<span class="tag">已关停</span>' in page and "data-closing" not in page
    assert _listed(client.get("/console/institutions?status=closed").text, "明德学堂") == "已关停"
    assert re.search(r">明德学堂</a> <span class=\"tag\">已关停</span>", client.get("/console/dashboard").text)
