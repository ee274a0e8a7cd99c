"""Rows a use case has made but need not write yet: they go with the next statement that writes anyway
(the ledger engine's, through `take_rows`), or are inserted as the transaction commits.

For rows that take no lock and that nothing reads before the commit (audit notes): riding with the
ledger's write saves a round trip while its accounts are locked. They are written in the order they were
made, all at once: none inside a savepoint (its rollback would take rows made before it, and a release
would put its own before theirs). A rollback takes away exactly what it undoes: a savepoint's the rows
made inside it, the transaction's all of them; a refused step forgets its own (`forget_since`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Table, event, insert
from sqlalchemy.orm import Session, SessionTransaction

_ROWS = "pending_rows"  # session.info: [(number, table, values)] in the order they were made
_MADE = "pending_made"  # session.info: how many rows this transaction has made (the last one's number)
_MARKS = "pending_marks"  # session.info: {savepoint: how many rows were made as it began}


def add_row(session: Session, table: Table, values: Mapping[str, Any]) -> None:
    """Write a row of `table` later in this transaction: with the next ledger statement, or at commit."""
    session.info[_MADE] = made(session) + 1
    session.info.setdefault(_ROWS, []).append((session.info[_MADE], table, values))


def made(session: Session) -> int:
    """How many rows the transaction has made so far: a mark for `forget_since`."""
    count: int = session.info.get(_MADE, 0)
    return count


def forget_since(session: Session, mark: int) -> None:
    """Forget the rows made after `mark` that are not written yet (those of a step that was refused)."""
    session.info[_ROWS] = [row for row in session.info.get(_ROWS, []) if row[0] <= mark]


def take_rows(session: Session) -> list[tuple[Table, Sequence[Mapping[str, Any]]]]:
    """The waiting rows, taken off the session by the statement that writes them, by table and columns in
    the order they were made (none inside a savepoint)."""
    if session.in_nested_transaction():
        return []
    groups: dict[tuple[Table, tuple[str, ...]], list[Mapping[str, Any]]] = {}
    for _, table, values in session.info.pop(_ROWS, []):
        groups.setdefault((table, tuple(values)), []).append(values)
    return [(table, values) for (table, _), values in groups.items()]


@event.listens_for(Session, "before_commit")
def _write_rest(session: Session) -> None:
    for table, values in take_rows(session):  # a savepoint's release leaves its rows to the transaction
        session.execute(insert(table), values)


@event.listens_for(Session, "after_transaction_create")
def _mark(session: Session, transaction: SessionTransaction) -> None:
    if transaction.nested:
        session.info.setdefault(_MARKS, {})[transaction] = made(session)


@event.listens_for(Session, "after_soft_rollback")
def _forget_undone(session: Session, previous_transaction: SessionTransaction) -> None:
    mark = session.info.get(_MARKS, {}).pop(previous_transaction, None)
    if mark is not None:
        forget_since(session, mark)


@event.listens_for(Session, "after_transaction_end")
def _forget_all(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None:  # committed (nothing waits) or rolled back (nothing was written)
        for key in (_ROWS, _MADE, _MARKS):
            session.info.pop(key, None)
