"""Regulator reports, worked through on books built by the use cases at known instants.

Jurisdiction J (330106):
- X, K1: 1,200.00 on Mar 1 and 800.00 on Apr 15 for 20 hours; 5 hours released Apr 21.
- X, K2: 1,000.00 on Mar 10 for 10 hours; 2 hours released Apr 21, the rest refunded Apr 26;
  the 700.00 released is instructed to the school Apr 28 (payout pending).
- Y, K3: collections 91, 90, 31 and 30 days before Sep 30 16:00; 6 of its 50 hours released Sep 29.
Jurisdiction OTHER (330108):
- Z, K4: 500.00 on Mar 5.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from itertools import count
from uuid import UUID, uuid4

import pytest
from fastapi.testclient import TestClient
from openpyxl import load_workbook
from openpyxl.cell.cell import Cell
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from api.app import create_app
from escrow.access.callers import Role
from escrow.access.tokens import issue_token
from escrow.db.records import Contract
from escrow.errors import Forbidden, NotFound
from escrow.flows.classes import confirm_class, record_class
from escrow.flows.collections import collect
from escrow.flows.payouts import request_payout
from escrow.flows.refunds import decide_refund, request_refund
from escrow.ids import new_id
from escrow.registry.contracts import GuardianDetails, sign_contract
from escrow.registry.courses import create_course
from escrow.registry.institutions import register_institution
from escrow.registry.jurisdictions import add_jurisdiction
from escrow.rules.policy import CourseCategory
from escrow.supervision.reports import Report, held_contracts, held_funds, held_funds_aging
from tests.factories import credit_code, parent, phone, regulator, school

J, OTHER = "330106", "330108"
KEYS = count(1)
SIGNED = datetime(2025, 2, 20, 1, tzinfo=UTC)
BEFORE = datetime(2025, 2, 28, tzinfo=UTC)  # before any collection
BETWEEN = datetime(2025, 3, 20, tzinfo=UTC)  # after the first collections, before the second of K1
AFTER = datetime(2025, 5, 1, tzinfo=UTC)  # after the releases, the refund and the payout instruction
AGED = datetime(2025, 9, 30, 16, tzinfo=UTC)
NOW = datetime(2026, 1, 1, tzinfo=UTC)  # any instant after all of it


@dataclass(frozen=True)
class Books:
    x: UUID
    y: UUID
    z: UUID
    k1: UUID
    k2: UUID
    k3: UUID


def _institution(s: Session, name: str, jurisdiction: str) -> tuple[UUID, UUID]:
    inst = register_institution(
        s,
        caller=regulator(jurisdiction),
        name=name,
        credit_code=credit_code(),
        jurisdiction_code=jurisdiction,
        custody_bank="bank_reports",
        custody_account=str(new_id().int)[-16:],  # the random end of a UUIDv7: no other institution has it
        supervision_model=None,
        today=SIGNED.date(),
    )
    course = create_course(
        s,
        caller=school(inst.id),
        institution_id=inst.id,
        name="Maths",
        category=CourseCategory.SUBJECT,
        unit_price_fen=10_000,
        guide_price_fen=10_000,
        today=SIGNED.date(),
    )
    return inst.id, course.id


def _contract(s: Session, inst: UUID, course: UUID, hours: int, term_start: date, signed_at: datetime) -> UUID:
    view = sign_contract(
        s,
        caller=school(inst),
        institution_id=inst,
        course_id=course,
        guardian=GuardianDetails("Chen Jing", phone()),
        student_name="Chen Xi",
        hours_bought=hours,
        bonus_hours=0,
        term_start=term_start,
        term_end=term_start + timedelta(days=80),
        now=signed_at,
    )
    return view.contract.id


def _collect(s: Session, inst: UUID, contract: UUID, fen: int, at: datetime) -> None:
    collect(
        s,
        caller=school(inst),
        institution_id=inst,
        contract_id=contract,
        amount_fen=fen,
        bank_reference=f"RPT-{new_id().hex}",
        collected_at=at,
        idempotency_key=f"rpt-{next(KEYS)}",
        now=at,
    )


def _release(s: Session, inst: UUID, contract: UUID, hours: int, confirmed_at: datetime) -> None:
    """A class given the day before, confirmed by the parent at `confirmed_at`: its share is released."""
    given = confirmed_at - timedelta(days=1)
    record = record_class(
        s,
        caller=school(inst),
        institution_id=inst,
        contract_id=contract,
        hours=hours,
        given_on=given.date(),
        now=given,
        idempotency_key=uuid4().hex,
    ).value
    guardian = parent(s, s.get_one(Contract, (inst, contract)).guardian_id)
    confirm_class(
        s,
        caller=guardian,
        institution_id=inst,
        class_id=record.id,
        idempotency_key=f"rpt-{next(KEYS)}",
        now=confirmed_at,
    )


def _refund_all(s: Session, inst: UUID, contract: UUID, at: datetime) -> None:
    """The parent asks for what is unconsumed; the school approves a day later."""
    guardian = parent(s, s.get_one(Contract, (inst, contract)).guardian_id)
    asked = request_refund(s, caller=guardian, institution_id=inst, contract_id=contract, reason="moving", now=at)
    decide_refund(
        s,
        caller=school(inst),
        institution_id=inst,
        request_id=asked.id,
        approve=True,
        reason=None,
        idempotency_key=f"rpt-{next(KEYS)}",
        now=at + timedelta(days=1),
    )


@pytest.fixture(scope="module")
def books(db: sessionmaker[Session]) -> Books:
    with db.begin() as s:
        add_jurisdiction(s, code=J, name="Xihu District")
        add_jurisdiction(s, code=OTHER, name="Binjiang District")
        x, x_course = _institution(s, "Xihu Maths", J)
        y, y_course = _institution(s, "=2+3 English", J)  # a name Excel would take for a formula
        z, z_course = _institution(s, "Binjiang Maths", OTHER)

        k1 = _contract(s, x, x_course, 20, date(2025, 3, 1), SIGNED)
        _collect(s, x, k1, 120_000, datetime(2025, 3, 1, 2, tzinfo=UTC))
        _collect(s, x, k1, 80_000, datetime(2025, 4, 15, 2, tzinfo=UTC))
        k2 = _contract(s, x, x_course, 10, date(2025, 3, 1), SIGNED)
        _collect(s, x, k2, 100_000, datetime(2025, 3, 10, 2, tzinfo=UTC))
        _release(s, x, k1, 5, datetime(2025, 4, 21, 2, tzinfo=UTC))  # 200000 * 5 / 20 = 50000
        _release(s, x, k2, 2, datetime(2025, 4, 21, 3, tzinfo=UTC))  # 100000 * 2 / 10 = 20000
        _refund_all(s, x, k2, datetime(2025, 4, 25, 2, tzinfo=UTC))  # the other 80000 to refund_payable
        request_payout(  # the released 70000 to payout_pending
            s, caller=school(x), institution_id=x, idempotency_key="rpt-payout", now=datetime(2025, 4, 28, tzinfo=UTC)
        )

        k3 = _contract(s, y, y_course, 50, date(2025, 7, 15), datetime(2025, 6, 25, tzinfo=UTC))
        for days, fen in ((91, 100_000), (90, 130_000), (31, 120_000), (30, 110_000)):
            _collect(s, y, k3, fen, AGED - timedelta(days=days))
        _release(s, y, k3, 6, AGED - timedelta(days=1))  # 460000 * 6 / 50 = 55200, from the oldest money

        k4 = _contract(s, z, z_course, 10, date(2025, 3, 1), SIGNED)
        _collect(s, z, k4, 50_000, datetime(2025, 3, 5, tzinfo=UTC))
    return Books(x, y, z, k1, k2, k3)


def by_institution(report: Report) -> dict[UUID, dict[str, int]]:
    return {row.institution_id: row.fen for row in report.institutions}


def held(**fen: int) -> dict[str, int]:
    return {"held": 0, "releasable": 0, "payout_pending": 0, "refund_payable": 0, "custody_cash": 0, **fen}


def aged(total: int, days_0_30: int = 0, days_31_90: int = 0, days_over_90: int = 0) -> dict[str, int]:
    return {"held": total, "days_0_30": days_0_30, "days_31_90": days_31_90, "days_over_90": days_over_90}


def test_held_funds_before_between_and_after(db: sessionmaker[Session], books: Books) -> None:
    with db.begin() as s:
        at = {
            when: by_institution(held_funds(s, caller=regulator(J), as_of=when, now=NOW))
            for when in (BEFORE, BETWEEN, AFTER)
        }
    assert at[BEFORE][books.x] == held()
    # K1's first 1,200.00 and K2's 1,000.00 are in custody, all of it held for the families
    assert at[BETWEEN][books.x] == held(held=220_000, custody_cash=220_000)
    # K1: 2,000.00 - 500.00 released; K2: 200.00 released, 800.00 refunded; 700.00 released sent to the bank
    assert at[AFTER][books.x] == held(held=150_000, payout_pending=70_000, refund_payable=80_000, custody_cash=300_000)
    assert at[BETWEEN][books.y] == held()


def test_custody_covers_everything_owed_at_every_instant(db: sessionmaker[Session], books: Books) -> None:
    with db.begin() as s:
        for when in (BEFORE, BETWEEN, AFTER, AGED, None):
            for row in held_funds(s, caller=regulator(J), as_of=when, now=NOW).institutions:
                owed = sum(row.fen[c] for c in ("held", "releasable", "payout_pending", "refund_payable"))
                assert row.fen["custody_cash"] == owed, (when, row.name)


def test_now_from_cached_balances_equals_the_postings_summed_as_of_now(db: sessionmaker[Session], books: Books) -> None:
    with db.begin() as s:
        cached = held_funds(s, caller=regulator(J), as_of=None, now=NOW)
        summed = held_funds(s, caller=regulator(J), as_of=NOW, now=NOW)
    assert cached.as_of == NOW
    assert by_institution(cached) == by_institution(summed)
    assert by_institution(cached)[books.y] == held(held=404_800, releasable=55_200, custody_cash=460_000)


def test_jurisdiction_totals_are_the_sums_of_their_institutions(db: sessionmaker[Session], books: Books) -> None:
    with db.begin() as s:
        report = held_funds(s, caller=regulator(J, OTHER), as_of=AGED, now=NOW)
    x, y, z = (by_institution(report)[i] for i in (books.x, books.y, books.z))
    assert report.by_jurisdiction() == {
        J: {c: x[c] + y[c] for c in report.columns},
        OTHER: {c: z[c] for c in report.columns},
    }
    assert report.by_jurisdiction()[J] == held(
        held=554_800, releasable=55_200, payout_pending=70_000, refund_payable=80_000, custody_cash=760_000
    )
    assert report.total() == held(
        held=604_800, releasable=55_200, payout_pending=70_000, refund_payable=80_000, custody_cash=810_000
    )


def test_aging_at_the_bucket_boundaries_first_in_first_out(db: sessionmaker[Session], books: Books) -> None:
    with db.begin() as s:
        y = by_institution(held_funds_aging(s, caller=regulator(J), as_of=AGED, now=NOW))[books.y]
    # 30 days old: 0-30; 31 and 90 days: 31-90; 91 days: over 90, less the 55,200 the class used up first
    assert y == aged(404_800, days_0_30=110_000, days_31_90=120_000 + 130_000, days_over_90=100_000 - 55_200)


def test_aging_as_of_earlier_instants(db: sessionmaker[Session], books: Books) -> None:
    with db.begin() as s:
        ten_days_before = by_institution(
            held_funds_aging(s, caller=regulator(J), as_of=AGED - timedelta(days=10), now=NOW)
        )
        sixty_days_before = by_institution(
            held_funds_aging(s, caller=regulator(J), as_of=AGED - timedelta(days=60), now=NOW)
        )
        x_after = by_institution(held_funds_aging(s, caller=regulator(J), as_of=AFTER, now=NOW))[books.x]
    # before the class: ages 20, 21, 80 and 81 days
    assert ten_days_before[books.y] == aged(460_000, days_0_30=230_000, days_31_90=230_000)
    # only the two oldest collected yet, 31 and 30 days old then
    assert sixty_days_before[books.y] == aged(230_000, days_0_30=130_000, days_31_90=100_000)
    # K1 used up 500.00 of the March 1,200.00 (61 days old); April's 800.00 is 16 days old; K2 holds nothing
    assert x_after == aged(150_000, days_0_30=80_000, days_31_90=70_000)


def test_aging_totals_equal_held_funds(db: sessionmaker[Session], books: Books) -> None:
    with db.begin() as s:
        for when in (BETWEEN, AFTER, AGED, None):
            funds = held_funds(s, caller=regulator(J, OTHER), as_of=when, now=NOW)
            aging = held_funds_aging(s, caller=regulator(J, OTHER), as_of=when, now=NOW)
            assert aging.as_of == funds.as_of
            for row in aging.institutions:
                assert row.fen["held"] == by_institution(funds)[row.institution_id]["held"], (when, row.name)
                assert row.fen["held"] == sum(row.fen[c] for c in aging.columns[1:]), (when, row.name)
            assert aging.by_jurisdiction()[J]["held"] == funds.by_jurisdiction()[J]["held"]


def test_drill_down_to_contracts_paged(db: sessionmaker[Session], books: Books) -> None:
    with db.begin() as s:
        first = held_contracts(s, caller=regulator(J), institution_id=books.x, as_of=AFTER, cursor=None, limit=1)
        second = held_contracts(
            s, caller=regulator(J), institution_id=books.x, as_of=AFTER, cursor=first.next_cursor, limit=1
        )
        between = held_contracts(s, caller=regulator(J), institution_id=books.x, as_of=BETWEEN, cursor=None, limit=5)
    assert first.next_cursor is not None and second.next_cursor is None
    after = {c.contract_id: (c.collected_fen, c.held_fen) for c in first.items + second.items}
    assert after == {books.k1: (200_000, 150_000), books.k2: (100_000, 0)}
    assert {c.contract_id: (c.collected_fen, c.held_fen) for c in between.items} == {
        books.k1: (120_000, 120_000),
        books.k2: (100_000, 100_000),
    }


def test_only_regulators_and_only_their_jurisdictions(db: sessionmaker[Session], books: Books) -> None:
    with db.begin() as s:
        other = held_funds(s, caller=regulator(OTHER), as_of=AGED, now=NOW)
        other_aging = held_funds_aging(s, caller=regulator(OTHER), as_of=AGED, now=NOW)
        filtered = held_funds(s, caller=regulator(J), as_of=AGED, now=NOW, jurisdiction_code=OTHER)
        ours = held_funds(s, caller=regulator(J), as_of=AGED, now=NOW)
        with pytest.raises(NotFound):
            held_contracts(s, caller=regulator(OTHER), institution_id=books.x, as_of=None, cursor=None, limit=5)
        with pytest.raises(Forbidden):
            held_funds(s, caller=school(books.x), as_of=None, now=NOW)
        with pytest.raises(Forbidden):
            held_contracts(s, caller=school(books.x), institution_id=books.x, as_of=None, cursor=None, limit=5)
    assert [r.institution_id for r in other.institutions] == [books.z]
    assert [r.institution_id for r in other_aging.institutions] == [books.z]
    assert other.total() == held(held=50_000, custody_cash=50_000)
    assert (filtered.institutions, filtered.total()) == ([], held())
    assert {r.institution_id for r in ours.institutions} == {books.x, books.y}


class Http:
    def __init__(self, client: TestClient, db: sessionmaker[Session]) -> None:
        self.client = client
        with db.begin() as s:
            self.token = issue_token(s, role=Role.REGULATOR, jurisdictions=[J])[1]

    def get(self, path: str, **params: str) -> bytes:
        r = self.client.get(path, params=params, headers={"Authorization": f"Bearer {self.token}"})
        assert r.status_code == 200, r.text
        self.headers = r.headers
        return r.content


@pytest.fixture(scope="module")
def http(engine: Engine, db: sessionmaker[Session], books: Books) -> Iterator[Http]:
    with TestClient(create_app(engine)) as client:
        yield Http(client, db)


def test_held_funds_json_links_to_the_drill_down_and_on_to_transactions(http: Http, books: Books) -> None:
    body = json.loads(http.get("/reports/held-funds", as_of=AFTER.isoformat(), jurisdiction_code=J))
    x = next(i for i in body["items"] if i["institution_id"] == str(books.x))
    assert (x["held_fen"], x["payout_pending_fen"], x["refund_payable_fen"], x["custody_cash_fen"]) == (
        150_000,
        70_000,
        80_000,
        300_000,
    )
    figures = {"held_fen": 150_000, "releasable_fen": 0, "payout_pending_fen": 70_000, "refund_payable_fen": 80_000}
    figures["custody_cash_fen"] = 300_000
    assert body["jurisdictions"] == [{"jurisdiction_code": J, **figures}]  # Y holds nothing yet
    assert body["total"] == figures
    contracts = json.loads(http.get(x["contracts_path"], as_of=AFTER.isoformat()))
    k1 = next(c for c in contracts["items"] if c["contract_id"] == str(books.k1))
    assert (k1["collected_fen"], k1["held_fen"]) == (200_000, 150_000)
    transactions = json.loads(http.get(k1["transactions_path"]))
    assert sorted(t["kind"] for t in transactions["items"]) == ["class_released", "collection", "collection"]


def read_csv(raw: bytes) -> list[dict[str, str]]:
    assert raw.startswith(b"\xef\xbb\xbf"), "Excel on Chinese Windows needs the BOM to read UTF-8"
    return list(csv.DictReader(io.StringIO(raw.decode("utf-8-sig"), newline="")))


def read_xlsx(raw: bytes) -> list[dict[str, Cell]]:
    sheet = load_workbook(io.BytesIO(raw)).active
    assert sheet is not None
    header, *rows = list(sheet.iter_rows())
    return [{str(h.value): cell for h, cell in zip(header, row, strict=True)} for row in rows]


def test_held_funds_csv_parses_back_to_the_same_figures(http: Http, books: Books) -> None:
    rows = read_csv(http.get("/reports/held-funds", as_of=AGED.isoformat(), format="csv"))
    assert http.headers["content-type"] == "text/csv; charset=utf-8"
    assert http.headers["content-disposition"] == 'attachment; filename="held-funds-2025-09-30T160000+0000.csv"'
    assert [r["level"] for r in rows] == ["institution", "institution", "jurisdiction", "total"]
    y = next(r for r in rows if r["institution_id"] == str(books.y))
    assert y["institution_name"] == "'=2+3 English"  # quoted, so Excel shows it rather than computing it
    assert (y["held_fen"], y["held_yuan"], y["releasable_fen"], y["releasable_yuan"]) == (
        "404800",
        "4048.00",
        "55200",
        "552.00",
    )
    assert (y["custody_cash_fen"], y["custody_cash_yuan"], y["as_of"]) == ("460000", "4600.00", AGED.isoformat())
    for level in ("jurisdiction", "total"):
        row = next(r for r in rows if r["level"] == level)
        assert (row["held_fen"], row["held_yuan"], row["custody_cash_fen"]) == ("554800", "5548.00", "760000")
        assert (row["payout_pending_yuan"], row["refund_payable_yuan"]) == ("700.00", "800.00")


def test_aging_csv_parses_back_to_the_same_figures(http: Http, books: Books) -> None:
    rows = read_csv(http.get("/reports/held-funds/aging", as_of=AGED.isoformat(), format="csv"))
    y = next(r for r in rows if r["institution_id"] == str(books.y))
    x = next(r for r in rows if r["institution_id"] == str(books.x))
    assert [y[f"{c}_fen"] for c in ("held", "days_0_30", "days_31_90", "days_over_90")] == [
        "404800",
        "110000",
        "250000",
        "44800",
    ]
    assert (y["days_over_90_yuan"], x["days_over_90_yuan"]) == ("448.00", "1500.00")  # X's money is months old


def test_held_funds_xlsx_loads_back_to_the_same_numbers(http: Http, books: Books) -> None:
    rows = read_xlsx(http.get("/reports/held-funds", as_of=AGED.isoformat(), format="xlsx"))
    assert http.headers["content-type"] == "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    assert http.headers["content-disposition"] == 'attachment; filename="held-funds-2025-09-30T160000+0000.xlsx"'
    y = next(r for r in rows if r["institution_id"].value == str(books.y))
    assert (y["institution_name"].value, y["institution_name"].data_type) == ("=2+3 English", "s")
    assert (y["held_fen"].value, y["held_fen"].number_format) == (404_800, "0")
    assert (y["held_yuan"].value, y["held_yuan"].number_format) == (4048.0, "0.00")
    assert (y["releasable_yuan"].value, y["custody_cash_yuan"].value) == (552.0, 4600.0)
    total = next(r for r in rows if r["level"].value == "total")
    assert (total["held_fen"].value, total["held_yuan"].value, total["custody_cash_fen"].value) == (
        554_800,
        5548.0,
        760_000,
    )


def test_drill_down_xlsx_holds_every_contract(http: Http, books: Books) -> None:
    raw = http.get(f"/reports/institutions/{books.x}/contracts", as_of=AFTER.isoformat(), format="xlsx", limit="1")
    assert http.headers["content-disposition"] == (
        f'attachment; filename="contracts-{books.x}-2025-05-01T000000+0000.xlsx"'
    )
    figures = {
        r["contract_id"].value: (r["collected_fen"].value, r["held_fen"].value, r["held_yuan"].value)
        for r in read_xlsx(raw)
    }
    assert figures == {str(books.k1): (200_000, 150_000, 1500.0), str(books.k2): (100_000, 0, 0.0)}


def test_an_instant_in_any_time_zone_is_the_same_instant(http: Http, books: Books) -> None:
    body = json.loads(http.get("/reports/held-funds/aging", as_of="2025-10-01T06:00:00+14:00"))
    assert datetime.fromisoformat(body["as_of"]) == AGED
    y = next(i for i in body["items"] if i["institution_id"] == str(books.y))
    assert (y["held_fen"], y["days_0_30_fen"], y["days_over_90_fen"]) == (404_800, 110_000, 44_800)
    r = http.client.get(
        "/reports/held-funds",
        params={"as_of": "0001-01-01T00:00:00+01:00"},  # before year 1 in UTC: refused, not a 500
        headers={"Authorization": f"Bearer {http.token}"},
    )
    assert (r.status_code, r.json()["code"]) == (422, "invalid_request")
