"""The audit trail: who did what, as which role, when, with before and after.

Use cases note events as they change state; the notes are written in the same transaction, as it
commits (after every account it locked, the order every transaction takes), chained by SHA-256 per institution:
each record carries the hash of the one before it in its chain. `verify_chains` walks the chains and
names the first record that was altered, removed or reordered.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

from sqlalchemy import event, select, text
from sqlalchemy.orm import Session

from escrow.access.callers import Caller, institution_scope
from escrow.db.records import Institution
from escrow.errors import NotFound

DISTRICT = UUID(int=0)  # the chain of acts that belong to no one institution (tokens, jurisdictions)
GENESIS = "0" * 64


@dataclass(frozen=True, slots=True)
class Actor:
    name: str
    role: str


def actor_of(caller: Caller | Actor) -> Actor:
    return caller if isinstance(caller, Actor) else Actor(caller.acting, caller.role.value)


SYSTEM = Actor("system", "system")
OPERATOR = Actor("operator:cli", "operator")


def note(
    session: Session,
    who: Caller | Actor,
    action: str,
    *,
    institution_id: UUID | None,
    object_type: str,
    object_id: object,
    after: dict[str, Any] | None = None,
    before: dict[str, Any] | None = None,
    at: datetime | None = None,
) -> None:
    """Record that `who` did `action` to an object; written with the transaction's commit."""
    by = actor_of(who)
    session.info.setdefault("audit", []).append(
        {
            "chain": institution_id or DISTRICT,
            "occurred_at": (at or datetime.now(UTC)).astimezone(UTC),
            "actor": by.name,
            "role": by.role,
            "action": action,
            "object_type": object_type,
            "object_id": str(object_id),
            "before": _plain(before),
            "after": _plain(after),
        }
    )


def _plain(values: dict[str, Any] | None) -> dict[str, Any] | None:
    return None if values is None else json.loads(json.dumps(values, default=str))


def record_hash(record: dict[str, Any]) -> str:
    """SHA-256 of the record's content and the hash before it, in one canonical form."""
    return hashlib.sha256(_canonical(record).encode()).hexdigest()


def _canonical(record: dict[str, Any]) -> str:
    content = {**record, "chain": str(record["chain"]), "occurred_at": record["occurred_at"].isoformat()}
    content.pop("hash", None)
    return json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


# audit_append (migration 0008) locks the chain's head, fills each record's position and previous hash into
# its canonical form where the slots are, hashes it as record_hash does, writes the records, moves the head
_APPEND = text("SELECT audit_append(:chain, CAST(:records AS jsonb))")


@event.listens_for(Session, "before_commit")
def _write_notes(session: Session) -> None:
    chains = sorted({record["chain"] for record in session.info.get("audit", [])})
    for chain in chains:  # heads are locked in one order, like accounts
        session.execute(_APPEND, {"chain": chain, "records": _take_notes(session, chain)})


def _take_notes(session: Session, chain: UUID) -> str | None:
    """The notes waiting to be written to `chain`, taken off the session as audit_append's JSON (None: no
    notes)."""
    pending = session.info.get("audit", [])
    mine = [record for record in pending if record["chain"] == chain]
    if not mine:
        return None
    session.info["audit"] = [record for record in pending if record["chain"] != chain]
    records = []
    for record in mine:
        position_slot, prev_hash_slot = uuid4().hex, uuid4().hex  # tokens no content will hold
        canonical = _canonical(record | {"position": position_slot, "prev_hash": prev_hash_slot})
        records.append(
            record
            | {"chain": str(chain), "occurred_at": record["occurred_at"].isoformat(), "canonical": canonical}
            | {"position_slot": position_slot, "prev_hash_slot": prev_hash_slot}
        )
    return json.dumps(records, ensure_ascii=False)


@dataclass(frozen=True, slots=True)
class ChainBreak:
    chain: UUID
    position: int
    problem: str


def verify_chains(session: Session) -> list[ChainBreak]:
    """The first break in every chain that has one (empty: the trail is intact)."""
    heads: dict[UUID, int] = {c: p for c, p in session.execute(text("SELECT chain, position FROM audit_chain_head"))}
    breaks = []
    chains = set(heads) | set(session.scalars(text("SELECT DISTINCT chain FROM audit_record")))
    for chain in sorted(chains):
        found = _verify_chain(session, chain, heads.get(chain))
        if found is not None:
            breaks.append(found)
    return breaks


def _verify_chain(session: Session, chain: UUID, head_position: int | None) -> ChainBreak | None:
    columns = (
        "chain, position, occurred_at, actor, role, action, object_type, object_id, before, after, prev_hash, hash"
    )
    rows = session.execute(
        text(f"SELECT {columns} FROM audit_record WHERE chain = :c ORDER BY position"),  # noqa: S608
        {"c": chain},
    ).mappings()
    expected_position, last = 1, GENESIS
    for row in rows:
        record = dict(row)
        record["occurred_at"] = record["occurred_at"].astimezone(UTC)
        if record["position"] != expected_position:
            return ChainBreak(chain, expected_position, f"record {expected_position} is missing (removed)")
        if record["prev_hash"] != last:
            return ChainBreak(chain, record["position"], "does not follow the record before it (reordered or removed)")
        if record_hash(record) != record["hash"]:
            return ChainBreak(chain, record["position"], "its content no longer matches its hash (altered)")
        last = record["hash"]
        expected_position += 1
    if head_position is not None and head_position != expected_position - 1:
        return ChainBreak(chain, expected_position, f"the chain should run to {head_position} (records removed)")
    return None


def institution_trail(
    session: Session, *, scope: Caller, institution_id: UUID, limit: int = 50
) -> tuple[list[dict[str, Any]], ChainBreak | None]:
    """An institution's newest audit records and its chain's first break (None: intact), walked in full."""
    if session.scalar(select(Institution.id).where(Institution.id == institution_id, institution_scope(scope))) is None:
        raise NotFound(f"institution {institution_id} does not exist or is outside your scope")
    rows = session.execute(
        text(
            "SELECT position, occurred_at, actor, role, action, object_type, object_id, after FROM audit_record"
            " WHERE chain = :c ORDER BY position DESC LIMIT :n"
        ),
        {"c": institution_id, "n": limit},
    ).mappings()
    head = session.scalar(text("SELECT position FROM audit_chain_head WHERE chain = :c"), {"c": institution_id})
    return [dict(r) for r in rows], _verify_chain(session, institution_id, head)
