"""The audit trail: every change is on it, in the same transaction, and tampering is caught."""

from __future__ import annotations

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from uuid import UUID

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session, sessionmaker

from escrow.access.audit import OPERATOR, note, record_hash, verify_chains
from escrow.errors import PolicyViolation, UnbalancedTransaction
from escrow.ledger.engine import balance_of, record_entry
from escrow.ledger.model import Leg, NewEntry, credit, debit
from escrow.registry.courses import create_course
from escrow.registry.institutions import register_institution
from escrow.registry.jurisdictions import add_jurisdiction
from escrow.rules.policy import CourseCategory
from tests.factories import account_number, credit_code, regulator, school
from tests.ledger_helpers import asset, liability

J = "310117"


def school_with_courses(db: sessionmaker[Session], courses: int) -> UUID:
    with db.begin() as s:
        add_jurisdiction(s, code=J, name="Putuo District")
        inst = register_institution(
            s,
            caller=regulator(J),
            name="Audited School",
            credit_code=credit_code(),
            jurisdiction_code=J,
            custody_bank="bank_p",
            custody_account=account_number(),
            supervision_model=None,
            today=datetime.now(UTC).date(),
        )
    for n in range(courses):
        with db.begin() as s:
            create_course(
                s,
                caller=school(inst.id),
                institution_id=inst.id,
                name=f"Course {n}",
                category=CourseCategory.NON_SUBJECT,
                unit_price_fen=5_000 + n,
                guide_price_fen=None,
                today=datetime.now(UTC).date(),
            )
    return inst.id


def chain(db: sessionmaker[Session], institution: UUID) -> list[tuple[int, str, str, str]]:
    with db.begin() as s:
        return [
            tuple(r)
            for r in s.execute(
                text(  # type: ignore[misc]
                    "SELECT position, action, actor, role FROM audit_record WHERE chain = :c ORDER BY position"
                ),
                {"c": institution},
            )
        ]


def breaks_of(db: sessionmaker[Session], institution: UUID) -> list[tuple[int, str]]:
    with db.begin() as s:
        return [(b.position, b.problem) for b in verify_chains(s) if b.chain == institution]


def tamper(engine: Engine, sql: str, **params: object) -> None:
    """A superuser slipping past the append-only trigger."""
    with engine.begin() as conn:
        conn.execute(text("SET LOCAL session_replication_role = replica"))
        conn.execute(text(sql), params)


def test_every_change_is_recorded_with_who_and_as_which_role(db: sessionmaker[Session]) -> None:
    inst = school_with_courses(db, 2)
    trail = chain(db, inst)
    assert [(p, a, r) for p, a, _, r in trail] == [
        (1, "institution.registered", "regulator"),
        (2, "course.created", "institution"),
        (3, "course.created", "institution"),
    ]
    assert trail[1][2] == f"institution:{inst}"
    assert breaks_of(db, inst) == []


def test_a_refused_change_leaves_no_record(db: sessionmaker[Session]) -> None:
    inst = school_with_courses(db, 0)
    with db.begin() as s, pytest.raises(PolicyViolation):
        create_course(
            s,
            caller=school(inst),
            institution_id=inst,
            name="Overpriced",
            category=CourseCategory.SUBJECT,
            unit_price_fen=20_000,
            guide_price_fen=10_000,
            today=datetime.now(UTC).date(),
        )
    assert len(chain(db, inst)) == 1


def test_records_hashed_by_the_database_verify_as_the_application_hashes_them(
    db: sessionmaker[Session], engine: Engine
) -> None:
    """The database fills in position and previous hash and takes the SHA-256; `record_hash` must agree,
    whatever the content holds: keys named like the slots, non-ASCII text, nulls, several records at once,
    and writers racing on one chain."""
    inst = school_with_courses(db, 0)
    awkward = {"position": 99, "prev_hash": "0" * 64, "name": '张伟 "quoted" \\ back', "nested": {"a": None}}
    with db.begin() as s:
        for n in range(3):
            note(s, OPERATOR, "test.noted", institution_id=inst, object_type="thing", object_id=n, after=awkward)
        note(s, OPERATOR, "test.noted", institution_id=inst, object_type="thing", object_id="x", before=awkward)

    def one(n: int) -> None:
        with db.begin() as s:
            note(s, OPERATOR, "test.raced", institution_id=inst, object_type="thing", object_id=n)

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(one, range(20)))
    with db.begin() as s:
        rows = [dict(r) for r in s.execute(text("SELECT * FROM audit_record WHERE chain = :c"), {"c": inst}).mappings()]
    assert len(rows) == 1 + 4 + 20
    for row in rows:
        assert row["hash"] == record_hash(row | {"occurred_at": row["occurred_at"].astimezone(UTC)}), row["position"]
    assert sorted(r["position"] for r in rows) == list(range(1, 26))
    assert breaks_of(db, inst) == []


