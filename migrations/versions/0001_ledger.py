"""The double-entry ledger and the invariants that protect it.

Revision ID: 0001_ledger
Revises:
Create Date: 2026-11-29

Every table carries institution_id and every key and foreign key leads with it, so no
transaction can touch two institutions and the schema can be distributed by institution.
"""

from alembic import op

revision = "0001_ledger"
down_revision = None
branch_labels = None
depends_on = None

TABLES = """
CREATE TABLE account (
    institution_id uuid NOT NULL,
    id uuid NOT NULL,
    code text NOT NULL CHECK (length(code) BETWEEN 1 AND 200),
    normal_side text NOT NULL CHECK (normal_side IN ('debit', 'credit')),
    currency text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    allow_negative boolean NOT NULL DEFAULT false,
    balance bigint NOT NULL DEFAULT 0,
    version bigint NOT NULL DEFAULT 0,
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT account_pkey PRIMARY KEY (institution_id, id),
    CONSTRAINT account_code_key UNIQUE (institution_id, code),
    CONSTRAINT account_currency_key UNIQUE (institution_id, id, currency),
    CONSTRAINT account_balance_not_negative CHECK (allow_negative OR balance >= 0)
);

CREATE TABLE journal_transaction (
    institution_id uuid NOT NULL,
    id uuid NOT NULL,
    kind text NOT NULL CHECK (kind ~ '^[a-z][a-z0-9_]{0,62}$'),
    effective_at timestamptz NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    reverses_id uuid,
    reversal_reason text,
    metadata jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(metadata) = 'object'),
    CONSTRAINT journal_transaction_pkey PRIMARY KEY (institution_id, id),
    CONSTRAINT journal_transaction_reverses_fkey
        FOREIGN KEY (institution_id, reverses_id) REFERENCES journal_transaction (institution_id, id),
    CONSTRAINT journal_transaction_reversal_has_reason
        CHECK ((reverses_id IS NULL) = (reversal_reason IS NULL)
               AND (reversal_reason IS NULL OR length(btrim(reversal_reason)) > 0))
);
CREATE UNIQUE INDEX journal_transaction_reversed_once
    ON journal_transaction (institution_id, reverses_id) WHERE reverses_id IS NOT NULL;
CREATE INDEX journal_transaction_by_effective_at ON journal_transaction (institution_id, effective_at);

CREATE TABLE posting (
    institution_id uuid NOT NULL,
    id bigint GENERATED ALWAYS AS IDENTITY,
    transaction_id uuid NOT NULL,
    account_id uuid NOT NULL,
    currency text NOT NULL,
    amount bigint NOT NULL CONSTRAINT posting_amount_not_zero CHECK (amount <> 0),
    CONSTRAINT posting_pkey PRIMARY KEY (institution_id, id),
    CONSTRAINT posting_transaction_fkey
        FOREIGN KEY (institution_id, transaction_id) REFERENCES journal_transaction (institution_id, id),
    -- the posting's currency is the account's: no conversion hides inside a transaction
    CONSTRAINT posting_account_fkey
        FOREIGN KEY (institution_id, account_id, currency) REFERENCES account (institution_id, id, currency)
);
CREATE INDEX posting_by_transaction ON posting (institution_id, transaction_id);
CREATE INDEX posting_by_account ON posting (institution_id, account_id, id);

CREATE TABLE idempotency_record (
    institution_id uuid NOT NULL,
    caller text NOT NULL CHECK (length(caller) BETWEEN 1 AND 200),
    key text NOT NULL CHECK (length(key) BETWEEN 1 AND 255),
    request_hash text NOT NULL,
    transaction_id uuid,
    result jsonb,
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT idempotency_record_pkey PRIMARY KEY (institution_id, caller, key),
    CONSTRAINT idempotency_record_transaction_fkey
        FOREIGN KEY (institution_id, transaction_id) REFERENCES journal_transaction (institution_id, id)
);
"""

