"""The ledger engine: plain functions over a session. They lock, check, post and return; never commit.

Accounts are locked in id order before funds are checked, so concurrent postings queue instead of
overdrawing or deadlocking. PostgreSQL re-checks everything (see migrations/versions/0001_ledger.py).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast
from uuid import UUID

from sqlalchemy import Insert, Table, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from escrow.db.pending import take_rows
from escrow.errors import (
    AccountConflict,
    AlreadyReversed,
    InsufficientFunds,
    InvalidRequest,
    NotFound,
    UnbalancedTransaction,
)
from escrow.ids import new_id
from escrow.ledger import _accounts, _fused
from escrow.ledger.idempotency import IdempotencyKey, Outcome, run_once
from escrow.ledger.model import (
    AccountKind,
    AccountState,
    JournalEntry,
    NewEntry,
    PostingLine,
    Side,
    check_funds,
    check_legs,
    reversing_legs,
)
from escrow.ledger.records import Account, JournalTransaction, Posting
from escrow.rules.money import check_currency

MAX_PAGE = 500
KIND = re.compile(r"^[a-z][a-z0-9_]{0,62}$")  # the same rule as the CHECK on journal_transaction.kind


def open_account(
    session: Session,
    *,
    institution_id: UUID,
    code: str,
    kind: AccountKind,
    normal_side: Side,
    contract_id: UUID | None = None,
    currency: str = "CNY",
    allow_negative: bool = False,
) -> AccountState:
    """Open the account `code` of an institution, or return it if it is already open as asked.

    A prepaid or refund_payable account names its contract; no other kind does."""
    try:
        check_currency(currency)
    except ValueError as exc:
        raise InvalidRequest(str(exc)) from exc
    if kind.per_contract != (contract_id is not None):
        raise InvalidRequest(f"a {kind} account {'needs' if kind.per_contract else 'takes no'} contract")
    session.execute(
        pg_insert(Account)
        .values(
            institution_id=institution_id,
            id=new_id(),
            code=code,
            kind=kind,
            contract_id=contract_id,
            normal_side=normal_side.value,
            currency=currency,
            allow_negative=allow_negative,
        )
        .on_conflict_do_nothing(index_elements=["institution_id", "code"])
    )
    row = session.scalars(_accounts_of(institution_id).where(Account.code == code)).one()
    account = _state(row)
    if (account.normal_side, account.currency, account.allow_negative, row.kind, row.contract_id) != (
        normal_side,
        currency,
        allow_negative,
        kind,
        contract_id,
    ):
        raise AccountConflict(
            f"account {code!r} is already open as {account.normal_side}-side {account.currency}"
            f"{' allowing negative' if account.allow_negative else ''}, a {row.kind} account"
            f"{f' of contract {row.contract_id}' if row.contract_id else ''}; it cannot be reopened differently",
            code=code,
        )
    return account


def get_account(session: Session, *, institution_id: UUID, account_id: UUID) -> AccountState:
    row = session.scalars(_accounts_of(institution_id).where(Account.id == account_id)).one_or_none()
    if row is None:
        raise NotFound(f"account {account_id} does not exist in this institution")
    return _state(row)


def post_transaction(
    session: Session,
    *,
    institution_id: UUID,
    entry: NewEntry,
    idempotency: IdempotencyKey,
) -> Outcome[JournalEntry]:
    """Post one entry once per idempotency key; a replay returns the transaction the key first posted."""
    request = {
        "operation": "post",
        "kind": entry.kind,
        "legs": [[str(leg.account_id), leg.amount] for leg in entry.legs],
        "effective_at": entry.effective_at,
        "metadata": entry.metadata or None,
    }
    return run_once(
        session,
        institution_id=institution_id,
        key=idempotency,
        request=request,
        perform=lambda: record_entry(session, institution_id=institution_id, entry=entry),
        planned={"transaction_id": str(entry.id)},
        recall=lambda stored: get_entry(
            session, institution_id=institution_id, transaction_id=UUID(stored["transaction_id"])
        ),
    )


def reverse_transaction(
    session: Session,
    *,
    institution_id: UUID,
    transaction_id: UUID,
    reason: str,
    idempotency: IdempotencyKey,
    effective_at: datetime | None = None,
) -> Outcome[JournalEntry]:
    """Undo a transaction exactly with a new one that names it and why. Each is reversed at most once."""
    request = {
        "operation": "reverse",
        "transaction_id": str(transaction_id),
        "reason": reason,
        "effective_at": effective_at,
    }
    reversal = new_id()  # chosen first, so the key is claimed with its outcome
    return run_once(
        session,
        institution_id=institution_id,
        key=idempotency,
        request=request,
        perform=lambda: _reverse(session, institution_id, transaction_id, reason, effective_at, reversal),
        planned={"transaction_id": str(reversal)},
        recall=lambda stored: get_entry(
            session, institution_id=institution_id, transaction_id=UUID(stored["transaction_id"])
        ),
    )


def _reverse(
    session: Session,
    institution_id: UUID,
    transaction_id: UUID,
    reason: str,
    effective_at: datetime | None,
    reversal_id: UUID,
) -> JournalEntry:
    if not reason.strip():
        raise InvalidRequest("a reversal needs a reason")
    # the row lock makes concurrent reversals of one transaction queue, so the second sees the first
    original = session.scalars(
        select(JournalTransaction)
        .where(JournalTransaction.institution_id == institution_id, JournalTransaction.id == transaction_id)
        .with_for_update(key_share=True)
    ).one_or_none()
    if original is None:
        raise NotFound(f"journal transaction {transaction_id} does not exist in this institution")
    earlier = session.scalar(
        select(JournalTransaction.id).where(
            JournalTransaction.institution_id == institution_id,
            JournalTransaction.reverses_id == transaction_id,
        )
    )
    if earlier is not None:
        raise AlreadyReversed(
            f"journal transaction {transaction_id} was already reversed by {earlier}", reversal_id=str(earlier)
        )
    reversal = NewEntry(
        kind=original.kind,
        legs=reversing_legs(_postings_of(session, institution_id, transaction_id)),
        effective_at=effective_at,
        id=reversal_id,
    )
    return _record(session, institution_id, [reversal], (), reverses=(transaction_id, reason.strip()))[0]


def get_entry(session: Session, *, institution_id: UUID, transaction_id: UUID) -> JournalEntry:
    row = session.scalars(
        select(JournalTransaction).where(
            JournalTransaction.institution_id == institution_id, JournalTransaction.id == transaction_id
        )
    ).one_or_none()
    if row is None:
        raise NotFound(f"journal transaction {transaction_id} does not exist in this institution")
    return _entry(row, _postings_of(session, institution_id, transaction_id))


def balance_of(
    session: Session,
    *,
    institution_id: UUID,
    account_id: UUID,
    as_of: datetime | None = None,
    known_at: datetime | None = None,
) -> int:
    """The balance on the account's normal side: now (cached), or as of a business instant,
    optionally as the books stood at `known_at` (recorded time)."""
    account = get_account(session, institution_id=institution_id, account_id=account_id)
    if as_of is None and known_at is None:
        return account.balance
    query = (
        select(func.coalesce(func.sum(Posting.amount), 0))
        .join(
            JournalTransaction,
            (JournalTransaction.institution_id == Posting.institution_id)
            & (JournalTransaction.id == Posting.transaction_id),
        )
        .where(Posting.institution_id == institution_id, Posting.account_id == account_id)
    )
    if as_of is not None:
        query = query.where(JournalTransaction.effective_at <= _aware(as_of, "as_of"))
    if known_at is not None:
        query = query.where(JournalTransaction.created_at <= _aware(known_at, "known_at"))
    return int(session.scalar(query) or 0) * account.normal_side.sign


@dataclass(frozen=True, slots=True)
class AccountPosting:
    id: int
    transaction_id: UUID
    kind: str
    amount: int
    currency: str
    effective_at: datetime
    created_at: datetime


@dataclass(frozen=True, slots=True)
class PostingPage:
    items: list[AccountPosting]
    next_after: int | None
    """Pass as `after` for the next page; None on the last page."""


def list_postings(
    session: Session, *, institution_id: UUID, account_id: UUID, after: int | None = None, limit: int = 100
) -> PostingPage:
    """The postings of an account in the order they were written, a page at a time."""
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidRequest(f"limit must be between 1 and {MAX_PAGE}, got {limit}")
    get_account(session, institution_id=institution_id, account_id=account_id)
    query = (
        select(Posting, JournalTransaction)
        .join(
            JournalTransaction,
            (JournalTransaction.institution_id == Posting.institution_id)
            & (JournalTransaction.id == Posting.transaction_id),
        )
        .where(Posting.institution_id == institution_id, Posting.account_id == account_id)
        .order_by(Posting.id)
        .limit(limit + 1)
    )
    if after is not None:
        query = query.where(Posting.id > after)
    rows = session.execute(query).all()
    items = [
        AccountPosting(p.id, p.transaction_id, t.kind, p.amount, p.currency, t.effective_at, t.created_at)
        for p, t in rows[:limit]
    ]
    return PostingPage(items, items[-1].id if len(rows) > limit else None)


@dataclass(frozen=True, slots=True)
class Rows:
    """Domain rows written with journal transactions, as SQLAlchemy executes many: a bare
    `insert(Table)` and the values of each row (every row naming the same columns)."""

    insert: Insert
    values: Sequence[Mapping[str, Any]]


def record_entry(session: Session, *, institution_id: UUID, entry: NewEntry, rows: Sequence[Rows] = ()) -> JournalEntry:
    """Lock, check and write one journal transaction and the domain `rows` that record what it was for,
    all or nothing."""
    return record_entries(session, institution_id=institution_id, entries=[entry], rows=rows)[0]


def record_entries(
    session: Session, *, institution_id: UUID, entries: Sequence[NewEntry], rows: Sequence[Rows] = ()
) -> list[JournalEntry]:
    """Lock, check and write many journal transactions of one institution and the domain `rows` written
    with them, all or nothing; each entry balances on its own, funds are checked on their sum."""
    return _record(session, institution_id, entries, rows)


def _record(
    session: Session,
    institution_id: UUID,
    entries: Sequence[NewEntry],
    rows: Sequence[Rows],
    reverses: tuple[UUID, str] | None = None,
) -> list[JournalEntry]:
    if not entries:
        raise InvalidRequest("nothing to post: no entries")
    session.flush()  # what the caller added goes in first, as before any other statement of its transaction
    legs = [leg for entry in entries for leg in entry.legs]
    ids = sorted({leg.account_id for leg in legs})
    accounts = _accounts.read_accounts(session, institution_id, ids)
    problems = [problem for entry in entries for problem in _entry_problems(entry, accounts, len(entries) > 1)]
    if problems:
        raise UnbalancedTransaction(problems)
    lock_in_write = not _accounts.lowers_a_floored_account(legs, accounts)
    if not lock_in_write:  # funds to check: lock first, then check the balances as they now are
        accounts = _accounts.lock_accounts(session, institution_id, ids)
        if len(accounts) < len(ids):
            _accounts.vanished(session, institution_id, ids)
        short = check_funds(legs, accounts)
        if short:
            raise InsufficientFunds("; ".join(short), problems=short)
    when = {entry.id: _effective(entry.effective_at) for entry in entries}
    written = _fused.write(
        session,
        institution_id=institution_id,
        entries=[
            _fused.EntryRow(
                entry.id,
                entry.kind,
                when[entry.id],
                json.dumps(dict(entry.metadata)),
                reverses and reverses[0],
                reverses and reverses[1],
                len(entry.legs),
            )
            for entry in entries
        ],
        postings=[
            _fused.PostingRow(entry.id, leg.account_id, accounts[leg.account_id].currency, leg.amount)
            for entry in entries
            for leg in entry.legs
        ],
        rows=[(cast(Table, r.insert.table), r.values) for r in rows if r.values] + take_rows(session),
        lock_ids=ids if lock_in_write else (),
    )
    if not written:  # an account it locks was not there (its legs are not written)
        _accounts.vanished(session, institution_id, ids)
    return _entries(institution_id, entries, written, accounts, reverses)


def _entry_problems(entry: NewEntry, accounts: Mapping[UUID, AccountState], numbered: bool) -> list[str]:
    problems = check_legs(entry.legs, accounts)
    if not KIND.match(entry.kind):
        problems.insert(0, f"kind {entry.kind!r} must be snake_case: a lowercase letter, then letters, digits or _")
    return [f"entry {entry.id}: {p}" for p in problems] if numbered else problems


def _entries(
    institution_id: UUID,
    entries: Sequence[NewEntry],
    written: Sequence[Any],
    accounts: Mapping[UUID, AccountState],
    reverses: tuple[UUID, str] | None,
) -> list[JournalEntry]:
    lines: dict[UUID, list[PostingLine]] = {entry.id: [] for entry in entries}
    times = {}
    for r in written:
        lines[r.transaction_id].append(PostingLine(r.id, r.account_id, r.amount, accounts[r.account_id].currency))
        times[r.transaction_id] = (r.effective_at, r.created_at)
    return [
        JournalEntry(
            id=entry.id,
            institution_id=institution_id,
            kind=entry.kind,
            effective_at=times[entry.id][0],
            created_at=times[entry.id][1],
            postings=tuple(sorted(lines[entry.id], key=lambda line: line.id)),
            reverses_id=reverses and reverses[0],
            reversal_reason=reverses and reverses[1],
            metadata=dict(entry.metadata),
        )
        for entry in entries
    ]


def _effective(effective_at: datetime | None) -> datetime:
    now = datetime.now(UTC)
    if effective_at is None:
        return now
    when = _aware(effective_at, "effective_at")
    if when > now:
        raise InvalidRequest(f"effective_at {when.isoformat()} is in the future; book it when it happens")
    return when


def _aware(instant: datetime, name: str) -> datetime:
    if instant.tzinfo is None:
        raise InvalidRequest(f"{name} must carry a time zone (for example 2026-01-31T16:00:00Z)")
    return instant


def _postings_of(session: Session, institution_id: UUID, transaction_id: UUID) -> tuple[PostingLine, ...]:
    rows = session.scalars(
        select(Posting)
        .where(Posting.institution_id == institution_id, Posting.transaction_id == transaction_id)
        .order_by(Posting.id)
    ).all()
    return tuple(PostingLine(p.id, p.account_id, p.amount, p.currency) for p in rows)


def _accounts_of(institution_id: UUID) -> Any:
    return select(Account).where(Account.institution_id == institution_id)


def _state(row: Account) -> AccountState:
    return AccountState(
        id=row.id,
        code=row.code,
        currency=row.currency,
        normal_side=Side(row.normal_side),
        allow_negative=row.allow_negative,
        balance=row.balance,
    )


def _entry(row: JournalTransaction, postings: tuple[PostingLine, ...]) -> JournalEntry:
    return JournalEntry(
        id=row.id,
        institution_id=row.institution_id,
        kind=row.kind,
        effective_at=row.effective_at,
        created_at=row.created_at,
        postings=postings,
        reverses_id=row.reverses_id,
        reversal_reason=row.reversal_reason,
        metadata=row.metadata_,
    )