def test_an_altered_record_is_named(db: sessionmaker[Session], engine: Engine) -> None:
    inst = school_with_courses(db, 3)
    tamper(
        engine,
        "UPDATE audit_record SET after = jsonb_set(after, '{unit_price_fen}', '1') WHERE chain = :c AND position = 3",
        c=inst,
    )
    assert breaks_of(db, inst) == [(3, "its content no longer matches its hash (altered)")]


def test_a_removed_record_is_named(db: sessionmaker[Session], engine: Engine) -> None:
    inst = school_with_courses(db, 3)
    tamper(engine, "DELETE FROM audit_record WHERE chain = :c AND position = 2", c=inst)
    assert breaks_of(db, inst) == [(2, "record 2 is missing (removed)")]


def test_removing_the_last_records_is_named(db: sessionmaker[Session], engine: Engine) -> None:
    inst = school_with_courses(db, 3)
    tamper(engine, "DELETE FROM audit_record WHERE chain = :c AND position >= 3", c=inst)
    assert breaks_of(db, inst) == [(3, "the chain should run to 4 (records removed)")]


def test_swapped_records_are_named(db: sessionmaker[Session], engine: Engine) -> None:
    inst = school_with_courses(db, 3)
    # swap the contents of records 2 and 3, hashes included, so each is self-consistent
    tamper(engine, "UPDATE audit_record SET position = position + 1000 WHERE chain = :c AND position IN (2, 3)", c=inst)
    tamper(
        engine,
        "UPDATE audit_record SET position = CASE position WHEN 1002 THEN 3 ELSE 2 END"
        " WHERE chain = :c AND position > 1000",
        c=inst,
    )
    assert breaks_of(db, inst) == [(2, "does not follow the record before it (reordered or removed)")]


def test_escrow_audit_verify_reports_and_fails_on_a_break(
    db: sessionmaker[Session], engine: Engine, database_url: str
) -> None:
    inst = school_with_courses(db, 1)
    tamper(engine, "UPDATE audit_record SET actor = 'someone else' WHERE chain = :c AND position = 2", c=inst)
    env = {"ESCROW_DATABASE_URL": database_url, "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, "-m", "escrow", "audit", "verify"], env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 1
    assert f"chain {inst}: record 2 its content no longer matches its hash (altered)" in done.stdout


def test_notes_appended_with_a_posting_keep_their_order_and_leave_with_a_rollback(db: sessionmaker[Session]) -> None:
    """The ledger engine writes the notes so far with its statement; the rest are written at commit, after
    them, and the database chains them in that order. A rollback, of the transaction or of a savepoint,
    takes away exactly what it undoes."""
    inst = school_with_courses(db, 0)

    def noted(s: Session, action: str) -> None:
        note(s, OPERATOR, action, institution_id=inst, object_type="thing", object_id=action)

    def post(s: Session, *legs: Leg) -> None:
        record_entry(s, institution_id=inst, entry=NewEntry(kind="collection", legs=legs))

    with db.begin() as s:
        cash, owed = asset(s, inst, "test_cash"), liability(s, inst, "test_owed")
        noted(s, "test.before_posting")
        post(s, debit(cash.id, 100), credit(owed.id, 100))
        noted(s, "test.after_posting")
    with db() as s:
        noted(s, "test.rolled_back")
        post(s, debit(cash.id, 100), credit(owed.id, 100))
        s.rollback()
    with db.begin() as s:
        noted(s, "test.before_savepoint")
        with pytest.raises(UnbalancedTransaction), s.begin_nested():
            post(s, debit(cash.id, 100), credit(owed.id, 100))
            post(s, debit(cash.id, 100), credit(owed.id, 99))
    assert [action for _, action, _, _ in chain(db, inst)] == [
        "institution.registered",
        "test.before_posting",
        "test.after_posting",
        "test.before_savepoint",
    ]
    assert breaks_of(db, inst) == []
    with db.begin() as s:
        assert balance_of(s, institution_id=inst, account_id=cash.id) == 100
