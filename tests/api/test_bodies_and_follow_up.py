"""Every field sent is used or refused; a parent follows a refund to the bank's execution; the regulator
filters and searches institutions; alerts name the institution and speak in yuan."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from api.app import create_app
from escrow.access.callers import Role
from escrow.rules.calendar import local_date
from escrow.rules.policy import NATIONAL_DEFAULTS
from escrow.supervision.alerts import get_alert, raise_alerts
from escrow.supervision.risks import money_idle
from tests.factories import account_number, credit_code, phone, regulator
from tests.flows.test_consumption import AT, contract_with_money
from tests.flows.test_consumption import J as J_JINGAN
from tests.flows.test_contract_life import J, Life


@pytest.fixture
def life(engine: Engine) -> Iterator[Life]:
    with TestClient(create_app(engine)) as client:
        yield Life(client, engine)


def _school(life: Life, name: str) -> tuple[str, str, str]:
    body = {
        "name": name,
        "credit_code": credit_code(),
        "jurisdiction_code": J,
        "custody_bank": "bank_pudong",
        "custody_account": account_number(),
    }
    inst = life.post(life.regulator, "/institutions", body, 201)
    return inst["id"], inst["credit_code"], life.token(role=Role.INSTITUTION, institution_id=inst["id"])


def test_a_refund_is_followed_to_the_banks_execution_and_its_reason_kept(life: Life) -> None:
    inst, _, school = _school(life, "Follow-up Piano")
    base = f"/institutions/{inst}"
    course = life.post(
        school, f"{base}/courses", {"name": "Piano", "category": "non_subject", "unit_price_fen": 100}, 201
    )
    mother = phone()
    body = {
        "course_id": course["id"],
        "guardian": {"name": "Lin Yu", "phone": mother},
        "student_name": "Lin Xi",
        "hours_bought": 10,
        "term_start": (
            local_date(datetime.now(UTC)) - timedelta(days=10)
        ).isoformat(),  # under way, within the policy's month
        "term_end": (local_date(datetime.now(UTC)) + timedelta(days=60)).isoformat(),
    }
    contract = life.post(school, f"{base}/contracts", body, 201)
    k = f"{base}/contracts/{contract['id']}"
    life.post(school, f"{k}/collections", {"amount_fen": 1_000, "bank_reference": "FU-1"}, 201)
    parent = life.token(role=Role.PARENT, guardian_phone=mother)
    request = life.post(parent, f"{k}/refund-requests", {"reason": "moving"}, 201)
    approval = f"{base}/refund-requests/{request['id']}/approval"
    life.post(school, approval, {"reason": "moving", "extra": 1}, 422)  # a field it does not use is refused
    approved = life.post(school, approval, {"reason": "family moves to Hangzhou"})
    assert (approved["status"], approved["decision_reason"]) == ("approved", "family moves to Hangzhou")
    (paying,) = approved["payments"]
    assert (paying["amount_fen"], paying["status"], paying["executed_at"]) == (1_000, "instructed", None)
    life.post(life.bank, f"{base}/payouts/{paying['payout_id']}/execution", {"bank_reference": "FU-OUT"})
    (seen,) = life.get(parent, f"{base}/refund-requests?contract_id={contract['id']}")["items"]
    assert (seen["payments"][0]["status"], seen["payments"][0]["executed_at"] is not None) == ("executed", True)
    # a route that takes no body refuses one rather than drop it
    life.post(school, f"{base}/payouts", {"amount_fen": 5}, 422)


def test_institutions_are_filtered_by_status_and_searched_by_name_or_credit_code(life: Life) -> None:
    held, held_code, _ = _school(life, "Searchable Dance Studio")
    active, _, _ = _school(life, "Searchable Chess Club")
    life.post(life.regulator, f"/institutions/{held}/holds", {"reason": "complaints"}, 201)

    def ids(query: str) -> set[str]:
        return {i["id"] for i in life.get(life.regulator, f"/institutions?{query}&limit=200")["items"]}

    assert held in ids("status=on_hold") and active not in ids("status=on_hold")
    assert ids("q=searchable") >= {held, active} and ids("q=dance studio") & {held, active} == {held}
    assert ids(f"q={held_code[:12]}") & {held, active} == {held}
    assert ids("q=100%25") & {held, active} == set()  # a wildcard in the search is a character, not a pattern
    auth = {"Authorization": f"Bearer {life.regulator}"}
    assert life.client.get("/institutions?status=frozen", headers=auth).status_code == 422
    misspelt = life.client.get("/institutions?statuss=on_hold", headers=auth)  # refused, not ignored
    assert (misspelt.status_code, misspelt.json()["problems"][0]["field"]) == (422, "query.statuss")


def test_an_alert_names_the_institution_and_states_the_amount_in_yuan(db: sessionmaker[Session]) -> None:
    inst, _, _, _ = contract_with_money(db, hours=10)  # 1,000.00 yuan held at school "S", no class ever given
    now = AT + timedelta(days=2)
    with db.begin() as s:
        (finding,) = [f for f in money_idle(s, now, lambda _: NATIONAL_DEFAULTS) if f.institution_id == inst]
        (alert_id,) = raise_alerts(s, [finding], rules=[], now=now, run_id=None)
        alert = get_alert(s, caller=regulator(J_JINGAN), alert_id=alert_id)
    assert alert["detail"] == "S: 1000.00 yuan held for families, no class ever recorded"
    assert alert["evidence"] == {"days": None, "held_fen": 100_000}
