"""Classes and their confirmation, refund requests, payout instructions, holds.

Revision ID: 0003_consumption
Revises: 0002_product
Create Date: 2026-11-29
"""

from alembic import op

revision = "0003_consumption"
down_revision = "0002_product"
branch_labels = None
depends_on = None

UPGRADE = """
CREATE TABLE payout (
    institution_id uuid NOT NULL REFERENCES institution (id),
    id uuid NOT NULL,
    kind text NOT NULL CHECK (kind IN ('release', 'refund')),
    contract_id uuid,
    amount_fen bigint NOT NULL CHECK (amount_fen > 0),
    status text NOT NULL DEFAULT 'instructed' CHECK (status IN ('instructed', 'executed', 'failed')),
    instructed_at timestamptz NOT NULL,
    settled_at timestamptz,
    bank_reference text,
    failure_reason text,
    instruct_transaction_id uuid,
    settle_transaction_id uuid,
    PRIMARY KEY (institution_id, id),
    FOREIGN KEY (institution_id, contract_id) REFERENCES contract (institution_id, id),
    FOREIGN KEY (institution_id, instruct_transaction_id) REFERENCES journal_transaction (institution_id, id),
    FOREIGN KEY (institution_id, settle_transaction_id) REFERENCES journal_transaction (institution_id, id),
    CHECK ((kind = 'refund') = (contract_id IS NOT NULL)),
    CHECK ((status = 'instructed') = (settled_at IS NULL))
);
-- one refund instruction in flight per contract: a retry cannot pay a family twice
CREATE UNIQUE INDEX payout_one_refund_in_flight ON payout (institution_id, contract_id)
    WHERE kind = 'refund' AND status = 'instructed';

CREATE TABLE class_record (
    institution_id uuid NOT NULL,
    id uuid NOT NULL,
    contract_id uuid NOT NULL,
    hours integer NOT NULL CHECK (hours > 0),
    given_on date NOT NULL,
    status text NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'confirmed', 'disputed', 'upheld', 'void')),
    confirmed_how text CHECK (confirmed_how IN ('parent', 'deemed', 'dispute_rejected')),
    confirm_by date NOT NULL,
    amount_fen bigint CHECK (amount_fen >= 0),
    release_transaction_id uuid,
    payout_id uuid,
    dispute_reason text,
    resolution_note text,
    recorded_at timestamptz NOT NULL DEFAULT now(),
    decided_at timestamptz,
    PRIMARY KEY (institution_id, id),
    FOREIGN KEY (institution_id, contract_id) REFERENCES contract (institution_id, id),
    FOREIGN KEY (institution_id, release_transaction_id) REFERENCES journal_transaction (institution_id, id),
    FOREIGN KEY (institution_id, payout_id) REFERENCES payout (institution_id, id),
    CHECK ((status = 'confirmed') = (confirmed_how IS NOT NULL)),
    CHECK (release_transaction_id IS NULL OR status = 'confirmed'),
    CHECK (payout_id IS NULL OR release_transaction_id IS NOT NULL)
);
CREATE INDEX class_record_by_contract ON class_record (institution_id, contract_id);
CREATE INDEX class_record_pending ON class_record (confirm_by) WHERE status = 'pending';
CREATE INDEX class_record_unpaid ON class_record (institution_id)
    WHERE release_transaction_id IS NOT NULL AND payout_id IS NULL;

CREATE TABLE refund_request (
    institution_id uuid NOT NULL,
    id uuid NOT NULL,
    contract_id uuid NOT NULL,
    reason text NOT NULL CHECK (length(btrim(reason)) BETWEEN 1 AND 500),
    status text NOT NULL DEFAULT 'open'
        CHECK (status IN ('open', 'approved', 'deemed_approved', 'rejected', 'closure')),
    respond_by date NOT NULL,
    amount_fen bigint CHECK (amount_fen >= 0),
    decision_reason text,
    decided_by text,
    requested_at timestamptz NOT NULL DEFAULT now(),
    decided_at timestamptz,
    transaction_id uuid,
    PRIMARY KEY (institution_id, id),
    FOREIGN KEY (institution_id, contract_id) REFERENCES contract (institution_id, id),
    FOREIGN KEY (institution_id, transaction_id) REFERENCES journal_transaction (institution_id, id),
    CHECK (status <> 'rejected' OR decision_reason IS NOT NULL)
);
CREATE UNIQUE INDEX refund_request_one_open ON refund_request (institution_id, contract_id) WHERE status = 'open';
CREATE INDEX refund_request_open ON refund_request (respond_by) WHERE status = 'open';

CREATE TABLE hold (
    institution_id uuid NOT NULL REFERENCES institution (id),
    id uuid NOT NULL,
    reason text NOT NULL CHECK (length(btrim(reason)) BETWEEN 1 AND 500),
    placed_by text NOT NULL,
    placed_at timestamptz NOT NULL,
    lifted_at timestamptz,
    lifted_by text,
    lift_reason text,
    PRIMARY KEY (institution_id, id),
    CHECK ((lifted_at IS NULL) = (lift_reason IS NULL))
);
CREATE UNIQUE INDEX hold_one_active ON hold (institution_id) WHERE lifted_at IS NULL;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute("DROP TABLE hold, refund_request, class_record, payout")
