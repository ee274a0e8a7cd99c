"""An idempotency key may name its journal transaction before the transaction is written.

Revision ID: 0020_ledger_values
Revises: 0018_console_rest
Create Date: 2026-12-01

A use case that chooses its ids first (a collection) stores the key's outcome, its transaction included,
with the claim: one round trip fewer per collection than claiming, posting, then recording the outcome.
The foreign key from the key to its transaction is therefore checked at commit, like the balance rule:
a key still cannot commit naming a transaction that does not exist.
"""

from alembic import op

revision = "0020_ledger_values"
down_revision = "0018_console_rest"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        "ALTER TABLE idempotency_record ALTER CONSTRAINT idempotency_record_transaction_fkey"
        " DEFERRABLE INITIALLY DEFERRED"
    )


def downgrade() -> None:
    op.execute("ALTER TABLE idempotency_record ALTER CONSTRAINT idempotency_record_transaction_fkey NOT DEFERRABLE")
