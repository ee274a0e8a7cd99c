"""Audit notes are rows written with the ledger's statement (or as the transaction commits), joined to
their chains by the database at COMMIT: whole chains under concurrency, nothing left by a rollback, and a
collection that leaves nothing to do after its write but commit."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import pytest
from sqlalchemy import Engine, event, text
from sqlalchemy.orm import Session, sessionmaker

from escrow.access.audit import DISTRICT, OPERATOR, note, verify_chains
from escrow.errors import InvalidRequest
from escrow.flows.collections import collect
from escrow.ids import new_id
from escrow.ledger.idempotency import IdempotencyKey, run_once
from escrow.registry.contracts import GuardianDetails, sign_contract
from escrow.registry.courses import create_course
from escrow.registry.institutions import register_institution
from escrow.registry.jurisdictions import add_jurisdiction
from escrow.rules.policy import CourseCategory
from tests.factories import account_number, credit_code, phone, regulator, school
from tests.ledger_helpers import books_problems

J = "310112"


@dataclass(frozen=True)
class School:
    institution: UUID
    contracts: list[UUID]


@pytest.fixture
def school_books(db: sessionmaker[Session]) -> School:
    """A school of its own with four contracts of 400,000 fen each."""
    today = datetime.now(UTC).date()
    with db.begin() as s:
        add_jurisdiction(s, code=J, name="Minhang District")
        inst = register_institution(
            s,
            caller=regulator(J),
            name="Chained school",
            credit_code=credit_code(),
            jurisdiction_code=J,
            custody_bank="bank_chain",
            custody_account=account_number(),
            supervision_model=None,
            today=today,
        )
        course = create_course(
            s,
            caller=school(inst.id),
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
                caller=school(inst.id),
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
            for n in range(4)
        ]
    return School(inst.id, contracts)


def collect_one(s: Session, books: School, contract: UUID, reference: str) -> UUID:
    return collect(
        s,
        caller=school(books.institution),
        institution_id=books.institution,
        contract_id=contract,
        amount_fen=100,
        bank_reference=reference,
        collected_at=None,
        idempotency_key=f"key-{reference}",
        now=datetime.now(UTC),
    ).value.id


def trail(db: sessionmaker[Session], chain: UUID) -> list[tuple[int, str, str]]:
    with db.begin() as s:
        rows = s.execute(
            text("SELECT position, action, object_id FROM audit_record WHERE chain = :c ORDER BY position"),
            {"c": chain},
        )
        return [(r.position, r.action, r.object_id) for r in rows]


def intact(db: sessionmaker[Session], *chains: UUID) -> bool:
    """Every chain verifies, its positions run 1, 2, 3 ... and no note is left waiting."""
    with db.begin() as s:
        breaks = [b for b in verify_chains(s) if b.chain in chains]
        waiting = s.scalar(text("SELECT count(*) FROM audit_note"))
    positions = [[p for p, _, _ in trail(db, chain)] for chain in chains]
    return breaks == [] and waiting == 0 and all(p == list(range(1, len(p) + 1)) for p in positions)


def test_two_threads_collecting_for_one_institution_keep_one_unbroken_chain(
    db: sessionmaker[Session], school_books: School
) -> None:
    start = threading.Barrier(2)

    def collector(n: int) -> list[UUID]:
        start.wait()
        collected = []
        for k in range(25):
            with db.begin() as s:
                collected.append(collect_one(s, school_books, school_books.contracts[n], f"T{n}-{k}"))
        return collected

    with ThreadPoolExecutor(2) as pool:
        collected = [c for ids in pool.map(collector, range(2)) for c in ids]
    registered = [o for _, action, o in trail(db, school_books.institution) if action == "collection.registered"]
    assert sorted(registered) == sorted(str(c) for c in collected)
    assert intact(db, school_books.institution)
    assert books_problems(db, school_books.institution) == []


def test_a_rolled_back_collection_leaves_no_record_no_note_and_no_gap(
    db: sessionmaker[Session], school_books: School
) -> None:
    before = trail(db, school_books.institution)
    with db() as s:
        undone = collect_one(s, school_books, school_books.contracts[0], "UNDONE")
        note(s, OPERATOR, "test.after_posting", institution_id=school_books.institution, object_type="x", object_id=1)
        s.rollback()
    with db.begin() as s:
        kept = collect_one(s, school_books, school_books.contracts[0], "KEPT")
    after = trail(db, school_books.institution)
    assert after[: len(before)] == before
    assert after[len(before) :] == [(len(before) + 1, "collection.registered", str(kept))]
    assert str(undone) not in {o for _, _, o in after}
    assert intact(db, school_books.institution)


@contextmanager
def statements(engine: Engine) -> Iterator[list[str]]:
    """Every statement sent to the database inside the block, COMMIT included."""
    sent: list[str] = []

    def executed(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        sent.append(statement)

    def committed(conn: Any) -> None:
        sent.append("COMMIT")

    event.listen(engine, "before_cursor_execute", executed)
    event.listen(engine, "commit", committed)
    try:
        yield sent
    finally:
        event.remove(engine, "before_cursor_execute", executed)
        event.remove(engine, "commit", committed)


def test_a_collection_writes_its_note_with_its_postings_and_then_only_commits(
    db: sessionmaker[Session], engine: Engine, school_books: School
) -> None:
    with statements(engine) as sent, db.begin() as s:
        collected = collect_one(s, school_books, school_books.contracts[1], "FUSED")
    postings = [n for n, statement in enumerate(sent) if "INSERT INTO posting" in statement]
    assert len(postings) == 1 and "INSERT INTO audit_note" in sent[postings[0]]
    assert sent[postings[0] + 1 :] == ["COMMIT"]
    assert trail(db, school_books.institution)[-1][1:] == ("collection.registered", str(collected))
    assert intact(db, school_books.institution)


def test_notes_made_after_a_posting_or_after_an_early_check_join_the_chain_in_order(
    db: sessionmaker[Session], school_books: School
) -> None:
    """A note made after the ledger's write is inserted as the transaction commits; SET CONSTRAINTS ALL
    IMMEDIATE links the notes so far there and then, and the later ones at commit, after them."""
    inst = school_books.institution

    def noted(s: Session, action: str) -> None:
        note(s, OPERATOR, action, institution_id=inst, object_type="thing", object_id=action)

    with db.begin() as s:
        noted(s, "test.before_collection")
        collected = collect_one(s, school_books, school_books.contracts[2], "THEN")
        noted(s, "test.after_collection")
        s.execute(text("SET CONSTRAINTS ALL IMMEDIATE"))
        assert s.scalar(text("SELECT count(*) FROM audit_note")) == 0
        noted(s, "test.after_the_check")
    assert [(a, o) for _, a, o in trail(db, inst)[-4:]] == [
        ("test.before_collection", "test.before_collection"),
        ("collection.registered", str(collected)),
        ("test.after_collection", "test.after_collection"),
        ("test.after_the_check", "test.after_the_check"),
    ]
    assert intact(db, inst)


def test_a_savepoint_takes_back_exactly_the_notes_made_inside_it(
    db: sessionmaker[Session], school_books: School
) -> None:
    """Inside a savepoint the ledger's write takes no notes (its rollback would take those made before it):
    they are written at commit, in the order they were made, less those of a rolled-back savepoint."""
    inst = school_books.institution

    def noted(s: Session, action: str) -> None:
        note(s, OPERATOR, action, institution_id=inst, object_type="thing", object_id=action)

    before = len(trail(db, inst))
    with db.begin() as s:
        noted(s, "test.before_savepoints")
        with s.begin_nested():
            noted(s, "test.in_a_released_savepoint")
            kept = collect_one(s, school_books, school_books.contracts[3], "KEPT-IN-SAVEPOINT")
        savepoint = s.begin_nested()
        noted(s, "test.in_a_rolled_back_savepoint")
        collect_one(s, school_books, school_books.contracts[3], "UNDONE-IN-SAVEPOINT")
        noted(s, "test.after_the_collection_in_it")
        savepoint.rollback()
        noted(s, "test.after_savepoints")
    assert [(a, o) for _, a, o in trail(db, inst)[before:]] == [
        ("test.before_savepoints", "test.before_savepoints"),
        ("test.in_a_released_savepoint", "test.in_a_released_savepoint"),
        ("collection.registered", str(kept)),
        ("test.after_savepoints", "test.after_savepoints"),
    ]
    assert intact(db, inst)


def test_transactions_noting_two_chains_in_opposite_orders_never_deadlock(
    db: sessionmaker[Session], school_books: School
) -> None:
    """Heads are locked chain by chain in id order at commit, whatever order the notes were made in."""
    chains = [school_books.institution, DISTRICT]
    start = threading.Barrier(2)

    def writer(n: int) -> int:
        start.wait()
        for k in range(30):
            with db.begin() as s:
                for chain in chains if n == 0 else chains[::-1]:
                    note(s, OPERATOR, "test.crossed", institution_id=chain, object_type="thing", object_id=f"{n}-{k}")
        return n

    with ThreadPoolExecutor(2) as pool:
        assert sorted(pool.map(writer, range(2))) == [0, 1]
    crossed = [o for _, a, o in trail(db, school_books.institution) if a == "test.crossed"]
    assert sorted(crossed) == sorted(f"{n}-{k}" for n in range(2) for k in range(30))
    assert intact(db, *chains)


def test_a_note_with_no_chain_of_its_own_joins_the_district_chain(db: sessionmaker[Session]) -> None:
    marker = str(new_id())
    with db.begin() as s:
        note(s, OPERATOR, "test.district", institution_id=None, object_type="thing", object_id=marker)
    assert trail(db, DISTRICT)[-1][1:] == ("test.district", marker)
    assert intact(db, DISTRICT)


def test_a_refused_step_leaves_its_notes_unwritten_even_if_the_caller_commits(
    db: sessionmaker[Session], school_books: School
) -> None:
    """A collection notes before it posts (so the note goes with the postings); should the posting be
    refused after that, its notes go with its key, as if rolled back, even if the caller commits."""
    inst = school_books.institution
    before = trail(db, inst)

    def refused_after_noting(s: Session) -> str:
        note(s, OPERATOR, "test.refused", institution_id=inst, object_type="thing", object_id=1)
        raise InvalidRequest("refused after noting")

    with db.begin() as s:
        note(s, OPERATOR, "test.before", institution_id=inst, object_type="thing", object_id=1)
        with pytest.raises(InvalidRequest):
            run_once(
                s,
                institution_id=inst,
                key=IdempotencyKey("test", "refused-after-noting"),
                request={"n": 1},
                perform=lambda: refused_after_noting(s),
                recall=lambda stored: "",
                remember=lambda value: {"value": value},
            )
    assert [a for _, a, _ in trail(db, inst)[len(before) :]] == ["test.before"]
    assert intact(db, inst)
