"""The accounts a posting moves, read or locked in id order: private to escrow/ledger/engine.py."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any, NoReturn, cast
from uuid import UUID

from sqlalchemy import Table, bindparam, select
from sqlalchemy.orm import Session

from escrow.errors import UnbalancedTransaction
from escrow.ledger.model import AccountState, Leg, Side, balance_delta
from escrow.ledger.records import Account

_ACCOUNT = cast(Table, Account.__table__)
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


def lock_accounts(session: Session, institution_id: UUID, account_ids: Collection[UUID]) -> dict[UUID, AccountState]:
    """Lock the accounts in id order (the one fixed order that prevents deadlocks) and read them."""
    return _account_states(session.execute(_LOCK_ACCOUNTS, _ids(institution_id, account_ids)))


def read_accounts(session: Session, institution_id: UUID, account_ids: Collection[UUID]) -> dict[UUID, AccountState]:
    """The accounts as they are now, unlocked."""
    return _account_states(session.execute(_READ_ACCOUNTS, _ids(institution_id, account_ids)))


def vanished(session: Session, institution_id: UUID, ids: Collection[UUID]) -> NoReturn:
    """An account read a moment ago could not be locked: its opening was rolled back meanwhile."""
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
