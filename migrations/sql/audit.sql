-- The audit trail's rules, as they live in the database: read this file top to bottom.
--
-- Applied by migrations/versions/0013_typed_states.py after ledger.sql (whose ledger_refuse_change it
-- uses); tests/db/test_rules_files.py proves a migrated database defines exactly this.

-- The audit trail is append-only: a record once written is never updated, deleted or truncated.
CREATE OR REPLACE TRIGGER audit_record_append_only BEFORE UPDATE OR DELETE ON audit_record
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change();
CREATE OR REPLACE TRIGGER audit_record_no_truncate BEFORE TRUNCATE ON audit_record
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change();

-- Records join their chain in order, each carrying the hash of the one before: the chain's head is locked
-- (made on the chain's first record), each record's canonical JSON gets its position and the previous hash
-- put into its two slots and is hashed (SHA-256, the hash escrow/access/audit.py verifies), the records are
-- written and the head moved, all in one call. Concurrent writers to one chain queue on the head's lock.
CREATE OR REPLACE FUNCTION audit_append(p_chain uuid, p_records jsonb) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    head_position bigint;
    head_hash text;
    item jsonb;
    positions bigint[] := '{}';
    prev_hashes text[] := '{}';
    hashes text[] := '{}';
BEGIN
    SELECT position, hash INTO head_position, head_hash FROM audit_chain_head WHERE chain = p_chain FOR UPDATE;
    IF NOT FOUND THEN  -- the chain's first record (a concurrent starter makes this wait, then do nothing)
        INSERT INTO audit_chain_head (chain, position, hash) VALUES (p_chain, 0, repeat('0', 64))
            ON CONFLICT (chain) DO NOTHING;
        SELECT position, hash INTO head_position, head_hash FROM audit_chain_head WHERE chain = p_chain FOR UPDATE;
    END IF;
    FOR item IN SELECT value FROM jsonb_array_elements(p_records) LOOP
        head_position := head_position + 1;
        positions := array_append(positions, head_position);
        prev_hashes := array_append(prev_hashes, head_hash);
        head_hash := encode(sha256(convert_to(
            replace(replace(item->>'canonical', '"' || (item->>'position_slot') || '"', head_position::text),
                    item->>'prev_hash_slot', head_hash),
            'UTF8')), 'hex');
        hashes := array_append(hashes, head_hash);
    END LOOP;
    INSERT INTO audit_record (chain, position, occurred_at, actor, role, action, object_type, object_id, before,
                              after, prev_hash, hash)
    SELECT p_chain, positions[r.n], (r.value->>'occurred_at')::timestamptz, r.value->>'actor', r.value->>'role',
           r.value->>'action', r.value->>'object_type', r.value->>'object_id',
           CASE WHEN jsonb_typeof(r.value->'before') = 'null' THEN NULL ELSE r.value->'before' END,
           CASE WHEN jsonb_typeof(r.value->'after') = 'null' THEN NULL ELSE r.value->'after' END,
           prev_hashes[r.n], hashes[r.n]
      FROM jsonb_array_elements(p_records) WITH ORDINALITY AS r(value, n);
    UPDATE audit_chain_head SET position = head_position, hash = head_hash WHERE chain = p_chain;
END $$;
