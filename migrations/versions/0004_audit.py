"""The audit trail: append-only records, hash-chained per institution (one chain for district-wide acts).

Revision ID: 0004_audit
Revises: 0003_consumption
Create Date: 2026-11-29
"""

from alembic import op

revision = "0004_audit"
down_revision = "0003_consumption"
branch_labels = None
depends_on = None

UPGRADE = """
CREATE TABLE audit_record (
    chain uuid NOT NULL,
    position bigint NOT NULL CHECK (position > 0),
    occurred_at timestamptz NOT NULL,
    actor text NOT NULL,
    role text NOT NULL,
    action text NOT NULL CHECK (action ~ '^[a-z_]+\\.[a-z_]+$'),
    object_type text NOT NULL,
    object_id text NOT NULL,
    before jsonb,
    after jsonb,
    prev_hash text NOT NULL CHECK (prev_hash ~ '^[0-9a-f]{64}$'),
    hash text NOT NULL CHECK (hash ~ '^[0-9a-f]{64}$'),
    PRIMARY KEY (chain, position)
);
CREATE INDEX audit_record_by_object ON audit_record (object_type, object_id);

-- where each chain ends, so that removing the last records is seen too
CREATE TABLE audit_chain_head (
    chain uuid PRIMARY KEY,
    position bigint NOT NULL,
    hash text NOT NULL
);

CREATE TRIGGER audit_record_append_only BEFORE UPDATE OR DELETE ON audit_record
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change();
CREATE TRIGGER audit_record_no_truncate BEFORE TRUNCATE ON audit_record
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change();
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute("DROP TABLE audit_chain_head, audit_record")
