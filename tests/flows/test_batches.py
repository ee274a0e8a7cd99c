"""Collections imported in bulk, on real PostgreSQL: a batch is whole or nothing, each item idempotent,
every item checked as `collect()` checks it (counting the batch's own earlier items)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session, sessionmaker

from api.app import create_app
from escrow.access.callers import Role
from escrow.access.tokens import issue_token
from escrow.errors import InstitutionOnHold, InvalidRequest
from escrow.flows.batches import MAX_ITEMS, BatchItem, BatchKeyReused, BatchRefused, Imported, import_collections
from escrow.flows.collections import collect
from escrow.flows.holds import place_hold
from escrow.ids import new_id
from escrow.registry.contracts import GuardianDetails, sign_contract
from escrow.registry.courses import create_course
from escrow.registry.institutions import register_institution
from escrow.registry.jurisdictions import add_jurisdiction
from escrow.rules.policy import CourseCategory
from tests.factories import account_number, credit_code, phone, regulator, school
from tests.ledger_helpers import balances, books_problems

J = "310115"
PRICE = 400_000  # 40 hours at 100 yuan


@dataclass(frozen=True)
class Books:
    institution: UUID
    contracts: list[UUID]


@pytest.fixture
def books(db: sessionmaker[Session]) -> Books:
    """A school of its own with ten contracts of 400,000 fen each."""
    today = datetime.now(UTC).date()
    with db.begin() as s:
        add_jurisdiction(s, code=J, name="Putuo District")
        inst = register_institution(
            s,
            caller=regulator(J),
            name="Batch school",
            credit_code=credit_code(),
            jurisdiction_code=J,
            custody_bank="bank_batch",
            custody_account=account_number(),
            supervision_model=None,
            today=today,
        )
        owner = school(inst.id)
        course = create_course(
            s,
            caller=owner,
            institution_id=inst.id,
            name="Maths",
            category=CourseCategory.SUBJECT,
            unit_price_fen=10_000,
            guide_price_fen=10_000,
            today=today,
        )
        contracts = [
            sign_contract(
                s,
                caller=owner,
                institution_id=inst.id,
                course_id=course.id,
                guardian=GuardianDetails(f"Guardian {n}", phone()),
                student_name=f"Student {n}",
                hours_bought=40,
                bonus_hours=0,
                term_start=today,
                term_end=today + timedelta(days=60),
                now=datetime.now(UTC),
            ).contract.id
            for n in range(10)
        ]
    return Books(inst.id, contracts)


def run(db: sessionmaker[Session], books: Books, items: list[BatchItem]) -> list[Imported]:
    with db.begin() as s:
        return import_collections(
            s, caller=school(books.institution), institution_id=books.institution, items=items, now=datetime.now(UTC)
        )


def item(contract: UUID, n: int, amount: int = 100, key: str | None = None) -> BatchItem:
    return BatchItem(contract, amount, f"REF-{n}", None, key or f"key-{n}")


def state(db: sessionmaker[Session], books: Books) -> dict[str, Any]:
    """Everything a batch could change in the school's books."""
    with db.begin() as s:
        counts = {
            table: s.scalar(text(f"SELECT count(*) FROM {table} WHERE institution_id = :i"), {"i": books.institution})
            for table in ("collection", "journal_transaction", "posting", "idempotency_record")
        }
        counts["audit"] = s.scalar(
            text("SELECT count(*) FROM audit_record WHERE chain = :i AND action = 'collection.registered'"),
            {"i": books.institution},
        )
    return counts | {"balances": balances(db, books.institution)}


def test_a_batch_of_500_posts_500_collections_and_the_books_balance(db: sessionmaker[Session], books: Books) -> None:
    items = [item(books.contracts[n % 10], n, amount=100 + n) for n in range(500)]
    done = run(db, books, items)
    assert [d.index for d in done] == list(range(500)) and not any(d.replayed for d in done)
    after = state(db, books)
    assert (after["collection"], after["journal_transaction"], after["posting"], after["audit"]) == (
        500,
        500,
        1000,
        500,
    )
    total = sum(100 + n for n in range(500))
    owed = sum(v for code, v in after["balances"].items() if code.startswith("prepaid:"))
    assert after["balances"]["custody_cash"] == owed == total  # custody equals what families are owed
    assert books_problems(db, books.institution) == []  # every transaction balances; caches equal postings
    with db.begin() as s:  # written exactly as `collect()` writes a collection
        kinds = s.execute(
            text(
                "SELECT j.kind, j.metadata, j.effective_at = c.collected_at, r.key = 'key-7',"
                " r.result ->> 'collection_id' = c.id::text FROM collection c"
                " JOIN journal_transaction j ON j.institution_id = c.institution_id AND j.id = c.transaction_id"
                " JOIN idempotency_record r"
                " ON r.institution_id = c.institution_id AND r.transaction_id = c.transaction_id"
                " WHERE c.institution_id = :i AND c.bank_reference = 'REF-7'"
            ),
            {"i": books.institution},
        ).one()
    assert kinds == (
        "collection",
        {"contract_id": str(books.contracts[7]), "bank_reference": "REF-7"},
        True,
        True,
        True,
    )


