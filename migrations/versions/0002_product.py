"""Jurisdictions and their policy versions, institutions, courses, guardians, contracts, collections, tokens.

Revision ID: 0002_product
Revises: 0001_ledger
Create Date: 2026-11-29
"""

from alembic import op

revision = "0002_product"
down_revision = "0001_ledger"
branch_labels = None
depends_on = None

UPGRADE = """
CREATE TABLE jurisdiction (
    code text PRIMARY KEY CHECK (code ~ '^[0-9]{6}$'),
    name text NOT NULL CHECK (length(btrim(name)) BETWEEN 1 AND 200),
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE policy_version (
    jurisdiction_code text NOT NULL REFERENCES jurisdiction (code),
    effective_date date NOT NULL,
    max_months integer NOT NULL CHECK (max_months BETWEEN 1 AND 36),
    max_hours integer NOT NULL CHECK (max_hours BETWEEN 1 AND 1000),
    max_non_subject_fen bigint NOT NULL CHECK (max_non_subject_fen > 0),
    guide_price_margin_bp integer NOT NULL CHECK (guide_price_margin_bp BETWEEN 0 AND 10000),
    confirm_after_working_days integer NOT NULL CHECK (confirm_after_working_days BETWEEN 1 AND 100),
    refund_response_working_days integer NOT NULL CHECK (refund_response_working_days BETWEEN 1 AND 100),
    release_cadence text NOT NULL CHECK (release_cadence IN ('per_class', 'weekly', 'monthly', 'tranches')),
    release_tranches_pct integer[] NOT NULL DEFAULT '{}',
    default_supervision_model text NOT NULL CHECK (default_supervision_model IN ('custody', 'reserve')),
    alert_thresholds jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(alert_thresholds) = 'object'),
    created_by text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (jurisdiction_code, effective_date)
);

CREATE TABLE institution (
    id uuid PRIMARY KEY,
    name text NOT NULL CHECK (length(btrim(name)) BETWEEN 1 AND 200),
    credit_code text NOT NULL UNIQUE CHECK (credit_code ~ '^[0-9A-HJ-NPQRTUWXY]{18}$'),
    jurisdiction_code text NOT NULL REFERENCES jurisdiction (code),
    supervision_model text NOT NULL CHECK (supervision_model IN ('custody', 'reserve')),
    custody_bank text NOT NULL CHECK (custody_bank ~ '^[a-z0-9_]{2,40}$'),
    custody_account text NOT NULL CHECK (custody_account ~ '^[0-9]{8,32}$'),
    status text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'on_hold', 'closed')),
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX institution_by_jurisdiction ON institution (jurisdiction_code);
CREATE INDEX institution_by_bank ON institution (custody_bank);

ALTER TABLE account ADD CONSTRAINT account_institution_fkey
    FOREIGN KEY (institution_id) REFERENCES institution (id);
ALTER TABLE journal_transaction ADD CONSTRAINT journal_transaction_institution_fkey
    FOREIGN KEY (institution_id) REFERENCES institution (id);

CREATE TABLE course (
    institution_id uuid NOT NULL REFERENCES institution (id),
    id uuid NOT NULL,
    name text NOT NULL CHECK (length(btrim(name)) BETWEEN 1 AND 200),
    category text NOT NULL CHECK (category IN ('subject', 'non_subject')),
    unit_price_fen bigint NOT NULL CHECK (unit_price_fen > 0),
    guide_price_fen bigint CHECK (guide_price_fen > 0),
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (institution_id, id),
    CONSTRAINT course_subject_has_guide_price CHECK (category <> 'subject' OR guide_price_fen IS NOT NULL)
);

CREATE TABLE guardian (
    id uuid PRIMARY KEY,
    phone text NOT NULL UNIQUE CHECK (phone ~ '^1[3-9][0-9]{9}$'),
    name text NOT NULL CHECK (length(btrim(name)) BETWEEN 1 AND 100),
    id_number text CHECK (id_number ~ '^[0-9]{17}[0-9X]$'),
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE contract (
    institution_id uuid NOT NULL,
    id uuid NOT NULL,
    course_id uuid NOT NULL,
    guardian_id uuid NOT NULL REFERENCES guardian (id),
    student_name text NOT NULL CHECK (length(btrim(student_name)) BETWEEN 1 AND 100),
    hours_bought integer NOT NULL CHECK (hours_bought > 0),
    bonus_hours integer NOT NULL DEFAULT 0 CHECK (bonus_hours >= 0),
    unit_price_fen bigint NOT NULL CHECK (unit_price_fen > 0),
    price_fen bigint NOT NULL CHECK (price_fen = unit_price_fen * hours_bought),
    term_start date NOT NULL,
    term_end date NOT NULL CHECK (term_end >= term_start),
    policy_jurisdiction text NOT NULL,
    policy_effective_date date,
    prepaid_account_id uuid NOT NULL,
    signed_at timestamptz NOT NULL DEFAULT now(),
    status text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'completed', 'refunded', 'closed')),
    PRIMARY KEY (institution_id, id),
    FOREIGN KEY (institution_id, course_id) REFERENCES course (institution_id, id),
    FOREIGN KEY (institution_id, prepaid_account_id) REFERENCES account (institution_id, id)
);
CREATE INDEX contract_by_guardian ON contract (guardian_id);

CREATE TABLE collection (
    institution_id uuid NOT NULL,
    id uuid NOT NULL,
    contract_id uuid NOT NULL,
    amount_fen bigint NOT NULL CHECK (amount_fen > 0),
    bank_reference text NOT NULL CHECK (bank_reference ~ '^[A-Za-z0-9_./:-]{1,64}$'),
    collected_at timestamptz NOT NULL,
    transaction_id uuid NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (institution_id, id),
    -- one bank slip is one collection
    CONSTRAINT collection_bank_reference_key UNIQUE (institution_id, bank_reference),
    FOREIGN KEY (institution_id, contract_id) REFERENCES contract (institution_id, id),
    FOREIGN KEY (institution_id, transaction_id) REFERENCES journal_transaction (institution_id, id)
);
CREATE INDEX collection_by_contract ON collection (institution_id, contract_id);

CREATE TABLE api_token (
    id uuid PRIMARY KEY,
    token_hash text NOT NULL UNIQUE,
    role text NOT NULL CHECK (role IN ('regulator', 'institution', 'parent', 'bank')),
    jurisdiction_codes text[] NOT NULL DEFAULT '{}',
    institution_id uuid REFERENCES institution (id),
    guardian_id uuid REFERENCES guardian (id),
    bank_code text,
    label text NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz,
    revoked_at timestamptz,
    CONSTRAINT api_token_scope CHECK (
        (role = 'regulator' AND cardinality(jurisdiction_codes) > 0)
        OR (role = 'institution' AND institution_id IS NOT NULL)
        OR (role = 'parent' AND guardian_id IS NOT NULL)
        OR (role = 'bank' AND bank_code IS NOT NULL))
);
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute("DROP TABLE api_token, collection, contract, guardian, course")
    op.execute("ALTER TABLE journal_transaction DROP CONSTRAINT journal_transaction_institution_fkey")
    op.execute("ALTER TABLE account DROP CONSTRAINT account_institution_fkey")
    op.execute("DROP TABLE institution, policy_version, jurisdiction")
