"""Migration 0013 on books made before it: each account gets its kind and contract from its code, and the
way back restores the schema and rules as they were."""

from __future__ import annotations

from collections.abc import Iterator
from uuid import UUID, uuid4

import pytest
from alembic import command
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

from escrow.db.database import alembic_config
from tests.factories import account_number, credit_code, phone

BEFORE = "0011_check_per_transaction"
OLD_ACCOUNT = (  # an account as opened before 0013: no kind, no contract
    "INSERT INTO account (institution_id, id, code, normal_side, currency) VALUES (:i, :a, :c, :s, 'CNY')"
)
AFTER = "0013_typed_states"


@pytest.fixture
def old_books(database_url: str) -> Iterator[Engine]:
    """A database of its own, migrated only to 0011."""
    server = make_url(database_url)
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    name = f"{server.database}_kinds"
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    engine = create_engine(server.set(database=name))
    try:
        migrate(engine, BEFORE)
        yield engine
    finally:
        engine.dispose()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def migrate(engine: Engine, revision: str, *, down: bool = False) -> None:
    with engine.connect() as conn:
        config = alembic_config(engine.url.render_as_string(hide_password=False))
        config.attributes["connection"] = conn
        (command.downgrade if down else command.upgrade)(config, revision)
        conn.commit()


def definitions(engine: Engine) -> dict[str, str]:
    with engine.connect() as conn:
        rules = conn.execute(
            text(
                "SELECT 'function ' || proname, pg_get_functiondef(oid) FROM pg_proc"
                " WHERE pronamespace = current_schema()::regnamespace"
                " UNION ALL SELECT 'trigger ' || tgname, pg_get_triggerdef(oid) FROM pg_trigger WHERE NOT tgisinternal"
                " UNION ALL SELECT 'constraint ' || conname, pg_get_constraintdef(oid) FROM pg_constraint"
                "  WHERE connamespace = current_schema()::regnamespace"
                " UNION ALL SELECT 'column ' || table_name || '.' || column_name, data_type"
                "  FROM information_schema.columns WHERE table_schema = current_schema()"
                " UNION ALL SELECT 'index ' || indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema()"
            )
        ).all()
    return {name: definition for name, definition in rules}


def seed_old_books(engine: Engine) -> tuple[UUID, UUID]:
    """An institution with its five accounts, a contract with its prepaid account and a refund owed."""
    inst, contract, course, guardian, prepaid, refund = (uuid4() for _ in range(6))
    accounts = [
        (uuid4(), code, side)
        for code, side in (
            ("custody_cash", "debit"),
            ("reserve_cash", "debit"),
            ("releasable", "credit"),
            ("payout_pending", "credit"),
            ("reserve_deposit", "credit"),
        )
    ] + [(prepaid, f"prepaid:{contract}", "credit"), (refund, f"refund_payable:{contract}", "credit")]
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO jurisdiction (code, name) VALUES ('320106', 'Qinhuai')"))
        conn.execute(
            text(
                "INSERT INTO institution (id, name, credit_code, jurisdiction_code, supervision_model, custody_bank,"
                " custody_account) VALUES (:i, 'Old school', :cc, '320106', 'custody', 'bank_o', :acct)"
            ),
            {"i": inst, "cc": credit_code(), "acct": account_number()},
        )
        for account_id, code, side in accounts:
            conn.execute(text(OLD_ACCOUNT), {"i": inst, "a": account_id, "c": code, "s": side})
        conn.execute(
            text(
                "INSERT INTO course (institution_id, id, name, category, unit_price_fen)"
                " VALUES (:i, :c, 'Piano', 'non_subject', 10000)"
            ),
            {"i": inst, "c": course},
        )
        conn.execute(
            text("INSERT INTO guardian (id, phone, name) VALUES (:g, :p, 'Zhou Min')"), {"g": guardian, "p": phone()}
        )
        conn.execute(
            text(
                "INSERT INTO contract (institution_id, id, course_id, guardian_id, student_name, hours_bought,"
                " unit_price_fen, price_fen, term_start, term_end, policy_jurisdiction, prepaid_account_id)"
                " VALUES (:i, :k, :c, :g, 'Zhou Le', 10, 10000, 100000, '2026-09-01', '2026-11-01', '320106', :p)"
            ),
            {"i": inst, "k": contract, "c": course, "g": guardian, "p": prepaid},
        )
    return inst, contract


def test_accounts_made_before_0013_get_their_kind_and_contract_from_their_code(old_books: Engine) -> None:
    inst, contract = seed_old_books(old_books)
    migrate(old_books, AFTER)
    with old_books.connect() as conn:
        rows = conn.execute(
            text("SELECT code, kind, contract_id FROM account WHERE institution_id = :i ORDER BY code"), {"i": inst}
        ).all()
    assert [tuple(r) for r in rows] == [
        ("custody_cash", "custody_cash", None),
        ("payout_pending", "payout_pending", None),
        (f"prepaid:{contract}", "prepaid", contract),
        (f"refund_payable:{contract}", "refund_payable", contract),
        ("releasable", "releasable", None),
        ("reserve_cash", "reserve_cash", None),
        ("reserve_deposit", "reserve_deposit", None),
    ]


def test_a_family_account_without_its_contract_stops_the_migration(old_books: Engine) -> None:
    inst, _ = seed_old_books(old_books)
    with old_books.begin() as conn:
        conn.execute(text(OLD_ACCOUNT), {"i": inst, "a": uuid4(), "c": f"prepaid:{uuid4()}", "s": "credit"})
    with pytest.raises(Exception, match="account_contract_by_kind"):
        migrate(old_books, AFTER)


def test_0013_down_again_leaves_the_schema_and_rules_as_0011_made_them(old_books: Engine) -> None:
    seed_old_books(old_books)
    before = definitions(old_books)
    migrate(old_books, AFTER)
    assert definitions(old_books) != before
    migrate(old_books, BEFORE, down=True)
    assert definitions(old_books) == before
