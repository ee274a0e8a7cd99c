"""Accounts say what they are (kind, and the contract of a family's account); the live rules read from one place.

Revision ID: 0013_typed_states
Revises: 0011_check_per_transaction
Create Date: 2026-12-01

Until now an account's kind was the part of its code before ':' and its contract the part after, so
"held for families" was `code LIKE 'prepaid:%'` wherever it was asked. Now account.kind is one of the
kinds escrow.ledger.model.AccountKind names (a CHECK), and account.contract_id names the contract of a
prepaid or refund_payable account and of no other (a CHECK, and a foreign key checked at commit, since a
contract names its prepaid account too). Existing accounts are classified from their codes; a family's
account whose contract cannot be found stops the migration rather than being counted as something else.
The code stays as it was (it is what HTTP shows).

The ledger's, the audit trail's and the bank statements' functions and triggers are applied from
migrations/sql/ (the definitions they hold are those of 0001, 0004, 0006, 0008, 0009 and 0011, with the
account guard now also keeping kind and contract fixed). The statuses of classes, refunds, payouts,
institutions, contracts, alerts and job runs were CHECKed by the migrations that made their tables;
tests/db/test_states_match_database.py holds those CHECKs to the StrEnums of escrow/rules/states.py.
"""

import hashlib
from pathlib import Path

from alembic import op

revision = "0013_typed_states"
down_revision = "0011_check_per_transaction"
branch_labels = None
depends_on = None

RULES = Path(__file__).resolve().parent.parent / "sql"
RULE_FILES = ("ledger.sql", "audit.sql", "statements.sql")  # in this order: the others use ledger.sql's
# the files as this migration applies them; a later edit comes with a migration that applies them again
# and records their new hash (tests/db/test_rules_files.py holds the latest one to the files)
RULES_SHA256 = "070508009fd41cfc900790bf144799918a7b2e0be4143968d6df463ceaf0a0b1"

KINDS = (
    "custody_cash",
    "prepaid",
    "releasable",
    "payout_pending",
    "refund_payable",
    "reserve_cash",
    "reserve_deposit",
    "other",
)
_KIND_LIST = ", ".join(f"'{kind}'" for kind in KINDS)

UPGRADE = f"""
ALTER TABLE account ADD COLUMN kind text, ADD COLUMN contract_id uuid;
UPDATE account SET kind = CASE
    WHEN code IN ({_KIND_LIST}) THEN code
    WHEN code LIKE 'prepaid:%' THEN 'prepaid'
    WHEN code LIKE 'refund_payable:%' THEN 'refund_payable'
    ELSE 'other' END;
UPDATE account a SET contract_id = c.id FROM contract c
 WHERE a.kind = 'prepaid' AND c.institution_id = a.institution_id AND c.prepaid_account_id = a.id;
UPDATE account a SET contract_id = c.id FROM contract c
 WHERE a.kind = 'refund_payable' AND c.institution_id = a.institution_id AND a.code = 'refund_payable:' || c.id;
ALTER TABLE account ALTER COLUMN kind SET NOT NULL,
    ADD CONSTRAINT account_kind_check CHECK (kind IN ({_KIND_LIST})),
    -- a family's account names its contract; no other account names one
    ADD CONSTRAINT account_contract_by_kind
        CHECK ((kind IN ('prepaid', 'refund_payable')) = (contract_id IS NOT NULL)),
    -- the contract is made after its prepaid account, in the same transaction
    ADD CONSTRAINT account_contract_fkey FOREIGN KEY (institution_id, contract_id)
        REFERENCES contract (institution_id, id) DEFERRABLE INITIALLY DEFERRED;
-- one account of each kind per contract; the reports find a kind's accounts per institution
CREATE UNIQUE INDEX account_one_per_contract ON account (institution_id, contract_id, kind)
    WHERE contract_id IS NOT NULL;
CREATE INDEX account_by_kind ON account (institution_id, kind);
"""

# the account guard as 0001_ledger made it, before accounts had a kind
_GUARD_BEFORE = r"""
CREATE OR REPLACE FUNCTION ledger_guard_account() RETURNS trigger LANGUAGE plpgsql AS $$
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

DOWNGRADE = """
DROP INDEX account_by_kind;
DROP INDEX account_one_per_contract;
ALTER TABLE account DROP CONSTRAINT account_contract_fkey, DROP CONSTRAINT account_contract_by_kind,
    DROP CONSTRAINT account_kind_check, DROP COLUMN contract_id, DROP COLUMN kind;
"""


def upgrade() -> None:
    op.execute(UPGRADE)
    files = [(RULES / name).read_bytes() for name in RULE_FILES]
    # files edited since are applied by the migration that records their new hash: they may name tables
    # made after this one (audit_note, 0021)
    if hashlib.sha256(b"".join(files)).hexdigest() == RULES_SHA256:
        for text in files:
            op.execute(text.decode("utf-8"))


def downgrade() -> None:
    op.execute(_GUARD_BEFORE)  # first: the guard of the rules files reads the columns dropped below
    op.execute(DOWNGRADE)
