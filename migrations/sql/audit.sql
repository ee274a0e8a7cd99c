-- The audit trail's rules, as they live in the database: read this file top to bottom.
--
-- Applied by the latest migration that records the files' hash (RULES_SHA256), after ledger.sql (whose
-- ledger_refuse_change it uses); tests/db/test_rules_files.py proves a migrated database defines exactly this.

-- The audit trail is append-only: a record once written is never updated, deleted or truncated.
CREATE OR REPLACE TRIGGER audit_record_append_only BEFORE UPDATE OR DELETE ON audit_record
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change();
CREATE OR REPLACE TRIGGER audit_record_no_truncate BEFORE TRUNCATE ON audit_record
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change();

-- A use case's audit notes are plain rows of audit_note, written in any statement (with the ledger's, or as
-- the transaction commits) and taking no lock; the database joins them to their chains at COMMIT. The first
-- note's deferred trigger to fire links every note of the transaction: chain by chain in id order (heads are
-- locked in one order, like accounts, and last: after every account lock, held only through COMMIT), each
-- chain's notes in the order they were written; the later notes' triggers find theirs linked already.
CREATE OR REPLACE FUNCTION audit_link_notes() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    next_chain uuid;
BEGIN
    IF NOT EXISTS (SELECT FROM audit_note WHERE xact = NEW.xact AND chain = NEW.chain AND id = NEW.id) THEN
        RETURN NULL;
    END IF;
    FOR next_chain IN SELECT DISTINCT chain FROM audit_note WHERE xact = NEW.xact ORDER BY chain LOOP
        PERFORM audit_link_chain(NEW.xact, next_chain);
    END LOOP;
    RETURN NULL;
END $$;

DROP TRIGGER IF EXISTS audit_note_linked ON audit_note;
CREATE CONSTRAINT TRIGGER audit_note_linked AFTER INSERT ON audit_note
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION audit_link_notes();

-- One chain's notes of one transaction join it in order: the chain's head is locked (made on the chain's
-- first record), each note's canonical JSON gets its position and the previous hash put into its two slots
-- and is hashed (SHA-256, the hash escrow/access/audit.py verifies), the records are written from what was
-- hashed, the head moved and the notes deleted. Concurrent writers to one chain queue on the head's lock.
CREATE OR REPLACE FUNCTION audit_link_chain(p_xact xid8, p_chain uuid) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    head_position bigint;
    head_hash text;
    notes text[];
    position_slots text[];
    prev_hash_slots text[];
    positions bigint[] := '{}';
    prev_hashes text[] := '{}';
    records text[] := '{}';
    hashes text[] := '{}';
BEGIN
    SELECT position, hash INTO head_position, head_hash FROM audit_chain_head WHERE chain = p_chain FOR UPDATE;
    IF NOT FOUND THEN  -- the chain's first record (a concurrent starter makes this wait, then do nothing)
        INSERT INTO audit_chain_head (chain, position, hash) VALUES (p_chain, 0, repeat('0', 64))
            ON CONFLICT (chain) DO NOTHING;
        SELECT position, hash INTO head_position, head_hash FROM audit_chain_head WHERE chain = p_chain FOR UPDATE;
    END IF;
    WITH taken AS (DELETE FROM audit_note WHERE xact = p_xact AND chain = p_chain
                   RETURNING id, canonical, position_slot, prev_hash_slot)
    SELECT array_agg(canonical ORDER BY id), array_agg(position_slot ORDER BY id),
           array_agg(prev_hash_slot ORDER BY id)
      INTO notes, position_slots, prev_hash_slots FROM taken;
    FOR n IN 1 .. coalesce(cardinality(notes), 0) LOOP
        head_position := head_position + 1;
        positions := array_append(positions, head_position);
        prev_hashes := array_append(prev_hashes, head_hash);
        records := array_append(records, replace(replace(notes[n], '"' || position_slots[n] || '"',
                                                         head_position::text), prev_hash_slots[n], head_hash));
        head_hash := encode(sha256(convert_to(records[n], 'UTF8')), 'hex');
        hashes := array_append(hashes, head_hash);
    END LOOP;
    INSERT INTO audit_record (chain, position, occurred_at, actor, role, action, object_type, object_id, before,
                              after, prev_hash, hash)
    SELECT p_chain, r.position, (r.content->>'occurred_at')::timestamptz, r.content->>'actor',
           r.content->>'role', r.content->>'action', r.content->>'object_type', r.content->>'object_id',
           CASE WHEN jsonb_typeof(r.content->'before') = 'null' THEN NULL ELSE r.content->'before' END,
           CASE WHEN jsonb_typeof(r.content->'after') = 'null' THEN NULL ELSE r.content->'after' END,
           r.prev_hash, r.hash
      FROM unnest(positions, records::jsonb[], prev_hashes, hashes) AS r(position, content, prev_hash, hash);
    UPDATE audit_chain_head SET position = head_position, hash = head_hash WHERE chain = p_chain;
END $$;
