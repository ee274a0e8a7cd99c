"""The balance check runs once per journal transaction at commit; new postings are checked per statement.

Revision ID: 0011_check_per_transaction
Revises: 0010_transaction_legs_index
Create Date: 2026-11-29

Until now the deferred check ran for the transaction and again for each of its postings, three queries
each: nine for a collection, 900 for a batch of 100 (about 14 of the batch's 75 ms at commit,
bench/bulk_import.py). The same invariants now hold with one query per transaction at commit and one
per statement that writes postings:
- at commit, each new journal transaction has exactly the postings it declares (legs), summing to
  zero per currency;
- after each statement that writes postings, every posting belongs to a transaction recorded by this
  database transaction, and no transaction has more postings than it declares. So a posting added to
  an old transaction is refused, and so is one added after the commit check was run early
  (SET CONSTRAINTS ALL IMMEDIATE): the transaction would then have more than it declares.
"""

from importlib.util import module_from_spec, spec_from_file_location
from pathlib import Path

from alembic import op

revision = "0011_check_per_transaction"
down_revision = "0010_transaction_legs_index"
branch_labels = None
depends_on = None

UPGRADE = r"""
CREATE OR REPLACE FUNCTION ledger_check_transaction() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    legs integer;
    unbalanced_currency text;
    unbalanced_total bigint;
BEGIN
    IF NEW.created_at IS DISTINCT FROM now() THEN
        RAISE EXCEPTION 'journal transaction % was recorded by another database transaction; '
            'postings may only be written together with their transaction', NEW.id
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    SELECT coalesce(sum(n), 0), (array_agg(currency ORDER BY currency) FILTER (WHERE total <> 0))[1],
           (array_agg(total ORDER BY currency) FILTER (WHERE total <> 0))[1]
      INTO legs, unbalanced_currency, unbalanced_total
      FROM (SELECT currency, count(*) AS n, sum(amount) AS total FROM posting
             WHERE institution_id = NEW.institution_id AND transaction_id = NEW.id GROUP BY currency) AS c;
    IF legs < 2 THEN
        RAISE EXCEPTION 'journal transaction % has % posting(s); it needs at least two', NEW.id, legs
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    IF unbalanced_currency IS NOT NULL THEN
        RAISE EXCEPTION 'journal transaction % is unbalanced: its % postings sum to % fen, not zero',
            NEW.id, unbalanced_currency, unbalanced_total USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    IF legs <> NEW.legs THEN
        RAISE EXCEPTION 'journal transaction % says it has % postings but has %', NEW.id, NEW.legs, legs
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    RETURN NULL;
END $$;

CREATE FUNCTION ledger_check_new_postings() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    bad record;
BEGIN
    SELECT n.transaction_id, t.created_at, t.legs, w.written INTO bad
      FROM (SELECT DISTINCT institution_id, transaction_id FROM new_posting) AS n
      JOIN journal_transaction t ON t.institution_id = n.institution_id AND t.id = n.transaction_id
     CROSS JOIN LATERAL (SELECT count(*) AS written FROM posting p
                          WHERE p.institution_id = n.institution_id AND p.transaction_id = n.transaction_id) AS w
     WHERE t.created_at IS DISTINCT FROM now() OR w.written > t.legs
     LIMIT 1;
    IF NOT FOUND THEN
        RETURN NULL;
    ELSIF bad.created_at IS DISTINCT FROM now() THEN
        RAISE EXCEPTION 'journal transaction % was recorded by another database transaction; '
            'postings may only be written together with their transaction', bad.transaction_id
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    RAISE EXCEPTION 'journal transaction % says it has % postings but has %', bad.transaction_id, bad.legs,
        bad.written USING ERRCODE = 'integrity_constraint_violation';
END $$;

DROP TRIGGER posting_balanced ON posting;
CREATE TRIGGER posting_belongs_to_new_transaction AFTER INSERT ON posting
    REFERENCING NEW TABLE AS new_posting FOR EACH STATEMENT EXECUTE FUNCTION ledger_check_new_postings();
"""

DOWNGRADE = r"""
DROP TRIGGER posting_belongs_to_new_transaction ON posting;
DROP FUNCTION ledger_check_new_postings();
CREATE CONSTRAINT TRIGGER posting_balanced AFTER INSERT ON posting
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION ledger_check_transaction();
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    # the function as 0009_transaction_legs left it, which serves the per-posting trigger too
    path = Path(__file__).with_name("0009_transaction_legs.py")
    spec = spec_from_file_location("transaction_legs", path)
    assert spec is not None and spec.loader is not None
    legs = module_from_spec(spec)
    spec.loader.exec_module(legs)
    op.execute(legs._check_transaction(legs_declared=True))
    op.execute(DOWNGRADE)
