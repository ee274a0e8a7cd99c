-- The ledger's rules, as they live in the database: read this file top to bottom.
--
-- Applied by the latest migration that records the files' hash, RULES_SHA256 (older migrations keep the
-- history of how they came to be); tests/db/test_rules_files.py proves a migrated database defines exactly this. Every statement
-- may run again on a database that already has it. Errors are integrity_constraint_violation, which the
-- service answers as a conflict.

-- Append-only tables (posting, journal_transaction; the audit trail and bank statement lines too):
-- a row once written is never updated, deleted or truncated. A mistake is corrected by a reversing
-- transaction that names the one it reverses.
CREATE OR REPLACE FUNCTION ledger_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: % refused; correct a mistake with a reversing transaction',
        TG_TABLE_NAME, TG_OP USING ERRCODE = 'integrity_constraint_violation';
END $$;

CREATE OR REPLACE TRIGGER posting_append_only BEFORE UPDATE OR DELETE ON posting
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change();
CREATE OR REPLACE TRIGGER posting_no_truncate BEFORE TRUNCATE ON posting
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change();
CREATE OR REPLACE TRIGGER journal_transaction_append_only BEFORE UPDATE OR DELETE ON journal_transaction
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change();
CREATE OR REPLACE TRIGGER journal_transaction_no_truncate BEFORE TRUNCATE ON journal_transaction
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change();
CREATE OR REPLACE TRIGGER account_no_truncate BEFORE TRUNCATE ON account
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change();

-- Double entry, checked once per journal transaction at commit (deferred): the transaction was recorded by
-- this database transaction, has at least two postings, exactly as many as it declares (legs), and they
-- sum to zero per currency.
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

-- (a constraint trigger cannot be replaced in place, so it is made again)
DROP TRIGGER IF EXISTS journal_transaction_balanced ON journal_transaction;
CREATE CONSTRAINT TRIGGER journal_transaction_balanced AFTER INSERT ON journal_transaction
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION ledger_check_transaction();

-- Postings join only new transactions, checked after each statement that writes them: every posting
-- belongs to a journal transaction recorded by this database transaction, and no transaction gets more
-- postings than it declares. So nothing is added to an old transaction, nor after the commit check was
-- run early (SET CONSTRAINTS ALL IMMEDIATE).
CREATE OR REPLACE FUNCTION ledger_check_new_postings() RETURNS trigger LANGUAGE plpgsql AS $$
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

CREATE OR REPLACE TRIGGER posting_belongs_to_new_transaction AFTER INSERT ON posting
    REFERENCING NEW TABLE AS new_posting FOR EACH STATEMENT EXECUTE FUNCTION ledger_check_new_postings();

-- Cached balances follow postings inside the same statement, read on the account's normal side; the
-- CHECK account_balance_not_negative then refuses any posting that overdraws a non-negative account.
CREATE OR REPLACE FUNCTION ledger_apply_postings() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE account AS a
       SET balance = a.balance + CASE a.normal_side WHEN 'debit' THEN d.delta ELSE -d.delta END,
           version = a.version + 1
      FROM (SELECT institution_id, account_id, sum(amount) AS delta
              FROM new_posting GROUP BY institution_id, account_id) AS d
     WHERE a.institution_id = d.institution_id AND a.id = d.account_id;
    RETURN NULL;
END $$;

CREATE OR REPLACE TRIGGER posting_moves_balance AFTER INSERT ON posting
    REFERENCING NEW TABLE AS new_posting FOR EACH STATEMENT EXECUTE FUNCTION ledger_apply_postings();

-- Accounts open empty and are never deleted; what an account is (institution, code, kind, contract, side,
-- currency, floor, opening time) never changes, and its balance changes only through postings (the
-- trigger above, one level down).
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
        IF (NEW.institution_id, NEW.id, NEW.code, NEW.kind, NEW.contract_id, NEW.normal_side, NEW.currency,
            NEW.allow_negative, NEW.created_at) IS DISTINCT FROM (OLD.institution_id, OLD.id, OLD.code,
            OLD.kind, OLD.contract_id, OLD.normal_side, OLD.currency, OLD.allow_negative, OLD.created_at) THEN
            RAISE EXCEPTION 'account % may not change its identity, kind, side, currency or floor', OLD.id
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

CREATE OR REPLACE TRIGGER account_guard BEFORE INSERT OR UPDATE OR DELETE ON account
    FOR EACH ROW EXECUTE FUNCTION ledger_guard_account();
