"""How the engine writes journal transactions fast: private to escrow/ledger/engine.py, the only place the
ledger's speed tricks live. Each says what it buys, as measured by bench/http_collections.py (--hot) and
bench/bulk_import.py.

- One statement per call writes every journal transaction, all their postings and the rows the caller
  writes with them (data-modifying CTEs): one round trip while the accounts are locked, and one
  multi-row INSERT into posting, so the balance trigger moves each account once, for the net of the call.
  Foreign keys are checked at the statement's end. (Round trips under the accounts' locks are what
  bounds --hot: every collection of one institution queues on its custody cash account.)
- Entries and postings go in as unnest() of array literals: the statement's text is the same for one
  entry or a thousand (PostgreSQL and SQLAlchemy see one shape), and an array literal is one parameter
  for the server to read where a bound list is one per element (bulk_import: 1000-item batches).
- Where no account may go below zero, the accounts are locked by the statement itself, in id order, before
  any posting is written (the sub-select the postings wait on): one round trip fewer than locking first.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import Executable, Row, column, select, text
from sqlalchemy.orm import Session
from sqlalchemy.sql.dml import UpdateBase
from sqlalchemy.types import BigInteger, DateTime, Uuid


@dataclass(frozen=True, slots=True)
class EntryRow:
    """One journal transaction as the statement writes it."""

    id: UUID
    kind: str
    effective_at: datetime
    metadata: str
    reverses_id: UUID | None
    reversal_reason: str | None
    legs: int


@dataclass(frozen=True, slots=True)
class PostingRow:
    transaction_id: UUID
    account_id: UUID
    currency: str
    amount: int


def array(values: Sequence[object]) -> str:
    """A PostgreSQL array literal (None is NULL): one constant for the server to read."""
    quoted = ("NULL" if v is None else '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"' for v in values)
    return "{" + ",".join(quoted) + "}"


_JOURNAL = text(
    "INSERT INTO journal_transaction (institution_id, id, kind, effective_at, reverses_id, reversal_reason,"
    " metadata, legs) SELECT :institution_id, t, k, e, r, rr, m, n FROM unnest(CAST(:txn AS uuid[]),"
    " CAST(:kinds AS text[]), CAST(:effective AS timestamptz[]), CAST(:reverses AS uuid[]),"
    " CAST(:reasons AS text[]), CAST(:metadata AS jsonb[]), CAST(:legs AS int[])) AS u(t, k, e, r, rr, m, n)"
    " RETURNING id, created_at, effective_at, metadata"
).columns(
    column("id", Uuid), column("created_at", DateTime(timezone=True)), column("effective_at", DateTime(timezone=True))
)
_POSTINGS = (
    "INSERT INTO posting (institution_id, transaction_id, account_id, currency, amount)"
    " SELECT :institution_id, t, a, c, x FROM unnest(CAST(:leg_txn AS uuid[]), CAST(:leg_account AS uuid[]),"
    " CAST(:leg_currency AS text[]), CAST(:leg_amount AS bigint[])) AS u(t, a, c, x){wait}"
    " RETURNING id, transaction_id, account_id, amount"
)
# counted in full before any posting is written, so every account is locked first, in id order
_WAIT = (
    " WHERE (SELECT count(*) FROM (SELECT id FROM account WHERE institution_id = :institution_id"
    " AND id = ANY(CAST(:lock_ids AS uuid[])) ORDER BY id FOR NO KEY UPDATE) AS locked) = :lock_count"
)
_POSTING_COLUMNS = (
    column("id", BigInteger),
    column("transaction_id", Uuid),
    column("account_id", Uuid),
    column("amount", BigInteger),
)
_LEGS = text(_POSTINGS.format(wait="")).columns(*_POSTING_COLUMNS)
_LEGS_LOCKED = text(_POSTINGS.format(wait=_WAIT)).columns(*_POSTING_COLUMNS)


def write(
    session: Session,
    *,
    institution_id: UUID,
    entries: Sequence[EntryRow],
    postings: Sequence[PostingRow],
    rows: Sequence[UpdateBase],
    lock_ids: Sequence[UUID],
) -> Sequence[Row[Any]]:
    """Write the entries, their postings and `rows` in one statement; with `lock_ids`, lock those accounts
    first (no posting is written if one is missing). One row per posting written, with its entry's times."""
    journal = _JOURNAL.cte("journal")
    legs = (_LEGS_LOCKED if lock_ids else _LEGS).cte("legs")
    statement: Executable = (
        select(
            legs.c.id,
            legs.c.transaction_id,
            legs.c.account_id,
            legs.c.amount,
            journal.c.created_at,
            journal.c.effective_at,
        )
        .select_from(legs.join(journal, journal.c.id == legs.c.transaction_id))
        .add_cte(*(row.cte(f"row_{n}") for n, row in enumerate(rows)))
    )
    params: dict[str, Any] = {
        "institution_id": institution_id,
        "txn": array([e.id for e in entries]),
        "kinds": array([e.kind for e in entries]),
        "effective": array([e.effective_at.isoformat() for e in entries]),
        "reverses": array([e.reverses_id for e in entries]),
        "reasons": array([e.reversal_reason for e in entries]),
        "metadata": array([e.metadata for e in entries]),
        "legs": array([e.legs for e in entries]),
        "leg_txn": array([p.transaction_id for p in postings]),
        "leg_account": array([p.account_id for p in postings]),
        "leg_currency": array([p.currency for p in postings]),
        "leg_amount": array([p.amount for p in postings]),
    }
    if lock_ids:
        params |= {"lock_ids": array(sorted(lock_ids)), "lock_count": len(lock_ids)}
    return session.execute(statement, params).all()
