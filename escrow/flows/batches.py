"""Collections imported in bulk: a batch is one transaction, whole or not at all; each item is idempotent.

A batch is `collections.collect_many` of its items (one collection is its one-item case): the same
checks, journal kind, metadata, idempotency fingerprint and audit note, in a handful of set-based
statements per batch. This module adds the batch's limits and its view of each item.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from sqlalchemy.orm import Session

from escrow.access.callers import Caller
from escrow.errors import IdempotencyConflict, InvalidRequest
from escrow.flows.collections import CollectionsRefused, Payment, collect_many
from escrow.ledger.idempotency import KeysReused

MAX_ITEMS = 1000
BatchItem = Payment
BatchRefused = CollectionsRefused


@dataclass(frozen=True, slots=True)
class Imported:
    """One item's collection: written by this batch, or (replayed) by the request that first used its key."""

    index: int
    collection_id: UUID
    transaction_id: UUID
    contract_id: UUID
    amount_fen: int
    bank_reference: str
    collected_at: datetime
    replayed: bool


class BatchKeyReused(KeysReused):
    """An item's idempotency key was first used for a different request; the batch changed nothing."""

    code = "batch_idempotency_key_reused"

    def __init__(self, reused: KeysReused) -> None:
        problems = [
            f"item {r.index}: idempotency key {r.key!r} was first used at {r.first_used_at.isoformat()} "
            "for a different request. Use a new key for a new request"
            for r in reused.reused
        ]
        IdempotencyConflict.__init__(self, "nothing was imported: " + "; ".join(problems), problems=problems)
        self.reused = reused.reused
        self.problems = problems


def import_collections(
    session: Session, *, caller: Caller, institution_id: UUID, items: Sequence[BatchItem], now: datetime
) -> list[Imported]:
    """Collect every item of the batch, or none: refused with every bad item named by its index."""
    if not 1 <= len(items) <= MAX_ITEMS:
        raise InvalidRequest(f"a batch holds 1 to {MAX_ITEMS} items, not {len(items)}")
    try:
        done = collect_many(session, caller=caller, institution_id=institution_id, payments=items, now=now)
    except KeysReused as reused:
        raise BatchKeyReused(reused) from None
    return [
        Imported(
            n,
            outcome.value.id,
            outcome.value.transaction_id,
            outcome.value.contract_id,
            outcome.value.amount_fen,
            outcome.value.bank_reference,
            outcome.value.collected_at,
            outcome.replayed,
        )
        for n, outcome in enumerate(done)
    ]
