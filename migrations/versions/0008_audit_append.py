"""Audit records appended by one function call: the chain head is locked, the records hashed and written,
and the head moved, in one round trip instead of two.

Revision ID: 0008_audit_append
Revises: 0007_check_indexes
Create Date: 2026-11-29

The hashes are the ones escrow/audit.py has always made, so chains written before stay verifiable: the
application sends each record's canonical JSON with two slots (random tokens standing for the position and
the previous hash, which only the locked head can tell); the function puts them in and takes the SHA-256.
"""

from alembic import op

revision = "0008_audit_append"
down_revision = "0007_check_indexes"
branch_labels = None
depends_on = None

UPGRADE = r"""
CREATE FUNCTION audit_append(p_chain uuid, p_records jsonb) RETURNS void LANGUAGE plpgsql AS $$
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
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute("DROP FUNCTION audit_append(uuid, jsonb)")
