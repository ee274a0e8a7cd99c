"""A console form given only spaces where a reason or note is needed is refused beside that field, with
the page it was on, and changes nothing; a reason that is kept is kept without its surrounding spaces."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from uuid import UUID

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text
from sqlalchemy.orm import sessionmaker

from escrow.flows.holds import place_hold
from escrow.supervision.alerts import Finding, Severity, raise_alerts
from tests.factories import regulator
from tests.web.conftest import csrf_of, sign_in
from tests.web.district import LANSHAN, PEOPLE, District, add_school

SPACES = "   \t  "


@pytest.fixture(scope="module")
def school(web_engine: Engine, district: District) -> UUID:
    """A school of 张敏's district of its own, so that what other tests do to A and B does not matter here."""
    with sessionmaker(web_engine).begin() as session:
        return add_school(session, district, "forms", "育才学堂", LANSHAN, families=1, now=datetime.now(UTC))


@pytest.fixture
def signed_in(client: TestClient) -> Iterator[TestClient]:
    sign_in(client, PEOPLE["zhang"])
    yield client


def _count(web_engine: Engine, sql: str, **params: object) -> object:
    with web_engine.connect() as conn:
        return conn.scalar(text(sql), params)


def _audit(web_engine: Engine, chain: UUID) -> object:
    return _count(web_engine, "SELECT count(*) FROM audit_record WHERE chain = :c", c=chain)


def _beside(html: str, field: str) -> bool:
    """The error is told beside the field, and the field points to it."""
    return f'id="{field}-error"' in html and "请填写此项" in html and f'aria-describedby="{field}-error' in html


def test_a_hold_with_a_reason_of_spaces_is_refused_beside_the_field(
    signed_in: TestClient, school: UUID, web_engine: Engine
) -> None:
    page = signed_in.get(f"/console/institutions/{school}")
    before = _audit(web_engine, school)
    refused = signed_in.post(
        f"/console/institutions/{school}/holds", data={"reason": SPACES, "csrf_token": csrf_of(page.text)}
    )
    assert refused.status_code == 422 and _beside(refused.text, "hold-reason")
    assert _count(web_engine, "SELECT count(*) FROM hold WHERE institution_id = :i", i=school) == 0
    assert _audit(web_engine, school) == before


def test_lifting_a_hold_with_a_reason_of_spaces_is_refused_and_a_kept_reason_is_stripped(
    signed_in: TestClient, school: UUID, web_engine: Engine
) -> None:
    with sessionmaker(web_engine).begin() as session:
        hold = place_hold(
            session, caller=regulator(LANSHAN), institution_id=school, reason="核查", now=datetime.now(UTC)
        ).id
    page = signed_in.get(f"/console/institutions/{school}")
    before = _audit(web_engine, school)
    refused = signed_in.post(
        f"/console/institutions/{school}/holds/{hold}/lift",
        data={"reason": SPACES, "csrf_token": csrf_of(page.text)},
    )
    assert refused.status_code == 422 and _beside(refused.text, f"lift-{hold}")
    assert _count(web_engine, "SELECT lifted_at FROM hold WHERE id = :h", h=hold) is None
    assert _count(web_engine, "SELECT status FROM institution WHERE id = :i", i=school) == "on_hold"
    assert _audit(web_engine, school) == before
    lifted = signed_in.post(
        f"/console/institutions/{school}/holds/{hold}/lift",
        data={"reason": "  已核实，恢复拨付  ", "csrf_token": csrf_of(page.text)},
    )
    assert lifted.status_code == 303
    assert _count(web_engine, "SELECT lift_reason FROM hold WHERE id = :h", h=hold) == "已核实，恢复拨付"


def test_closing_with_a_reason_of_spaces_is_refused_beside_the_field_on_the_preview(
    signed_in: TestClient, school: UUID, web_engine: Engine
) -> None:
    preview = signed_in.get(f"/console/institutions/{school}/close")
    key = preview.text.split('name="key" value="')[1].split('"')[0]
    before = _audit(web_engine, school)
    refused = signed_in.post(
        f"/console/institutions/{school}/close",
        data={"reason": SPACES, "key": key, "csrf_token": csrf_of(preview.text)},
    )
    assert (
        refused.status_code == 422 and _beside(refused.text, "close-reason") and 'id="closure-preview"' in refused.text
    )
    assert _count(web_engine, "SELECT status FROM institution WHERE id = :i", i=school) != "closing"
    assert _audit(web_engine, school) == before


def test_staff_with_a_name_of_spaces_is_refused_beside_the_field(
    signed_in: TestClient, school: UUID, web_engine: Engine
) -> None:
    page = signed_in.get(f"/console/institutions/{school}")
    refused = signed_in.post(
        f"/console/institutions/{school}/staff",
        data={"name": SPACES, "password": "long-enough-password", "csrf_token": csrf_of(page.text)},
    )
    assert (
        refused.status_code == 422 and 'id="staff-name-error"' in refused.text and "姓名为1至60个字符" in refused.text
    )
    assert _count(web_engine, "SELECT count(*) FROM app_user WHERE institution_id = :i", i=school) == 0


def test_resolving_a_dispute_with_a_note_of_spaces_is_refused_beside_the_note(
    signed_in: TestClient, district: District, web_engine: Engine
) -> None:
    a, contract = district.institutions["A"], district.contracts["A0"]
    page = signed_in.get(f"/console/institutions/{a}/contracts/{contract}")
    refused = signed_in.post(
        f"/console/institutions/{a}/classes/{district.disputed_class}/resolve",
        data={"outcome": "uphold", "note": SPACES, "key": "spaces", "csrf_token": csrf_of(page.text)},
    )
    assert refused.status_code == 422 and _beside(refused.text, f"note-{district.disputed_class}")
    assert _count(web_engine, "SELECT status FROM class_record WHERE id = :c", c=district.disputed_class) == "disputed"


def test_an_alert_note_of_spaces_is_refused_beside_the_note_in_its_row(
    signed_in: TestClient, school: UUID, web_engine: Engine
) -> None:
    finding = Finding("money_idle", Severity.YELLOW, school, "forms", "idle", {"days": 15, "held_fen": 600_000})
    with sessionmaker(web_engine).begin() as session:
        (alert,) = raise_alerts(session, [finding], rules=[], now=datetime.now(UTC), run_id=None)
    page = signed_in.get("/console/alerts")
    for headers in ({"HX-Request": "true"}, {}):  # htmx swaps the row in place; without script, the whole list
        refused = signed_in.post(
            f"/console/alerts/{alert}/acknowledge",
            data={"note": SPACES, "csrf_token": csrf_of(page.text)},
            headers=headers,
        )
        assert refused.status_code == 422 and _beside(refused.text, f"note-{alert}")
        assert refused.text.lstrip().startswith("<li") == bool(headers)
    assert _count(web_engine, "SELECT state FROM alert WHERE id = :a", a=alert) == "open"
