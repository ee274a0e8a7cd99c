"""Custody bank statements, their lines, and what each line matched in the ledger.

Revision ID: 0006_statements
Revises: 0005_alerts
Create Date: 2026-11-29
"""

from alembic import op

revision = "0006_statements"
down_revision = "0005_alerts"
branch_labels = None
depends_on = None

UPGRADE = """
-- a statement names its account: one institution per custody account at a bank
ALTER TABLE institution ADD CONSTRAINT institution_custody_account_key UNIQUE (custody_bank, custody_account);

CREATE TABLE bank_statement (
    institution_id uuid NOT NULL REFERENCES institution (id),
    id uuid NOT NULL,
    statement_date date NOT NULL,
    account text NOT NULL,
    currency text NOT NULL CHECK (currency = 'CNY'),
    opening_fen bigint NOT NULL,
    closing_fen bigint NOT NULL,
    line_count integer NOT NULL CHECK (line_count >= 0),
    content_hash text NOT NULL CHECK (content_hash ~ '^[0-9a-f]{64}$'),
    source_format text NOT NULL CHECK (source_format IN ('csv', 'mt940', 'camt053')),
    imported_by text NOT NULL,
    imported_at timestamptz NOT NULL DEFAULT now(),
    -- reconciliation state, rewritten by each reconcile run
    reconciled_at timestamptz,
    ledger_closing_fen bigint,
    family_owed_fen bigint,
    unmatched_ledger jsonb NOT NULL DEFAULT '[]',
    CONSTRAINT bank_statement_pkey PRIMARY KEY (institution_id, id),
    -- one statement per custody account and day: a second, different one is refused, not merged
    CONSTRAINT bank_statement_day_key UNIQUE (institution_id, statement_date)
);
CREATE INDEX bank_statement_by_date ON bank_statement (statement_date);

CREATE TABLE statement_line (
    institution_id uuid NOT NULL,
    id uuid NOT NULL,
    statement_id uuid NOT NULL,
    position integer NOT NULL CHECK (position >= 1),
    value_date date NOT NULL,
    amount_fen bigint NOT NULL CHECK (amount_fen <> 0),
    reference text NOT NULL CHECK (reference <> ''),
    counterparty text NOT NULL DEFAULT '',
    memo text NOT NULL DEFAULT '',
    CONSTRAINT statement_line_pkey PRIMARY KEY (institution_id, id),
    CONSTRAINT statement_line_position_key UNIQUE (institution_id, statement_id, position),
    CONSTRAINT statement_line_statement_fkey
        FOREIGN KEY (institution_id, statement_id) REFERENCES bank_statement (institution_id, id)
);

-- a ledger cash movement matches at most one statement line; a line may sum several movements
CREATE TABLE statement_match (
    institution_id uuid NOT NULL,
    transaction_id uuid NOT NULL,
    line_id uuid NOT NULL,
    how text NOT NULL CHECK (how IN ('one_to_one', 'many_to_one')),
    matched_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT statement_match_pkey PRIMARY KEY (institution_id, transaction_id),
    CONSTRAINT statement_match_line_fkey
        FOREIGN KEY (institution_id, line_id) REFERENCES statement_line (institution_id, id),
    CONSTRAINT statement_match_transaction_fkey
        FOREIGN KEY (institution_id, transaction_id) REFERENCES journal_transaction (institution_id, id)
);
CREATE INDEX statement_match_by_line ON statement_match (institution_id, line_id);

-- what the bank said is evidence: lines are never changed or removed
CREATE TRIGGER statement_line_append_only BEFORE UPDATE OR DELETE ON statement_line
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change();
CREATE TRIGGER statement_line_no_truncate BEFORE TRUNCATE ON statement_line
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change();
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute("DROP TABLE statement_match, statement_line, bank_statement")
    op.execute("ALTER TABLE institution DROP CONSTRAINT institution_custody_account_key")
