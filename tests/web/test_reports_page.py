"""The reports page shows what the JSON reports say, now and as of a past instant."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlalchemy.orm import sessionmaker

from escrow.access.callers import Role
from escrow.access.tokens import issue_token
from escrow.rules.calendar import BUSINESS_TZ
from tests.web.conftest import sign_in
from tests.web.district import LANSHAN, PEOPLE

COLUMNS = {
    "held-funds": ("held", "releasable", "payout_pending", "refund_payable", "custody_cash"),
    "aging": ("held", "days_0_30", "days_31_90", "days_over_90"),
}


def _shown(html: str) -> dict[str, int]:
    """Each total on the page (data-total="kind:column"), in fen."""
    found = re.findall(r'data-total="([a-z-]+:[a-z_0-9]+)">([-0-9,.]+)<', html)
    return {key: int(value.replace(",", "").replace(".", "")) for key, value in found}


def _reported(client: TestClient, token: str, as_of: datetime | None) -> dict[str, int]:
    params = {"as_of": as_of.isoformat()} if as_of else {}
    auth = {"Authorization": f"Bearer {token}"}
    held = client.get("/reports/held-funds", params=params, headers=auth).json()["total"]
    aging = client.get("/reports/held-funds/aging", params=params, headers=auth).json()["total"]
    return {
        **{f"held-funds:{c}": held[f"{c}_fen"] for c in COLUMNS["held-funds"]},
        **{f"aging:{c}": aging[f"{c}_fen"] for c in COLUMNS["aging"]},
    }


def test_the_reports_page_shows_the_json_reports_figures_now_and_as_of_an_instant(
    client: TestClient, web_engine: Engine
) -> None:
    with sessionmaker(web_engine).begin() as session:
        _, token = issue_token(session, role=Role.REGULATOR, jurisdictions=[LANSHAN], label="reports page")
    sign_in(client, PEOPLE["zhang"])
    now_page = client.get("/console/reports")
    assert now_page.status_code == 200
    assert _shown(now_page.text) == _reported(client, token, None)
    assert _shown(now_page.text)["aging:held"] == _shown(now_page.text)["held-funds:held"] > 0
    instant = datetime.now(UTC).astimezone(BUSINESS_TZ).replace(microsecond=0)  # after the district's books
    past_page = client.get("/console/reports", params={"as_of": instant.strftime("%Y-%m-%dT%H:%M:%S")})
    assert _shown(past_page.text) == _reported(client, token, instant)
    assert _shown(past_page.text)["aging:held"] > 0
    before_any = client.get("/console/reports", params={"as_of": "2020-01-01T09:00"})
    assert set(_shown(before_any.text).values()) == {0}
