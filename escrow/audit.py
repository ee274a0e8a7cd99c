"""The audit trail: who did what, as which role, when, with before and after.

Use cases note events as they change state; the notes are written when the transaction commits,
in the same transaction, chained by SHA-256 per institution: each record carries the hash of the
one before it in its chain. `verify_chains` walks the chains and names the first record that was
altered, removed or reordered.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any
from uuid import UUID

from sqlalchemy import TextClause, event, text
from sqlalchemy.orm import Session

from escrow.access import Caller

DISTRICT = UUID(int=0)  # the chain of acts that belong to no one institution (tokens, jurisdictions)
GENESIS = "0" * 64


@dataclass(frozen=True, slots=True)
class Actor:
    name: str
    role: str


def actor_of(caller: Caller | Actor) -> Actor:
    return caller if isinstance(caller, Actor) else Actor(caller.principal, caller.role.value)


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
    content = {**record, "chain": str(record["chain"]), "occurred_at": record["occurred_at"].isoformat()}
    content.pop("hash", None)
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


_COLUMNS = ("position", "occurred_at", "actor", "role", "action", "object_type", "object_id", "before", "after")
_HEAD = text("SELECT position, hash FROM audit_chain_head WHERE chain = :c FOR UPDATE")
_START = text("INSERT INTO audit_chain_head (chain, position, hash) VALUES (:c, 0, :g) ON CONFLICT (chain) DO NOTHING")


@lru_cache(maxsize=32)
def _append(records: int) -> TextClause:
    """One statement that appends `records` records to a chain and moves its head past them
    (only placeholders are formatted in; the values are bound)."""
    rows = ", ".join(
        f"(:chain, :position_{n}, :occurred_at_{n}, :actor_{n}, :role_{n}, :action_{n}, :object_type_{n},"
        f" :object_id_{n}, CAST(:before_{n} AS jsonb), CAST(:after_{n} AS jsonb), :prev_hash_{n}, :hash_{n})"
        for n in range(records)
    )
    columns = (
        "chain, position, occurred_at, actor, role, action, object_type, object_id, before, after, prev_hash, hash"
    )
    append = f"INSERT INTO audit_record ({columns}) VALUES {rows}"  # noqa: S608
    move = "UPDATE audit_chain_head SET position = :head_position, hash = :head_hash WHERE chain = :chain"
    return text(f"WITH appended AS ({append}) {move}")


@event.listens_for(Session, "before_commit")
def _write_notes(session: Session) -> None:
    pending = session.info.pop("audit", [])
    if not pending:
        return
    by_chain: dict[UUID, list[dict[str, Any]]] = defaultdict(list)
    for record in pending:
        by_chain[record["chain"]].append(record)
    for chain in sorted(by_chain):  # heads are locked in one order, like accounts
        head = session.execute(_HEAD, {"c": chain}).first()
        if head is None:  # the chain's first record: start it (a concurrent starter makes this wait, then no-op)
            session.execute(_START, {"c": chain, "g": GENESIS})
            head = session.execute(_HEAD, {"c": chain}).one()
        position, last = head
        values: dict[str, Any] = {"chain": chain}
        for n, record in enumerate(by_chain[chain]):
            position += 1
            record.update(position=position, prev_hash=last)
            last = record["hash"] = record_hash(record)
            values |= {f"{column}_{n}": record[column] for column in _COLUMNS}
            values |= {f"before_{n}": _json(record["before"]), f"after_{n}": _json(record["after"])}
            values |= {f"prev_hash_{n}": record["prev_hash"], f"hash_{n}": record["hash"]}
        session.execute(_append(len(by_chain[chain])), values | {"head_position": position, "head_hash": last})


def _json(value: dict[str, Any] | None) -> str | None:
    return None if value is None else json.dumps(value)


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
