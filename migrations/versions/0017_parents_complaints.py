"""The parent's phone: sign-in by one-time code, parent sessions, messages to people; complaints and evaluations.

Revision ID: 0017_parents_complaints
Revises: 0016_console
Create Date: 2026-12-02

- sign_in_code: a one-time code sent to a phone, kept only as its argon2 hash, alive for minutes and a
  few tries; asking again ends the one before (outcome 'superseded').
- parent_session: a phone signed in from a browser. Only the hash of the cookie's secret is kept, with the
  session's CSRF token, as web_session keeps a person's.
- outbox_message: every message to a person, written in the transaction of what it tells; a dedupe_key
  makes a reminder written once however often the job runs.
- complaint (about one institution, from one family's phone) and complaint_message (its thread: the
  family, the institution's staff, the regulator), keyed by institution like every product table.
- evaluation: 1 to 5 stars and an optional comment on one confirmed class, by its family, once.
"""

from alembic import op

revision = "0017_parents_complaints"
down_revision = "0016_console"
branch_labels = None
depends_on = None

PHONE = "'^1[3-9][0-9]{9}$'"

UPGRADE = f"""
CREATE TABLE sign_in_code (
    id uuid PRIMARY KEY,
    phone text NOT NULL CHECK (phone ~ {PHONE}),
    code_hash text NOT NULL,
    created_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL,
    attempts integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    ended_at timestamptz,
    outcome text CHECK (outcome IN ('used', 'superseded', 'exhausted')),
    CHECK (expires_at > created_at),
    CHECK ((ended_at IS NULL) = (outcome IS NULL))
);
CREATE INDEX sign_in_code_by_phone ON sign_in_code (phone, created_at DESC);

CREATE TABLE parent_session (
    id uuid PRIMARY KEY,
    secret_hash text NOT NULL UNIQUE,
    phone text NOT NULL CHECK (phone ~ {PHONE}),
    csrf_token text NOT NULL,
    created_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL,
    ended_at timestamptz,
    CHECK (expires_at > created_at)
);
CREATE INDEX parent_session_by_phone ON parent_session (phone);

CREATE TABLE outbox_message (
    id uuid PRIMARY KEY,
    recipient text NOT NULL CHECK (recipient ~ {PHONE}),
    kind text NOT NULL
        CHECK (kind IN ('sign_in_code', 'class_waiting', 'class_reminder', 'complaint_answered')),
    body text NOT NULL,
    institution_id uuid REFERENCES institution (id),
    dedupe_key text UNIQUE,
    sent_by text NOT NULL CHECK (sent_by IN ('dev_outbox', 'sms_gateway')),
    created_at timestamptz NOT NULL
);
CREATE INDEX outbox_message_by_recipient ON outbox_message (recipient, created_at DESC);

CREATE TABLE complaint (
    institution_id uuid NOT NULL REFERENCES institution (id),
    id uuid NOT NULL,
    guardian_phone text NOT NULL CHECK (guardian_phone ~ {PHONE}),
    contract_id uuid,
    category text NOT NULL
        CHECK (category IN ('refund', 'teaching', 'fees', 'advertising', 'safety', 'closure', 'other')),
    body text NOT NULL CHECK (length(btrim(body)) BETWEEN 1 AND 2000),
    status text NOT NULL DEFAULT 'submitted' CHECK (status IN ('submitted', 'assigned', 'answered', 'closed')),
    assigned_to uuid REFERENCES app_user (id),
    assigned_at timestamptz,
    submitted_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    closed_at timestamptz,
    PRIMARY KEY (institution_id, id),
    FOREIGN KEY (institution_id, contract_id) REFERENCES contract (institution_id, id),
    CHECK ((status = 'closed') = (closed_at IS NOT NULL)),
    CHECK (status <> 'assigned' OR assigned_to IS NOT NULL),
    CHECK ((assigned_to IS NULL) = (assigned_at IS NULL))
);
CREATE INDEX complaint_by_phone ON complaint (guardian_phone, submitted_at DESC);
CREATE INDEX complaint_by_submission ON complaint (institution_id, submitted_at);

CREATE TABLE complaint_message (
    institution_id uuid NOT NULL,
    id uuid NOT NULL,
    complaint_id uuid NOT NULL,
    author_role text NOT NULL CHECK (author_role IN ('parent', 'institution', 'regulator')),
    author text NOT NULL,
    body text NOT NULL CHECK (length(btrim(body)) BETWEEN 1 AND 2000),
    created_at timestamptz NOT NULL,
    PRIMARY KEY (institution_id, id),
    FOREIGN KEY (institution_id, complaint_id) REFERENCES complaint (institution_id, id)
);
CREATE INDEX complaint_message_by_complaint ON complaint_message (institution_id, complaint_id, created_at);

CREATE TABLE evaluation (
    institution_id uuid NOT NULL,
    id uuid NOT NULL,
    class_id uuid NOT NULL,
    contract_id uuid NOT NULL,
    guardian_phone text NOT NULL CHECK (guardian_phone ~ {PHONE}),
    stars smallint NOT NULL CHECK (stars BETWEEN 1 AND 5),
    comment text CHECK (comment IS NULL OR length(btrim(comment)) BETWEEN 1 AND 500),
    created_at timestamptz NOT NULL,
    PRIMARY KEY (institution_id, id),
    UNIQUE (institution_id, class_id),
    FOREIGN KEY (institution_id, class_id) REFERENCES class_record (institution_id, id),
    FOREIGN KEY (institution_id, contract_id) REFERENCES contract (institution_id, id)
);
CREATE INDEX evaluation_by_time ON evaluation (institution_id, created_at DESC);
"""

DOWNGRADE = """
DROP TABLE evaluation;
DROP TABLE complaint_message;
DROP TABLE complaint;
DROP TABLE outbox_message;
DROP TABLE parent_session;
DROP TABLE sign_in_code;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
