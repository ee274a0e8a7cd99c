"""Pure ledger types and rules: no database, no framework.

Amounts on postings are signed: debit positive, credit negative, and every journal transaction
sums to zero per currency. An account's balance is read on its normal side (assets on the debit
side, liabilities on the credit side), so a healthy balance is never below zero.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any
from uuid import UUID

from escrow.ids import new_id


class Side(StrEnum):
    DEBIT = "debit"
    CREDIT = "credit"

    @property
    def sign(self) -> int:
        """+1 when debits increase the balance, -1 when credits do: the only sign rule in the code."""
        return 1 if self is Side.DEBIT else -1


class AccountKind(StrEnum):
    """What an account holds in an institution's books (stored in account.kind; its code says the same)."""

    CUSTODY_CASH = "custody_cash"  # money in the supervised custody bank account
    PREPAID = "prepaid"  # one contract's unconsumed prepayment: held for the family
    RELEASABLE = "releasable"  # classes given and confirmed, owed to the institution
    PAYOUT_PENDING = "payout_pending"  # instructed to the bank, not yet confirmed executed
    REFUND_PAYABLE = "refund_payable"  # one contract's approved refund, owed to the family
    RESERVE_CASH = "reserve_cash"
    RESERVE_DEPOSIT = "reserve_deposit"
    OTHER = "other"  # outside the escrow's chart: the ledger's own tests and tools

    @property
    def per_contract(self) -> bool:
        """True for the kinds an institution has one of per contract (and which name that contract)."""
        return self in PER_CONTRACT_KINDS


PER_CONTRACT_KINDS = frozenset({AccountKind.PREPAID, AccountKind.REFUND_PAYABLE})
# what families are owed: the money the custody account holds for them
FAMILY_KINDS = (AccountKind.PREPAID, AccountKind.REFUND_PAYABLE)
# everything the custody cash must cover: owed to families and to the institution
OWED_KINDS = (AccountKind.PREPAID, AccountKind.RELEASABLE, AccountKind.PAYOUT_PENDING, AccountKind.REFUND_PAYABLE)


def account_code(kind: AccountKind, contract_id: UUID | None = None) -> str:
    """The code an escrow account is known by (over HTTP too): its kind, and for a contract's, the contract."""
    return kind.value if contract_id is None else f"{kind.value}:{contract_id}"


@dataclass(frozen=True, slots=True)
class Leg:
    """One line of a journal transaction: a signed amount (debit +, credit -) on one account."""

    account_id: UUID
    amount: int


def debit(account_id: UUID, fen: int) -> Leg:
    return Leg(account_id, fen)


def credit(account_id: UUID, fen: int) -> Leg:
    return Leg(account_id, -fen)


@dataclass(frozen=True, slots=True)
class AccountState:
    """What the rules need to know of an account: its currency, side, floor and current balance."""

    id: UUID
    code: str
    currency: str
    normal_side: Side
    allow_negative: bool
    balance: int


@dataclass(frozen=True, slots=True)
class PostingLine:
    id: int
    account_id: UUID
    amount: int
    currency: str


@dataclass(frozen=True, slots=True)
class JournalEntry:
    """A recorded journal transaction with its postings."""

    id: UUID
    institution_id: UUID
    kind: str
    effective_at: datetime
    created_at: datetime
    postings: tuple[PostingLine, ...]
    reverses_id: UUID | None = None
    reversal_reason: str | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class NewEntry:
    """A journal transaction to post: its kind, legs, business time (default now) and what it is for.
    Its id is chosen here, so the rows written with it can name it."""

    kind: str
    legs: Sequence[Leg]
    effective_at: datetime | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)
    id: UUID = field(default_factory=new_id)


def balance_delta(account: AccountState, amount: int) -> int:
    """How a signed posting amount changes the account's normal-side balance."""
    return amount * account.normal_side.sign


def check_legs(legs: Sequence[Leg], accounts: Mapping[UUID, AccountState]) -> list[str]:
    """Every reason the legs cannot be posted as one transaction (empty when they can)."""
    problems: list[str] = []
    if len(legs) < 2:
        problems.append(f"a transaction needs at least two legs, got {len(legs)}")
    totals: dict[str, int] = defaultdict(int)
    for number, leg in enumerate(legs, start=1):
        if isinstance(leg.amount, bool) or not isinstance(leg.amount, int):
            problems.append(f"leg {number}: amount must be whole fen (int)")
            continue
        if leg.amount == 0:
            problems.append(f"leg {number}: amount may not be zero")
        account = accounts.get(leg.account_id)
        if account is None:
            problems.append(f"leg {number}: account {leg.account_id} does not exist in this institution")
            continue
        totals[account.currency] += leg.amount
    for currency, total in sorted(totals.items()):
        if total != 0:
            problems.append(f"{currency} legs sum to {total} fen, not zero")
    return problems


def check_funds(legs: Iterable[Leg], accounts: Mapping[UUID, AccountState]) -> list[str]:
    """Every account the legs would drive below zero that may not go negative."""
    after: dict[UUID, int] = {}
    for leg in legs:
        account = accounts[leg.account_id]
        after[account.id] = after.get(account.id, account.balance) + balance_delta(account, leg.amount)
    return [
        f"account {accounts[account_id].code} holds {accounts[account_id].balance} fen; this would leave {balance} fen"
        for account_id, balance in after.items()
        if balance < 0 and not accounts[account_id].allow_negative
    ]


def reversing_legs(postings: Iterable[PostingLine]) -> list[Leg]:
    """The legs that undo a transaction exactly."""
    return [Leg(p.account_id, -p.amount) for p in postings]
