"""Guardians kept per institution; parent tokens scoped to a phone number; two policy numbers for dates.

Revision ID: 0014_hostile_input
Revises: 0013_typed_states
Create Date: 2026-12-01

A guardian was one row per phone across all institutions, so signing with a phone another institution
had registered answered by that institution's data (409 for another name, the ID number's fragments for
the right one). Now each institution keeps its own guardian records (unique by phone within it), and a
contract's guardian is of its own institution (a foreign key says so). A parent's contracts at several
institutions come together under the parent's own sign-in: a parent token stands for a phone number.
Backfill: a guardian with contracts at several institutions becomes one row per institution (the
existing row stays with the institution of its earliest contract), and parent tokens take the phone.

Policy: how many days back a class may be dated when recorded (7) and how many days before signing a
term may have started (30), per jurisdiction like the other numbers (escrow/rules/policy.py).
"""

from alembic import op

revision = "0014_hostile_input"
down_revision = "0013_typed_states"
branch_labels = None
depends_on = None

UPGRADE = r"""
ALTER TABLE policy_version
    ADD COLUMN max_class_backdate_days integer NOT NULL DEFAULT 7
        CHECK (max_class_backdate_days BETWEEN 0 AND 90),
    ADD COLUMN max_term_start_past_days integer NOT NULL DEFAULT 30
        CHECK (max_term_start_past_days BETWEEN 0 AND 366);

ALTER TABLE guardian ADD COLUMN institution_id uuid REFERENCES institution (id);
ALTER TABLE guardian DROP CONSTRAINT guardian_phone_key;

-- the institution each guardian row stays with: that of its earliest contract
UPDATE guardian g SET institution_id = first.institution_id
FROM (SELECT DISTINCT ON (guardian_id) guardian_id, institution_id FROM contract
      ORDER BY guardian_id, signed_at, id) AS first
WHERE first.guardian_id = g.id;

-- one new row for each other institution the guardian has contracts at, and its contracts moved to it
CREATE TEMP TABLE guardian_split ON COMMIT DROP AS
SELECT DISTINCT c.guardian_id AS old_id, c.institution_id, gen_random_uuid() AS new_id
FROM contract c JOIN guardian g ON g.id = c.guardian_id
WHERE c.institution_id <> g.institution_id;

INSERT INTO guardian (id, phone, name, id_number, created_at, institution_id)
SELECT s.new_id, g.phone, g.name, g.id_number, g.created_at, s.institution_id
FROM guardian_split s JOIN guardian g ON g.id = s.old_id;

UPDATE contract c SET guardian_id = s.new_id
FROM guardian_split s WHERE c.guardian_id = s.old_id AND c.institution_id = s.institution_id;

ALTER TABLE api_token ADD COLUMN guardian_phone text CHECK (guardian_phone ~ '^1[3-9][0-9]{9}$');
UPDATE api_token t SET guardian_phone = g.phone FROM guardian g WHERE g.id = t.guardian_id;
ALTER TABLE api_token DROP CONSTRAINT api_token_scope;
ALTER TABLE api_token DROP COLUMN guardian_id;
ALTER TABLE api_token ADD CONSTRAINT api_token_scope CHECK (
    (role = 'regulator' AND cardinality(jurisdiction_codes) > 0)
    OR (role = 'institution' AND institution_id IS NOT NULL)
    OR (role = 'parent' AND guardian_phone IS NOT NULL)
    OR (role = 'bank' AND bank_code IS NOT NULL));

DELETE FROM guardian WHERE institution_id IS NULL;  -- no contract names them: nothing refers to them
ALTER TABLE guardian ALTER COLUMN institution_id SET NOT NULL;
ALTER TABLE guardian ADD CONSTRAINT guardian_institution_phone_key UNIQUE (institution_id, phone);
ALTER TABLE guardian ADD CONSTRAINT guardian_institution_id_key UNIQUE (institution_id, id);
CREATE INDEX guardian_by_phone ON guardian (phone);
ALTER TABLE contract ADD CONSTRAINT contract_guardian_of_its_institution
    FOREIGN KEY (institution_id, guardian_id) REFERENCES guardian (institution_id, id);
"""

DOWNGRADE = r"""
ALTER TABLE contract DROP CONSTRAINT contract_guardian_of_its_institution;
DROP INDEX guardian_by_phone;
ALTER TABLE guardian DROP CONSTRAINT guardian_institution_id_key;
ALTER TABLE guardian DROP CONSTRAINT guardian_institution_phone_key;

-- one row per phone again: the earliest keeps the contracts of the others
CREATE TEMP TABLE guardian_merge ON COMMIT DROP AS
SELECT g.id AS old_id, first.id AS kept_id
FROM guardian g
JOIN (SELECT DISTINCT ON (phone) phone, id FROM guardian ORDER BY phone, created_at, id) AS first
  ON first.phone = g.phone
WHERE g.id <> first.id;
UPDATE contract c SET guardian_id = m.kept_id FROM guardian_merge m WHERE c.guardian_id = m.old_id;
DELETE FROM guardian g USING guardian_merge m WHERE g.id = m.old_id;
ALTER TABLE guardian DROP COLUMN institution_id;
ALTER TABLE guardian ADD CONSTRAINT guardian_phone_key UNIQUE (phone);

ALTER TABLE api_token ADD COLUMN guardian_id uuid REFERENCES guardian (id);
UPDATE api_token t SET guardian_id = g.id FROM guardian g WHERE g.phone = t.guardian_phone;
DELETE FROM api_token WHERE role = 'parent' AND guardian_id IS NULL;
ALTER TABLE api_token DROP CONSTRAINT api_token_scope;
ALTER TABLE api_token DROP COLUMN guardian_phone;
ALTER TABLE api_token ADD CONSTRAINT api_token_scope CHECK (
    (role = 'regulator' AND cardinality(jurisdiction_codes) > 0)
    OR (role = 'institution' AND institution_id IS NOT NULL)
    OR (role = 'parent' AND guardian_id IS NOT NULL)
    OR (role = 'bank' AND bank_code IS NOT NULL));

ALTER TABLE policy_version DROP COLUMN max_term_start_past_days, DROP COLUMN max_class_backdate_days;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
