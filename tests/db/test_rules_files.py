"""The database's rules are read in migrations/sql/: a migrated database defines exactly what those files do.

Applying the files again to the migrated database (inside a transaction that is rolled back) must change
no function and no trigger, and every function and trigger of the schema must be one the files define.
An edit to a file reaches databases already migrated only through a new migration that applies the files,
so the latest migration that applies them records their SHA-256.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, text

from escrow.db.database import alembic_config

RULES = Path(__file__).resolve().parents[2] / "migrations" / "sql"
RULE_FILES = ("ledger.sql", "audit.sql", "statements.sql")

_FUNCTIONS = """
SELECT p.proname, pg_get_functiondef(p.oid) FROM pg_proc p
WHERE p.pronamespace = current_schema()::regnamespace ORDER BY p.proname
"""
_TRIGGERS = """
SELECT t.tgname, pg_get_triggerdef(t.oid) FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
WHERE c.relnamespace = current_schema()::regnamespace AND NOT t.tgisinternal ORDER BY t.tgname
"""


def _definitions(conn: Connection) -> dict[str, str]:
    """Every function and trigger of the schema, by name, as PostgreSQL prints its definition."""
    return {f"function {name}": body for name, body in conn.execute(text(_FUNCTIONS))} | {
        f"trigger {name}": body for name, body in conn.execute(text(_TRIGGERS))
    }


def _drift(conn: Connection) -> list[str]:
    """The functions and triggers that applying the rules files would change (the caller rolls back)."""
    before = _definitions(conn)
    for name in RULE_FILES:  # DDL is transactional: the caller's rollback undoes this
        conn.exec_driver_sql((RULES / name).read_text(encoding="utf-8").replace("%", "%%"))
    after = _definitions(conn)
    return sorted(name for name in before.keys() | after.keys() if before.get(name) != after.get(name))


def _named(pattern: str) -> set[str]:
    found: set[str] = set()
    for name in RULE_FILES:
        found |= set(re.findall(pattern, (RULES / name).read_text(encoding="utf-8"), re.IGNORECASE))
    return found


def test_the_migrated_database_defines_what_the_rules_files_say(engine: Engine) -> None:
    with engine.connect() as conn:
        drift = _drift(conn)
        conn.rollback()
    assert drift == [], "these differ between the migrated database and migrations/sql/"


def test_a_rule_changed_by_a_migration_but_not_in_its_file_is_found(engine: Engine) -> None:
    with engine.connect() as conn:
        conn.exec_driver_sql(
            "CREATE OR REPLACE FUNCTION ledger_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$"
            " BEGIN RETURN NULL; END $$"
        )
        conn.exec_driver_sql("DROP TRIGGER account_no_truncate ON account")
        drift = _drift(conn)
        conn.rollback()
    assert drift == ["function ledger_refuse_change", "trigger account_no_truncate"]


def test_every_function_and_trigger_of_the_schema_is_in_the_rules_files(engine: Engine) -> None:
    with engine.connect() as conn:
        defined = set(_definitions(conn))
    in_files = {f"function {name}" for name in _named(r"CREATE OR REPLACE FUNCTION (\w+)\(")} | {
        f"trigger {name}" for name in _named(r"CREATE (?:OR REPLACE )?(?:CONSTRAINT )?TRIGGER (\w+) ")
    }
    assert defined == in_files


def test_the_latest_migration_that_applies_the_rules_files_applies_them_as_they_are(database_url: str) -> None:
    script = ScriptDirectory.from_config(alembic_config(database_url))
    recorded = next(
        revision.module.RULES_SHA256 for revision in script.walk_revisions() if hasattr(revision.module, "RULES_SHA256")
    )
    files = hashlib.sha256(b"".join((RULES / name).read_bytes() for name in RULE_FILES)).hexdigest()
    assert files == recorded, (
        "migrations/sql/ changed since the last migration that applies it: add a migration that applies the"
        f" files to databases already migrated, with RULES_SHA256 = {files!r}"
    )