def test_a_replayed_batch_changes_nothing_and_returns_the_first_results(
    db: sessionmaker[Session], books: Books
) -> None:
    items = [item(books.contracts[n % 3], n) for n in range(20)]
    first = run(db, books, items)
    before = state(db, books)
    again = run(db, books, items)
    assert state(db, books) == before
    assert all(d.replayed for d in again)
    assert [(d.collection_id, d.transaction_id) for d in again] == [(d.collection_id, d.transaction_id) for d in first]


def test_a_batch_mixing_new_and_replayed_items(db: sessionmaker[Session], books: Books) -> None:
    run(db, books, [item(books.contracts[0], n) for n in range(5)])
    done = run(db, books, [item(books.contracts[0], n) for n in range(3, 8)])
    assert [d.replayed for d in done] == [True, True, False, False, False]
    assert state(db, books)["collection"] == 8
    assert books_problems(db, books.institution) == []


def test_a_key_of_the_single_route_replays_in_a_batch_and_the_other_way_round(
    db: sessionmaker[Session], books: Books
) -> None:
    at = datetime(2026, 1, 5, 9, 30, tzinfo=UTC)
    with db.begin() as s:
        single = collect(
            s,
            caller=school(books.institution),
            institution_id=books.institution,
            contract_id=books.contracts[0],
            amount_fen=500,
            bank_reference="ONE-1",
            collected_at=at,
            idempotency_key="single-1",
            now=datetime.now(UTC),
        ).value
    batch = run(
        db,
        books,
        [
            BatchItem(books.contracts[0], 500, "ONE-1", at, "single-1"),
            BatchItem(books.contracts[1], 700, "TWO", None, "b"),
        ],
    )
    assert (batch[0].replayed, batch[0].collection_id, batch[0].transaction_id) == (
        True,
        single.id,
        single.transaction_id,
    )
    with db.begin() as s:
        back = collect(
            s,
            caller=school(books.institution),
            institution_id=books.institution,
            contract_id=books.contracts[1],
            amount_fen=700,
            bank_reference="TWO",
            collected_at=None,
            idempotency_key="b",
            now=datetime.now(UTC),
        )
    assert back.replayed and back.value.id == batch[1].collection_id
    assert state(db, books)["collection"] == 2


def test_a_key_reused_for_a_different_item_refuses_the_batch_naming_it(db: sessionmaker[Session], books: Books) -> None:
    run(db, books, [item(books.contracts[0], 1)])
    before = state(db, books)
    with pytest.raises(BatchKeyReused, match="item 1: idempotency key 'key-1' was first used") as refused:
        run(db, books, [item(books.contracts[0], 2), item(books.contracts[0], 1, amount=999)])
    assert refused.value.problems == [p for p in refused.value.problems if p.startswith("item 1:")]
    assert state(db, books) == before


