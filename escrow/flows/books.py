"""What the books say, per institution and per contract, now or as of any past instant."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from sqlalchemy import ColumnElement, Select, Subquery, case, func, select
from sqlalchemy.orm import InstrumentedAttribute, Session

from escrow.access.callers import Caller, Role, require_role
from escrow.db.paging import Page, keyset
from escrow.errors import NotFound
from escrow.ledger.engine import balance_of, get_entry
from escrow.ledger.model import OWED_KINDS, AccountKind, JournalEntry
from escrow.ledger.records import Account, JournalTransaction, Posting
from escrow.registry.contracts import visible_contract
from escrow.registry.institutions import visible_institution


@dataclass(frozen=True, slots=True)
class InstitutionBalances:
    institution_id: UUID
    as_of: datetime | None
    by_kind: dict[str, int]

    @property
    def owed_fen(self) -> int:
        """Everything the custody cash must cover: held for families plus owed to the institution."""
        return sum(self.by_kind.get(kind, 0) for kind in OWED_KINDS)


def account_balances(
    institutions: UUID | Select[UUID],
    *,
    as_of: datetime | None,
    accounts: Sequence[UUID] | Select[UUID] | None = None,
    kind: AccountKind | None = None,
) -> Subquery:
    """(institution_id, account_id, kind, contract_id, balance) of the accounts of `institutions` (an id or a query
    of ids), or only of `accounts` (ids or a query of ids), or only of one `kind`, on their normal side: now, the
    cached balance; as of an instant, the sum of the postings of transactions effective by then (an account without
    any has no row)."""
    columns = (Account.institution_id, Account.id.label("account_id"), Account.kind, Account.contract_id)
    if as_of is None:
        query = select(*columns, Account.balance.label("balance")).where(_among(Account.institution_id, institutions))
        query = query if kind is None else query.where(Account.kind == kind)
        return (query if accounts is None else query.where(Account.id.in_(accounts))).subquery()
    # summed per account before meeting the account table: joined first, PostgreSQL underestimates the
    # composite-key joins and probes the transactions once per posting (several times slower on millions)
    sums = (
        select(Posting.institution_id, Posting.account_id, func.sum(Posting.amount).label("amount"))
        .join(
            JournalTransaction,
            (JournalTransaction.institution_id == Posting.institution_id)
            & (JournalTransaction.id == Posting.transaction_id),
        )
        .where(_among(Posting.institution_id, institutions), JournalTransaction.effective_at <= as_of)
        .group_by(Posting.institution_id, Posting.account_id)
    )
    if accounts is not None:
        sums = sums.where(Posting.account_id.in_(accounts))
    if kind is not None:  # the accounts of a kind, whoever's: the institutions were chosen above, once
        sums = sums.where(Posting.account_id.in_(select(Account.id).where(Account.kind == kind)))
    summed = sums.subquery()
    side = case((Account.normal_side == "debit", 1), else_=-1)
    return (
        select(*columns, (summed.c.amount * side).label("balance"))
        .join(summed, (summed.c.institution_id == Account.institution_id) & (summed.c.account_id == Account.id))
        .subquery()
    )


def _among(column: InstrumentedAttribute[UUID], institutions: UUID | Select[UUID]) -> ColumnElement[bool]:
    return column == institutions if isinstance(institutions, UUID) else column.in_(institutions)


def institution_balances(
    session: Session, *, caller: Caller, institution_id: UUID, as_of: datetime | None
) -> InstitutionBalances:
    require_role(caller, Role.REGULATOR, Role.INSTITUTION, Role.BANK)
    visible_institution(session, caller, institution_id)
    balances = account_balances(institution_id, as_of=as_of)
    kind = balances.c.kind
    rows = session.execute(select(kind, func.sum(balances.c.balance)).group_by(kind)).all()
    by_kind = {AccountKind.CUSTODY_CASH.value: 0, **{k.value: 0 for k in OWED_KINDS}}
    by_kind.update({str(k): int(v or 0) for k, v in rows})
    return InstitutionBalances(institution_id, as_of, by_kind)


@dataclass(frozen=True, slots=True)
class ContractBalance:
    contract_id: UUID
    as_of: datetime | None
    held_fen: int


def contract_balance(
    session: Session, *, caller: Caller, institution_id: UUID, contract_id: UUID, as_of: datetime | None
) -> ContractBalance:
    contract = visible_contract(session, caller, institution_id, contract_id)
    held = balance_of(session, institution_id=institution_id, account_id=contract.prepaid_account_id, as_of=as_of)
    return ContractBalance(contract_id, as_of, held)


def list_transactions(
    session: Session,
    *,
    caller: Caller,
    institution_id: UUID,
    contract_id: UUID | None,
    cursor: str | None,
    limit: int,
) -> Page[JournalEntry]:
    """Journal transactions of an institution, or only those touching one contract's money."""
    query = select(JournalTransaction.id).where(JournalTransaction.institution_id == institution_id)
    if contract_id is None:
        require_role(caller, Role.REGULATOR, Role.INSTITUTION, Role.BANK)
        visible_institution(session, caller, institution_id)
    else:
        contract = visible_contract(session, caller, institution_id, contract_id)
        query = query.where(
            JournalTransaction.id.in_(
                select(Posting.transaction_id).where(
                    Posting.institution_id == institution_id, Posting.account_id == contract.prepaid_account_id
                )
            )
        )
    ids = keyset(session, query, JournalTransaction.id, cursor=cursor, limit=limit, key=lambda t: t)
    entries = [get_entry(session, institution_id=institution_id, transaction_id=t) for t in ids.items]
    return Page(entries, ids.next_cursor)


def get_transaction(session: Session, *, caller: Caller, institution_id: UUID, transaction_id: UUID) -> JournalEntry:
    require_role(caller, Role.REGULATOR, Role.INSTITUTION, Role.BANK)
    visible_institution(session, caller, institution_id)
    try:
        return get_entry(session, institution_id=institution_id, transaction_id=transaction_id)
    except NotFound:
        raise NotFound(f"transaction {transaction_id} does not exist in this institution") from None
