"""The audit trail: who did what, as which role, when, with before and after.

Use cases note events as they change state. A note is a plain row (audit_note) written in the same
transaction, taking no lock: with the ledger's next write (escrow/db/pending.py), or as the transaction
commits. At COMMIT the database joins each note to its chain (migrations/sql/audit.sql), after every
account the transaction locked: records are chained by SHA-256 per institution, each carrying the hash of
the one before it in its chain. `verify_chains` walks the chains and names the first record that was
altered, removed or reordered.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar
from uuid import UUID, uuid4

from sqlalchemy import Column, MetaData, Table, Text, Uuid, select, text
from sqlalchemy.orm import Session

from escrow.access.callers import Caller, institution_scope
from escrow.db.pending import add_row
from escrow.db.records import Institution
from escrow.errors import EscrowError, NotFound

T = TypeVar("T")
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

# a note waiting to join its chain: its record's canonical JSON with two slots (random tokens standing for
# the position and the previous hash, which only the chain's head can tell), filled in and hashed at COMMIT
NOTE = Table(
    "audit_note",
    MetaData(),
    Column("chain", Uuid),
    Column("canonical", Text),
    Column("position_slot", Text),
    Column("prev_hash_slot", Text),
)


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
    """Record that `who` did `action` to an object: on the trail as the transaction commits, in the order noted."""
    by = actor_of(who)
    record = {
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
    position_slot, prev_hash_slot = uuid4().hex, uuid4().hex  # tokens no content will hold
    canonical = _canonical(record | {"position": position_slot, "prev_hash": prev_hash_slot})
    add_row(
        session,
        NOTE,
        {
            "chain": record["chain"],
            "canonical": canonical,
            "position_slot": position_slot,
            "prev_hash_slot": prev_hash_slot,
        },
    )


def all_or_nothing(session: Session, action: Callable[[], T]) -> T:
    """Run `action` in a savepoint: refused (an EscrowError), it leaves nothing behind, its audit notes
    included, even for a caller that catches the refusal and goes on to commit (a page showing a form again)."""
    notes = list(session.info.get("audit", []))
    savepoint = session.begin_nested()
    try:
        result = action()
    except EscrowError:
        savepoint.rollback()
        session.info["audit"] = notes
        raise
    savepoint.commit()
    return result


def rehearsed(session: Session, action: Callable[[], T]) -> T:
    """Run `action` and undo it whatever happens, notes included: what it would do, or why it would be refused."""
    notes = list(session.info.get("audit", []))
    savepoint = session.begin_nested()
    try:
        return action()
    finally:
        savepoint.rollback()
        session.info["audit"] = notes


def _plain(values: dict[str, Any] | None) -> dict[str, Any] | None:
    return None if values is None else json.loads(json.dumps(values, default=str))


def record_hash(record: dict[str, Any]) -> str:
    """SHA-256 of the record's content and the hash before it, in one canonical form."""
    return hashlib.sha256(_canonical(record).encode()).hexdigest()


def _canonical(record: dict[str, Any]) -> str:
    content = {**record, "chain": str(record["chain"]), "occurred_at": record["occurred_at"].isoformat()}
    content.pop("hash", None)
    return json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


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
