"""Audit notes are plain rows that the database joins to their chains at commit.

Revision ID: 0021_audit_at_commit
Revises: 0020_ledger_values
Create Date: 2026-12-02

Until now a transaction's notes were appended by `SELECT audit_append(...)` as it committed: one round
trip while its accounts were still locked, after the ledger's write (every collection of one institution
queues on its custody cash account, so those round trips bound its throughput). Now a use case writes its
notes as rows of audit_note in any statement (the ledger writes them with its own) and a deferred
constraint trigger links them at COMMIT, exactly as audit_append did: the chain's head locked, each note's
position and previous hash put into its canonical JSON and hashed. The records and chain heads are those
escrow/access/audit.py has always verified; nothing already written changes. A note lives only inside
its own transaction: the trigger deletes it as it links it.

- audit_note: id (the order notes were written), xact (the writing transaction, so the trigger reads its
  own notes only, by the key), chain, the canonical JSON and its two slots.
- audit_append is dropped: nothing calls it.
- The rules files are applied again (their functions and trigger for audit_note).
"""

import hashlib
import importlib.util
from pathlib import Path
from types import ModuleType

from alembic import op

revision = "0021_audit_at_commit"
down_revision = "0020_ledger_values"
branch_labels = None
depends_on = None

RULES = Path(__file__).resolve().parent.parent / "sql"
RULE_FILES = ("ledger.sql", "audit.sql", "statements.sql")  # in this order: the others use ledger.sql's
# the files as this migration applies them; a later edit comes with a migration that applies them again
# and records their new hash (tests/db/test_rules_files.py holds the latest one to the files)
RULES_SHA256 = "e29eac7be06d2f9c63fe9357239c55a1ff22de109763e1da49fd15c01e5eaeb0"

UPGRADE = """
CREATE TABLE audit_note (
    id bigint GENERATED ALWAYS AS IDENTITY,
    xact xid8 NOT NULL DEFAULT pg_current_xact_id(),
    chain uuid NOT NULL,
    canonical text NOT NULL,
    position_slot text NOT NULL,
    prev_hash_slot text NOT NULL,
    PRIMARY KEY (xact, chain, id)
);
DROP FUNCTION audit_append(uuid, jsonb);
"""

DOWNGRADE = """
DROP TRIGGER audit_note_linked ON audit_note;
DROP FUNCTION audit_link_notes();
DROP FUNCTION audit_link_chain(xid8, uuid);
DROP TABLE audit_note;
"""


def upgrade() -> None:
    op.execute(UPGRADE)
    files = [(RULES / name).read_bytes() for name in RULE_FILES]
    # files edited since are applied by the migration that records their new hash
    if hashlib.sha256(b"".join(files)).hexdigest() == RULES_SHA256:
        for text in files:
            op.execute(text.decode("utf-8"))


def downgrade() -> None:
    op.execute(DOWNGRADE)
    op.execute(_migration("0008_audit_append").UPGRADE)  # audit_append as it was made


def _migration(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, Path(__file__).resolve().parent / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
