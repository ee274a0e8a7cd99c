"""The ledger engine: plain functions over a session. They lock, check, post and return; never commit.

Accounts are locked in id order before funds are checked, so concurrent postings queue instead of
overdrawing or deadlocking. PostgreSQL re-checks everything (see migrations/versions/0001_ledger.py).
"""

from __future__ import annotations

import json
import re
import threading
from collections import OrderedDict
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, NoReturn, cast
from uuid import UUID
from weakref import WeakKeyDictionary

from sqlalchemy import Engine, Table, TextClause, bindparam, func, select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from escrow.access.audit import take_notes
from escrow.errors import (
    AccountConflict,
    AlreadyReversed,
    InsufficientFunds,
    InvalidRequest,
    NotFound,
    UnbalancedTransaction,
)
from escrow.ids import new_id
from escrow.ledger.idempotency import (
    NEW_KEY_SQL,
    OUTCOME_SQL,
    IdempotencyKey,
    claim_key,
    new_key_params,
    outcome_params,
)
from escrow.ledger.model import (
    AccountKind,
    AccountState,
    JournalEntry,
    Leg,
    PostingLine,
    Side,
    balance_delta,
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
    row = session.scalars(_accounts(institution_id).where(Account.code == code)).one()
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
    row = session.scalars(_accounts(institution_id).where(Account.id == account_id)).one_or_none()
    if row is None:
        raise NotFound(f"account {account_id} does not exist in this institution")
    return _state(row)


def post_transaction(
    session: Session,
    *,
    institution_id: UUID,
    kind: str,
    legs: Sequence[Leg],
    idempotency: IdempotencyKey,
    effective_at: datetime | None = None,
    metadata: Mapping[str, Any] | None = None,
    unused_key: bool = False,
) -> JournalEntry:
    """Post balanced legs as one journal transaction, once per idempotency key. With `unused_key` (the
    caller holds the lock that makes a replay impossible) the key is written by the statement that writes
    the postings instead of claimed before them: two round trips fewer, and a used key is still refused,
    by the key's primary key."""
    request = {
        "operation": "post",
        "kind": kind,
        "legs": [[str(leg.account_id), leg.amount] for leg in legs],
        "effective_at": effective_at,
        "metadata": metadata,
    }
    if unused_key:
        key_write = AlsoWrite(NEW_KEY_SQL, new_key_params(idempotency, request))
    else:
        earlier = claim_key(session, institution_id=institution_id, key=idempotency, request=request)
        if earlier is not None:
            return _replay(session, institution_id, earlier.transaction_id)
        key_write = outcome_write(idempotency)
    return record_entry(
        session,
        institution_id=institution_id,
        kind=kind,
        legs=legs,
        effective_at=effective_at,
        metadata=metadata or {},
        also=[key_write],
    )


def reverse_transaction(
    session: Session,
    *,
    institution_id: UUID,
    transaction_id: UUID,
    reason: str,
    idempotency: IdempotencyKey,
    effective_at: datetime | None = None,
) -> JournalEntry:
    """Undo a transaction exactly with a new one that names it and why. Each is reversed at most once."""
    request = {
        "operation": "reverse",
        "transaction_id": str(transaction_id),
        "reason": reason,
        "effective_at": effective_at,
    }
    earlier = claim_key(session, institution_id=institution_id, key=idempotency, request=request)
    if earlier is not None:
        return _replay(session, institution_id, earlier.transaction_id)
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
    reversal_id = session.scalar(
        select(JournalTransaction.id).where(
            JournalTransaction.institution_id == institution_id,
            JournalTransaction.reverses_id == transaction_id,
        )
    )
    if reversal_id is not None:
        raise AlreadyReversed(
            f"journal transaction {transaction_id} was already reversed by {reversal_id}",
            reversal_id=str(reversal_id),
        )
    entry = record_entry(
        session,
        institution_id=institution_id,
        kind=original.kind,
        legs=reversing_legs(_postings_of(session, institution_id, transaction_id)),
        effective_at=effective_at,
        metadata={},
        reverses_id=transaction_id,
        reversal_reason=reason.strip(),
        also=[outcome_write(idempotency)],
    )
    return entry


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


_ACCOUNT = cast(Table, Account.__table__)
_JOURNAL = cast(Table, JournalTransaction.__table__)
_POSTING = cast(Table, Posting.__table__)
# Built once (the engine runs them on every posting); FOR NO KEY UPDATE, so foreign-key checks elsewhere need not wait
_READ_ACCOUNTS = (
    select(
        _ACCOUNT.c.id,
        _ACCOUNT.c.code,
        _ACCOUNT.c.currency,
        _ACCOUNT.c.normal_side,
        _ACCOUNT.c.allow_negative,
        _ACCOUNT.c.balance,
    )
    .where(
        _ACCOUNT.c.institution_id == bindparam("p_institution_id"),
        _ACCOUNT.c.id.in_(bindparam("p_ids", expanding=True)),
    )
    .order_by(_ACCOUNT.c.id)
)
_LOCK_ACCOUNTS = _READ_ACCOUNTS.with_for_update(key_share=True)


@dataclass(frozen=True, slots=True)
class AlsoWrite:
    """An INSERT or UPDATE (without RETURNING) written by the same statement as a journal transaction: the
    rows that record what the transaction was for, in the one round trip made while its accounts are locked.
    Its SQL may use :institution_id, :transaction_id and :effective_at; its own parameters are named p_*."""

    sql: str
    params: Mapping[str, Any]


def outcome_write(key: IdempotencyKey, result: Mapping[str, Any] | None = None) -> AlsoWrite:
    """The idempotency key's outcome, written with the transaction it produced."""
    return AlsoWrite(OUTCOME_SQL, outcome_params(key, result))


@lru_cache(maxsize=64)
def _write_entry(legs: int, also: tuple[str, ...], lock: int = 0, audit: bool = False) -> TextClause:
    """One statement that writes the journal transaction, its `legs` postings and the `also` writes: one
    round trip while the accounts are locked, and one multi-row INSERT, so the balance trigger sees the
    legs together and only their net counts; foreign keys are checked at its end. (Text, because
    SQLAlchemy compiles a multi-row insert() anew on every call; only placeholders and the callers'
    constant SQL are formatted in.) With `lock`, it first locks that many accounts (:lock_0...) in id
    order, as lock_accounts would, and writes the postings only once it holds them all. With `audit`, it
    last appends :audit_records to the institution's audit chain (audit_append), once the postings are
    written: after the accounts, the order every transaction locks them in."""
    postings = ", ".join(
        f"(:institution_id, :transaction_id, :account_{n}, :currency_{n}, :amount_{n})" for n in range(legs)
    )
    journal = (
        "INSERT INTO journal_transaction (institution_id, id, kind, effective_at, reverses_id, reversal_reason,"  # noqa: S608
        " metadata, legs) VALUES (:institution_id, :transaction_id, :kind, :effective_at, :reverses_id,"
        f" :reversal_reason, CAST(:metadata AS jsonb), {legs}) RETURNING created_at, effective_at, metadata"
    )
    locked, wait = "", ""
    if lock:
        ids = ", ".join(f":lock_{n}" for n in range(lock))
        locked = (  # counted in full before any posting is written, so every row is locked first
            "locked AS (SELECT id FROM account WHERE institution_id = :institution_id"  # noqa: S608
            f" AND id IN ({ids}) ORDER BY id FOR NO KEY UPDATE), "
        )
        wait = f" WHERE (SELECT count(*) FROM locked) = {lock}"  # noqa: S608
    written = (
        "INSERT INTO posting (institution_id, transaction_id, account_id, currency, amount)"  # noqa: S608
        f" SELECT * FROM (VALUES {postings}) AS v{wait} RETURNING id, account_id, amount"
    )
    extra = "".join(f", also_{n} AS ({sql})" for n, sql in enumerate(also))
    if audit:
        extra += (
            ", audit AS (SELECT audit_append(:institution_id, CAST(:audit_records AS jsonb))"
            " FROM (SELECT count(*) FROM legs) AS written)"
        )
    return text(
        f"WITH {locked}journal AS ({journal}), legs AS ({written}){extra}"  # noqa: S608
        " SELECT legs.id, legs.account_id, legs.amount, journal.created_at, journal.effective_at, journal.metadata"
        f" FROM legs, journal{', audit' if audit else ''}"
    )


def lock_accounts(session: Session, institution_id: UUID, account_ids: Collection[UUID]) -> dict[UUID, AccountState]:
    """Lock the accounts in id order (the one fixed order that prevents deadlocks) and read them."""
    return _account_states(session.execute(_LOCK_ACCOUNTS, _ids(institution_id, account_ids)))


def read_accounts(session: Session, institution_id: UUID, account_ids: Collection[UUID]) -> dict[UUID, AccountState]:
    """The accounts as they are now, unlocked."""
    return _account_states(session.execute(_READ_ACCOUNTS, _ids(institution_id, account_ids)))


KNOWN_ACCOUNTS = 10_000  # per database, in each process: the accounts of its recent postings
_KNOWN: WeakKeyDictionary[Engine, OrderedDict[tuple[UUID, UUID], AccountState]] = WeakKeyDictionary()
_KNOWN_LOCK = threading.Lock()  # request threads share them


def _known(session: Session) -> OrderedDict[tuple[UUID, UUID], AccountState]:
    engine = session.connection().engine
    with _KNOWN_LOCK:
        return _KNOWN.setdefault(engine, OrderedDict())


def known_accounts(session: Session, institution_id: UUID, account_ids: Collection[UUID]) -> dict[UUID, AccountState]:
    """The accounts' identity, side, currency and floor, which PostgreSQL never lets change (see
    ledger_guard_account): read once per database and process and kept, for every connection to use (an
    account some transaction opened and then rolled back is caught by the write: see _vanished). Their
    balances are as first read, so funds are checked only against lock_accounts'."""
    known = _known(session)
    accounts = {a: known.get((institution_id, a)) for a in account_ids}
    missing = [a for a, state in accounts.items() if state is None]
    if missing:
        found = read_accounts(session, institution_id, missing)
        accounts |= found
        with _KNOWN_LOCK:
            for account in found.values():
                known[institution_id, account.id] = account
            while len(known) > KNOWN_ACCOUNTS:  # the oldest go first
                known.popitem(last=False)
    return {a: state for a, state in accounts.items() if state is not None}


def _vanished(session: Session, institution_id: UUID, ids: Collection[UUID]) -> NoReturn:
    """Some account known to this process is gone: its opening was rolled back after it was read."""
    known = _known(session)
    with _KNOWN_LOCK:
        for account_id in ids:
            known.pop((institution_id, account_id), None)
    there = read_accounts(session, institution_id, ids)
    raise UnbalancedTransaction(
        [f"account {a} does not exist in this institution" for a in ids if a not in there]
        or ["an account it posts to could not be locked"]
    )


def lowers_a_floored_account(legs: Sequence[Leg], accounts: Mapping[UUID, AccountState]) -> bool:
    """Whether the legs take anything from an account that may not go below zero (so funds need checking)."""
    net: dict[UUID, int] = {}
    for leg in legs:
        net[leg.account_id] = net.get(leg.account_id, 0) + balance_delta(accounts[leg.account_id], leg.amount)
    return any(delta < 0 and not accounts[account_id].allow_negative for account_id, delta in net.items())


def _ids(institution_id: UUID, account_ids: Collection[UUID]) -> dict[str, Any]:
    return {"p_institution_id": institution_id, "p_ids": sorted(set(account_ids))}


def _account_states(rows: Any) -> dict[UUID, AccountState]:
    return {
        r.id: AccountState(
            id=r.id,
            code=r.code,
            currency=r.currency,
            normal_side=Side(r.normal_side),
            allow_negative=r.allow_negative,
            balance=r.balance,
        )
        for r in rows
    }


def record_entry(
    session: Session,
    *,
    institution_id: UUID,
    kind: str,
    legs: Sequence[Leg],
    effective_at: datetime | None,
    metadata: Mapping[str, Any],
    reverses_id: UUID | None = None,
    reversal_reason: str | None = None,
    also: Sequence[AlsoWrite] = (),
    transaction_id: UUID | None = None,
    last_write: bool = False,
) -> JournalEntry:
    """Lock, check and write one journal transaction (with `transaction_id`, when the caller chose it) and
    `also` what records it. Callers claim an idempotency key first. `last_write`: nothing after it in the
    database transaction locks an account, so the institution's audit notes so far are appended by the
    same statement, and the chain's head is held no longer than the accounts. (Before a later write, the
    head would be held while that write waits for accounts: the reverse of everyone else's order.)"""
    when = _effective(effective_at)
    if not KIND.match(kind):
        raise InvalidRequest(f"kind {kind!r} must be snake_case: a lowercase letter, then letters, digits or _")
    session.flush()  # what the caller added goes in first, as before any other statement of its transaction
    ids = sorted({leg.account_id for leg in legs})
    accounts = known_accounts(session, institution_id, ids)
    problems = check_legs(legs, accounts)
    if problems:
        raise UnbalancedTransaction(problems)
    lock_in_write = not lowers_a_floored_account(legs, accounts)
    if not lock_in_write:  # funds to check: lock first, then check the balances as they now are
        accounts = lock_accounts(session, institution_id, ids)
        if len(accounts) < len(ids):
            _vanished(session, institution_id, ids)
        short = check_funds(legs, accounts)
        if short:
            raise InsufficientFunds("; ".join(short), problems=short)
    transaction_id = transaction_id or new_id()
    values: dict[str, Any] = {
        "institution_id": institution_id,
        "transaction_id": transaction_id,
        "kind": kind,
        "effective_at": when,
        "reverses_id": reverses_id,
        "reversal_reason": reversal_reason,
        "metadata": json.dumps(dict(metadata)),
    }
    for n, leg in enumerate(legs):
        values |= {f"account_{n}": leg.account_id, f"currency_{n}": accounts[leg.account_id].currency}
        values[f"amount_{n}"] = leg.amount
    for write in also:
        values |= write.params
    lock = len(ids) if lock_in_write else 0
    values |= {f"lock_{n}": account_id for n, account_id in enumerate(ids[:lock])}
    # not inside a savepoint: rolled back alone, it would take the notes of its enclosing transaction with it
    notes = take_notes(session, institution_id) if last_write and not session.in_nested_transaction() else None
    values["audit_records"] = notes
    statement = _write_entry(len(legs), tuple(w.sql for w in also), lock, notes is not None)
    written = session.execute(statement, values).all()
    if not written:  # an account it locks was not there (its legs are not written)
        _vanished(session, institution_id, ids)
    recorded = written[0]
    lines = tuple(
        sorted(
            (PostingLine(r.id, r.account_id, r.amount, accounts[r.account_id].currency) for r in written),
            key=lambda line: line.id,
        )
    )
    return JournalEntry(
        id=transaction_id,
        institution_id=institution_id,
        kind=kind,
        effective_at=recorded.effective_at,
        created_at=recorded.created_at,
        postings=lines,
        reverses_id=reverses_id,
        reversal_reason=reversal_reason,
        metadata=recorded.metadata,
    )


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


def _replay(session: Session, institution_id: UUID, transaction_id: UUID | None) -> JournalEntry:
    assert transaction_id is not None, "a claimed key always records its transaction before commit"
    return replace(get_entry(session, institution_id=institution_id, transaction_id=transaction_id), replayed=True)


def _postings_of(session: Session, institution_id: UUID, transaction_id: UUID) -> tuple[PostingLine, ...]:
    rows = session.scalars(
        select(Posting)
        .where(Posting.institution_id == institution_id, Posting.transaction_id == transaction_id)
        .order_by(Posting.id)
    ).all()
    return tuple(PostingLine(p.id, p.account_id, p.amount, p.currency) for p in rows)


def _accounts(institution_id: UUID) -> Any:
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
