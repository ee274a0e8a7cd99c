"""An institution whose closure has begun is closing until every family's refund is paid.

Revision ID: 0018_console_rest
Revises: 0017_parents_complaints
Create Date: 2026-12-02

- institution.status gains 'closing': the closure instructed every family's refund and the bank has not
  executed them all yet. When the last is executed it is 'closed' (escrow/flows/payouts.py).
- An institution closed before this revision whose families are still owed refunds is closing.
"""

from alembic import op

revision = "0018_console_rest"
down_revision = "0017_parents_complaints"
branch_labels = None
depends_on = None

UPGRADE = """
ALTER TABLE institution DROP CONSTRAINT institution_status_check;
ALTER TABLE institution ADD CONSTRAINT institution_status_check
    CHECK (status IN ('active', 'on_hold', 'closing', 'closed'));
UPDATE institution i SET status = 'closing'
WHERE i.status = 'closed'
  AND EXISTS (SELECT 1 FROM account a WHERE a.institution_id = i.id AND a.kind = 'refund_payable' AND a.balance > 0);
"""

DOWNGRADE = """
UPDATE institution SET status = 'closed' WHERE status = 'closing';
ALTER TABLE institution DROP CONSTRAINT institution_status_check;
ALTER TABLE institution ADD CONSTRAINT institution_status_check CHECK (status IN ('active', 'on_hold', 'closed'));
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
