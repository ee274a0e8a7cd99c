"""A journal transaction records how many postings it has, and the deferred check holds it to that.

Revision ID: 0009_transaction_legs
Revises: 0008_audit_append
Create Date: 2026-11-29

With the count on the transaction, the invariant checks can tell that every transaction still has its
postings from one pass over the postings and one over the transactions, without grouping millions of
postings by transaction (escrow/checks.py). Existing transactions are counted from their postings.
"""

from alembic import op

revision = "0009_transaction_legs"
down_revision = "0008_audit_append"
branch_labels = None
depends_on = None


def _check_transaction(*, legs_declared: bool) -> str:
    """The deferred check of 0001_ledger, and (legs_declared) the transaction held to its count of legs."""
    declared_select = ", t.legs INTO recorded_at, declared" if legs_declared else " INTO recorded_at"
    declared_check = (
        """
    IF legs <> declared THEN
        RAISE EXCEPTION 'journal transaction % says it has % postings but has %', txn_id, declared, legs
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;"""
        if legs_declared
        else ""
    )
    return f"""
CREATE OR REPLACE FUNCTION ledger_check_transaction() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    txn_id uuid;
    recorded_at timestamptz;
    declared integer;
    legs integer;
    unbalanced record;
BEGIN
    IF TG_TABLE_NAME = 'posting' THEN
        txn_id := NEW.transaction_id;
    ELSE
        txn_id := NEW.id;
    END IF;
    SELECT t.created_at{declared_select} FROM journal_transaction t
     WHERE t.institution_id = NEW.institution_id AND t.id = txn_id;
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
    END LOOP;{declared_check}
    RETURN NULL;
END $$;
"""


# existing transactions are counted from their postings (the append-only trigger set aside to do it)
UPGRADE = f"""
ALTER TABLE journal_transaction ADD COLUMN legs smallint;
ALTER TABLE journal_transaction DISABLE TRIGGER journal_transaction_append_only;
UPDATE journal_transaction t SET legs = c.n
FROM (SELECT institution_id, transaction_id, count(*) AS n FROM posting GROUP BY institution_id, transaction_id) c
WHERE c.institution_id = t.institution_id AND c.transaction_id = t.id;
ALTER TABLE journal_transaction ENABLE TRIGGER journal_transaction_append_only;
ALTER TABLE journal_transaction ALTER COLUMN legs SET NOT NULL,
    ADD CONSTRAINT journal_transaction_legs CHECK (legs >= 2);
{_check_transaction(legs_declared=True)}
"""

DOWNGRADE = f"""
{_check_transaction(legs_declared=False)}
ALTER TABLE journal_transaction DROP COLUMN legs;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