BAD: dict[str, tuple[Any, str]] = {
    "over the price, counting the batch": (lambda b: [item(b.contracts[0], 9, amount=200_001)], "above its price"),
    "a reference already collected": (lambda b: [item(b.contracts[1], 0, key="other")], "was already collected"),
    "a reference twice in the batch": (
        lambda b: [BatchItem(b.contracts[1], 100, "REF-X", None, "x1")],
        "appears more than once",
    ),
    "an unknown contract": (lambda b: [item(new_id(), 9)], "does not exist or is outside your scope"),
    "a contract no longer active": (lambda b: [item(b.contracts[9], 9)], "is closed; it takes no more collections"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_one_bad_item_refuses_the_whole_batch_and_names_it(db: sessionmaker[Session], books: Books, case: str) -> None:
    run(db, books, [item(books.contracts[0], 0, amount=200_000)])  # REF-0, half of contract 0's price
    with db.begin() as s:  # no use case closes a contract with nothing collected; set it as if one had
        s.execute(text("UPDATE contract SET status = 'closed' WHERE id = :c"), {"c": books.contracts[9]})
    before = state(db, books)
    make, reason = BAD[case]
    good = [item(books.contracts[0], 10, amount=100_000), BatchItem(books.contracts[1], 100, "REF-X", None, "x0")]
    bad = make(books)
    with pytest.raises(BatchRefused, match=reason) as refused:
        run(db, books, [*good, *bad])
    assert any(p.startswith("item 2:") and reason in p for p in refused.value.problems), refused.value.problems
    assert not any(p.startswith(("item 0:", "item 1:")) for p in refused.value.problems)
    assert state(db, books) == before


def test_a_hold_refuses_new_items_but_replays_still_answer(db: sessionmaker[Session], books: Books) -> None:
    first = [item(books.contracts[0], n) for n in range(2)]
    run(db, books, first)
    with db.begin() as s:
        place_hold(s, caller=regulator(J), institution_id=books.institution, reason="audit", now=datetime.now(UTC))
    before = state(db, books)
    with pytest.raises(InstitutionOnHold, match=r"items 2\b"):
        run(db, books, [*first, item(books.contracts[0], 5)])
    assert all(d.replayed for d in run(db, books, first))
    assert state(db, books) == before


def test_a_batch_holds_1_to_1000_items(db: sessionmaker[Session], books: Books) -> None:
    with pytest.raises(InvalidRequest, match="1 to 1000 items"):
        run(db, books, [item(books.contracts[n % 10], n) for n in range(MAX_ITEMS + 1)])
    with pytest.raises(InvalidRequest, match="1 to 1000 items"):
        run(db, books, [])


def test_racing_batches_never_exceed_the_contract_price(db: sessionmaker[Session], books: Books) -> None:
    start = threading.Barrier(6)

    def batch(n: int) -> bool:
        items = [item(books.contracts[0], 10 * n), item(books.contracts[0], 10 * n + 1, amount=99_900)]
        start.wait()
        try:
            run(db, books, items)  # 100,000 fen a batch: four fit in the price of 400,000
            return True
        except BatchRefused:
            return False

    with ThreadPoolExecutor(6) as pool:
        assert sum(pool.map(batch, range(6))) == 4
    assert balances(db, books.institution)["custody_cash"] == PRICE
    assert books_problems(db, books.institution) == []


@pytest.fixture
def client(engine: Engine) -> Iterator[TestClient]:
    with TestClient(create_app(engine)) as c:
        yield c


def test_over_http_201_then_200_replayed_and_problems_by_index(
    client: TestClient, db: sessionmaker[Session], books: Books
) -> None:
    with db.begin() as s:
        _, token = issue_token(s, role=Role.INSTITUTION, institution_id=books.institution)
    path, auth = f"/institutions/{books.institution}/collection-batches", {"Authorization": f"Bearer {token}"}
    body = {
        "items": [
            {
                "contract_id": str(books.contracts[n]),
                "amount_fen": 100,
                "bank_reference": f"H-{n}",
                "idempotency_key": f"h{n}",
            }
            for n in range(3)
        ]
    }
    created = client.post(path, json=body, headers=auth)
    assert created.status_code == 201, created.text
    assert [i["replayed"] for i in created.json()["items"]] == [False] * 3
    replayed = client.post(path, json=body, headers=auth)
    assert (replayed.status_code, replayed.headers["Idempotent-Replayed"]) == (200, "true")
    assert replayed.json()["items"] == [i | {"replayed": True} for i in created.json()["items"]]
    body["items"].append({**body["items"][0], "idempotency_key": "h9"})  # a bank slip collected already
    refused = client.post(path, json=body, headers=auth)
    assert refused.status_code == 422 and refused.json()["code"] == "batch_refused"
    assert refused.json()["problems"] == [refused.json()["problems"][0]] and "item 3:" in refused.json()["problems"][0]
    too_many = {"items": [body["items"][0]] * (MAX_ITEMS + 1)}
    assert client.post(path, json=too_many, headers=auth).status_code == 422


def test_escrow_import_reads_a_csv_in_batches_and_again_changes_nothing(
    database_url: str, db: sessionmaker[Session], books: Books, tmp_path: Path
) -> None:
    rows = ["contract_id,amount_fen,bank_reference,collected_at,idempotency_key"]
    rows += [f"{books.contracts[n % 10]},100,CSV-{n},2026-01-05T09:30:00+08:00,csv-{n}" for n in range(1200)]
    file = tmp_path / "collections.csv"
    file.write_text("\n".join(rows) + "\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ESCROW_")} | {"ESCROW_DATABASE_URL": database_url}
    command = [sys.executable, "-m", "escrow", "import", str(file)]
    first = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    assert first.returncode == 0, first.stderr
    assert "imported 1200 collections, 0 already imported" in first.stdout
    before = state(db, books)
    assert before["collection"] == 1200
    again = subprocess.run([*command, "--institution", str(books.institution)], env=env, capture_output=True, text=True)
    assert again.returncode == 0 and "imported 0 collections, 1200 already imported" in again.stdout
    assert state(db, books) == before
    file.write_text(rows[0] + f"\n{books.contracts[0]},100,CSV-0,,csv-new\n")
    refused = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    assert refused.returncode == 2 and "item 0: bank reference CSV-0 was already collected" in refused.stderr
    assert state(db, books) == before


def test_keys_with_quotes_braces_and_backslashes_are_kept_exactly(db: sessionmaker[Session], books: Books) -> None:
    keys = ['q"uote', "back\\slash", "{brace,comma}", "NULL"]
    first = run(db, books, [item(books.contracts[0], n, key=k) for n, k in enumerate(keys)])
    again = run(db, books, [item(books.contracts[0], n, key=k) for n, k in enumerate(keys)])
    assert [d.replayed for d in again] == [True] * 4
    assert [d.collection_id for d in again] == [d.collection_id for d in first]
    with db.begin() as s:
        stored = s.scalars(
            text("SELECT key FROM idempotency_record WHERE institution_id = :i ORDER BY key"), {"i": books.institution}
        ).all()
    assert sorted(stored) == sorted(keys)
