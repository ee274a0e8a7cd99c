"""How the engine writes journal transactions fast: private to the ledger package (engine.py writes through
it; idempotency.py claims keys with its array literals), the only place the ledger's speed tricks live, each
with what it buys (bench/http_collections.py, --hot, bench/bulk_import.py).

- One statement per call writes every journal transaction, all their postings and the rows the caller
  writes with them, the transaction's waiting audit notes among them (data-modifying CTEs): one round
  trip while the accounts are locked, and one multi-row INSERT into posting, so the balance trigger moves
  each account once, for the net of the call. Foreign keys are checked at the statement's end. (Round
  trips under the accounts' locks bound --hot: every collection of one institution queues on its custody
  cash account; so the notes, linked to their chain at COMMIT, leave nothing to do but commit.)
- Everything goes in as unnest() of array literals: the statement's text is the same for one entry or a
  thousand, so it is built once per shape and cached (text, not SQLAlchemy constructs: building and
  compiling a select of DML CTEs measured 5 ms a call on this loaded machine, against about 0.1 ms for
  the cached text); an array literal is one parameter for the server to read, where a bound list is one
  per element.
- Where no account may go below zero, the statement itself locks the accounts, in id order, before any
  posting is written (the sub-select the postings wait on): one round trip fewer than locking first.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from functools import lru_cache
from typing import Any
from uuid import UUID

from sqlalchemy import DateTime, Row, Table, TextClause, text
from sqlalchemy.dialects.postgresql.base import PGDialect
from sqlalchemy.orm import Session

_DIALECT = PGDialect()  # type: ignore[no-untyped-call]


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
    return "{" + ",".join("NULL" if v is None else _quoted(_plain(v)) for v in values) + "}"


def _plain(value: object) -> str:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, dict | list):
        return json.dumps(value, default=str)
    return str(value)


def _quoted(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


_JOURNAL = (
    "journal AS (INSERT INTO journal_transaction (institution_id, id, kind, effective_at, reverses_id,"
    " reversal_reason, metadata, legs) SELECT :institution_id, t, k, e, r, rr, m, n FROM unnest(CAST(:txn AS uuid[]),"
    " CAST(:kinds AS text[]), CAST(:effective AS timestamptz[]), CAST(:reverses AS uuid[]),"
    " CAST(:reasons AS text[]), CAST(:metadata AS jsonb[]), CAST(:legs AS int[])) AS u(t, k, e, r, rr, m, n)"
    " RETURNING id, created_at, effective_at)"
)
_POSTINGS = (
    "legs AS (INSERT INTO posting (institution_id, transaction_id, account_id, currency, amount)"
    " SELECT :institution_id, t, a, c, x FROM unnest(CAST(:leg_txn AS uuid[]), CAST(:leg_account AS uuid[]),"
    " CAST(:leg_currency AS text[]), CAST(:leg_amount AS bigint[])) AS u(t, a, c, x){wait}"
    " RETURNING id, transaction_id, account_id, amount)"
)
# counted in full before any posting is written, so every account is locked first, in id order
_WAIT = (
    " WHERE (SELECT count(*) FROM (SELECT id FROM account WHERE institution_id = :institution_id"
    " AND id = ANY(CAST(:lock_ids AS uuid[])) ORDER BY id FOR NO KEY UPDATE) AS locked) = :lock_count"
)


@lru_cache(maxsize=64)
def _statement(lock: bool, tables: tuple[tuple[str, tuple[str, ...], tuple[str, ...]], ...]) -> TextClause:
    """The statement for one shape: with or without the lock, and the caller's (table, columns, types)."""
    rows = "".join(
        f", row_{n} AS (INSERT INTO {table} ({', '.join(columns)}) SELECT * FROM unnest("  # noqa: S608
        + ", ".join(f"CAST(:row_{n}_{i} AS {kind}[])" for i, kind in enumerate(kinds))
        + "))"
        for n, (table, columns, kinds) in enumerate(tables)
    )
    return text(
        f"WITH {_JOURNAL}, {_POSTINGS.format(wait=_WAIT if lock else '')}{rows}"  # noqa: S608
        " SELECT legs.id, legs.transaction_id, legs.account_id, legs.amount, journal.created_at,"
        " journal.effective_at FROM legs JOIN journal ON journal.id = legs.transaction_id"
    )


@lru_cache(maxsize=256)
def _column_types(table: Table, columns: tuple[str, ...]) -> tuple[str, ...]:
    """The SQL type of each column's array (every instant is stored with its time zone: `_at` columns)."""
    return tuple(
        "timestamptz" if isinstance(table.c[name].type, DateTime) else table.c[name].type.compile(_DIALECT)
        for name in columns
    )


def write(
    session: Session,
    *,
    institution_id: UUID,
    entries: Sequence[EntryRow],
    postings: Sequence[PostingRow],
    rows: Sequence[tuple[Table, Sequence[Mapping[str, Any]]]],
    lock_ids: Sequence[UUID],
) -> Sequence[Row[Any]]:
    """Write the entries, their postings and `rows` (a table and the values of each row) in one statement;
    with `lock_ids`, lock those accounts first (no posting is written if one is missing). One row per
    posting written, with its entry's times."""
    params: dict[str, Any] = {
        "institution_id": institution_id,
        "txn": array([e.id for e in entries]),
        "kinds": array([e.kind for e in entries]),
        "effective": array([e.effective_at for e in entries]),
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
    shapes = []
    for n, (table, values) in enumerate(rows):
        columns = tuple(values[0])
        shapes.append((table.name, columns, _column_types(table, columns)))
        params |= {f"row_{n}_{i}": array([row[name] for row in values]) for i, name in enumerate(columns)}
    return session.execute(_statement(bool(lock_ids), tuple(shapes)), params).all()
