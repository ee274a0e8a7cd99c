"""What the books say, per institution and per contract, now or as of any past instant."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from sqlalchemy import ColumnElement, Subquery, case, func, select
from sqlalchemy.orm import Session

from escrow.access import Caller, Role, require_role
from escrow.contracts import visible_contract
from escrow.errors import NotFound
from escrow.institutions import visible_institution
from escrow.ledger.engine import balance_of, get_entry
from escrow.ledger.model import JournalEntry
from escrow.ledger.records import Account, JournalTransaction, Posting
from escrow.paging import Page, keyset

# what each account kind is called in reports; the part of an account code before ':'
OWED_KINDS = ("prepaid", "releasable", "payout_pending", "refund_payable")


@dataclass(frozen=True, slots=True)
class InstitutionBalances:
    institution_id: UUID
    as_of: datetime | None
    by_kind: dict[str, int]

    @property
    def owed_fen(self) -> int:
        """Everything the custody cash must cover: held for families plus owed to the institution."""
        return sum(self.by_kind.get(kind, 0) for kind in OWED_KINDS)


def account_kind(code: ColumnElement[str]) -> ColumnElement[str]:
    """The kind of an account: its code before ':' (prepaid:<contract> is a prepaid account)."""
    return func.split_part(code, ":", 1)


def balance_parts(accounts: ColumnElement[bool], *, as_of: datetime | None) -> Subquery:
    """Rows (institution_id, account_id, code, amount) whose sums are the balances, on their normal side,
    of the accounts matching `accounts`: one row per account now (its cached balance), or one per posting
    of a transaction effective by `as_of`. Callers sum them by whatever they group on."""
    columns = (Account.institution_id, Account.id.label("account_id"), Account.code)
    if as_of is None:
        return select(*columns, Account.balance.label("amount")).where(accounts).subquery()
    side = case((Account.normal_side == "debit", 1), else_=-1)
    return (
        select(*columns, (Posting.amount * side).label("amount"))
        .select_from(Posting)
        .join(Account, (Account.institution_id == Posting.institution_id) & (Account.id == Posting.account_id))
        .join(
            JournalTransaction,
            (JournalTransaction.institution_id == Posting.institution_id)
            & (JournalTransaction.id == Posting.transaction_id),
        )
        .where(accounts, JournalTransaction.effective_at <= as_of)
        .subquery()
    )


def institution_balances(
    session: Session, *, caller: Caller, institution_id: UUID, as_of: datetime | None
) -> InstitutionBalances:
    require_role(caller, Role.REGULATOR, Role.INSTITUTION, Role.BANK)
    visible_institution(session, caller, institution_id)
    parts = balance_parts(Account.institution_id == institution_id, as_of=as_of)
    kind = account_kind(parts.c.code)
    rows = session.execute(select(kind, func.sum(parts.c.amount)).group_by(kind)).all()
    by_kind = {"custody_cash": 0, **{k: 0 for k in OWED_KINDS}}
    by_kind.update({k: int(v or 0) for k, v in rows})
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