FUNCTIONS = r"""
CREATE FUNCTION ledger_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: % refused; correct a mistake with a reversing transaction',
        TG_TABLE_NAME, TG_OP USING ERRCODE = 'integrity_constraint_violation';
END $$;

-- Deferred to commit: the transaction has at least two postings, they sum to zero per currency,
-- and they were all written by the database transaction that recorded it (no later additions).
CREATE FUNCTION ledger_check_transaction() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    txn_id uuid;
    recorded_at timestamptz;
    legs integer;
    unbalanced record;
BEGIN
    IF TG_TABLE_NAME = 'posting' THEN
        txn_id := NEW.transaction_id;
    ELSE
        txn_id := NEW.id;
    END IF;
    SELECT created_at INTO recorded_at FROM journal_transaction
     WHERE institution_id = NEW.institution_id AND id = txn_id;
    IF recorded_at IS DISTINCT FROM now() THEN
        RAISE EXCEPTION 'journal transaction % was recorded by another database transaction; '
            'postings may only be written together with their transaction', txn_id
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    SELECT count(*) INTO legs FROM posting
     WHERE institution_id = NEW.institution_id AND transaction_id = txn_id;
    IF legs < 2 THEN
        RAISE EXCEPTION 'journal transaction % has % posting(s); it needs at least two', txn_id, legs
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    FOR unbalanced IN
        SELECT currency, sum(amount) AS total FROM posting
         WHERE institution_id = NEW.institution_id AND transaction_id = txn_id
         GROUP BY currency HAVING sum(amount) <> 0
    LOOP
        RAISE EXCEPTION 'journal transaction % is unbalanced: its % postings sum to % fen, not zero',
            txn_id, unbalanced.currency, unbalanced.total USING ERRCODE = 'integrity_constraint_violation';
    END LOOP;
    RETURN NULL;
END $$;

-- Cached balances follow postings inside the same statement, read on the account's normal side;
-- the CHECK on account then refuses any posting that overdraws a non-negative account.
CREATE FUNCTION ledger_apply_postings() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE account AS a
       SET balance = a.balance + CASE a.normal_side WHEN 'debit' THEN d.delta ELSE -d.delta END,
           version = a.version + 1
      FROM (SELECT institution_id, account_id, sum(amount) AS delta
              FROM new_posting GROUP BY institution_id, account_id) AS d
     WHERE a.institution_id = d.institution_id AND a.id = d.account_id;
    RETURN NULL;
END $$;

CREATE FUNCTION ledger_guard_account() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'accounts are never deleted (account %)', OLD.id
            USING ERRCODE = 'integrity_constraint_violation';
    ELSIF TG_OP = 'INSERT' THEN
        IF NEW.balance <> 0 OR NEW.version <> 0 THEN
            RAISE EXCEPTION 'account % must open with balance 0; money arrives only by postings', NEW.id
                USING ERRCODE = 'integrity_constraint_violation';
        END IF;
    ELSE
        IF (NEW.institution_id, NEW.id, NEW.code, NEW.normal_side, NEW.currency, NEW.allow_negative,
            NEW.created_at) IS DISTINCT FROM (OLD.institution_id, OLD.id, OLD.code, OLD.normal_side,
            OLD.currency, OLD.allow_negative, OLD.created_at) THEN
            RAISE EXCEPTION 'account % may not change its identity, side, currency or floor', OLD.id
                USING ERRCODE = 'integrity_constraint_violation';
        END IF;
        -- depth 1 is a direct UPDATE; the posting trigger's own UPDATE runs at depth 2
        IF (NEW.balance, NEW.version) IS DISTINCT FROM (OLD.balance, OLD.version)
           AND pg_trigger_depth() < 2 THEN
            RAISE EXCEPTION 'the balance of account % changes only through postings', OLD.id
                USING ERRCODE = 'integrity_constraint_violation';
        END IF;
    END IF;
    RETURN NEW;
END $$;
"""

TRIGGERS = """
CREATE TRIGGER posting_append_only BEFORE UPDATE OR DELETE ON posting
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change();
CREATE TRIGGER posting_no_truncate BEFORE TRUNCATE ON posting
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change();
CREATE TRIGGER journal_transaction_append_only BEFORE UPDATE OR DELETE ON journal_transaction
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change();
CREATE TRIGGER journal_transaction_no_truncate BEFORE TRUNCATE ON journal_transaction
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change();
CREATE TRIGGER account_no_truncate BEFORE TRUNCATE ON account
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change();

CREATE CONSTRAINT TRIGGER journal_transaction_balanced AFTER INSERT ON journal_transaction
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION ledger_check_transaction();
CREATE CONSTRAINT TRIGGER posting_balanced AFTER INSERT ON posting
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION ledger_check_transaction();

CREATE TRIGGER posting_moves_balance AFTER INSERT ON posting
    REFERENCING NEW TABLE AS new_posting FOR EACH STATEMENT EXECUTE FUNCTION ledger_apply_postings();
CREATE TRIGGER account_guard BEFORE INSERT OR UPDATE OR DELETE ON account
    FOR EACH ROW EXECUTE FUNCTION ledger_guard_account();
"""


def upgrade() -> None:
    op.execute(TABLES)
    op.execute(FUNCTIONS)
    op.execute(TRIGGERS)


def downgrade() -> None:
    op.execute("DROP TABLE idempotency_record, posting, journal_transaction, account")
    op.execute(
        "DROP FUNCTION ledger_refuse_change, ledger_check_transaction, ledger_apply_postings, ledger_guard_account"
    )
