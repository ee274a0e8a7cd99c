-- The bank statements' rules, as they live in the database: read this file top to bottom.
--
-- Applied by the latest migration that records the files' hash (RULES_SHA256), after ledger.sql (whose
-- ledger_refuse_change it uses); tests/db/test_rules_files.py proves a migrated database defines exactly this.

-- What the bank said is evidence: a statement line once imported is never updated, deleted or truncated.
CREATE OR REPLACE TRIGGER statement_line_append_only BEFORE UPDATE OR DELETE ON statement_line
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change();
CREATE OR REPLACE TRIGGER statement_line_no_truncate BEFORE TRUNCATE ON statement_line
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change();
