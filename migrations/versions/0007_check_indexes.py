"""Indexes the scheduled checks read instead of the posting table.

Revision ID: 0007_check_indexes
Revises: 0006_statements
Create Date: 2026-11-30

The invariant checks sum every posting per transaction and per account, and reconciliation per account:
with the amounts (and the currency, and the transaction) in the two posting indexes, they read the
postings in index order without visiting the table, and group them as they come instead of hashing
millions of groups. The indexes keep their names and leading columns, so every lookup that used them
still does.
"""

from alembic import op

revision = "0007_check_indexes"
down_revision = "0006_statements"
branch_labels = None
depends_on = None

UPGRADE = """
DROP INDEX posting_by_transaction;
CREATE INDEX posting_by_transaction ON posting (institution_id, transaction_id, currency) INCLUDE (amount);
DROP INDEX posting_by_account;
CREATE INDEX posting_by_account ON posting (institution_id, account_id, id) INCLUDE (transaction_id, amount);
-- the latest class an institution recorded, for money held while no class is given
CREATE INDEX class_record_by_given_on ON class_record (institution_id, given_on);
"""

DOWNGRADE = """
DROP INDEX class_record_by_given_on;
DROP INDEX posting_by_account;
CREATE INDEX posting_by_account ON posting (institution_id, account_id, id);
DROP INDEX posting_by_transaction;
CREATE INDEX posting_by_transaction ON posting (institution_id, transaction_id);
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
