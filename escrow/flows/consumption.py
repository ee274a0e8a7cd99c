"""Money following consumption: what a class releases, what a refund returns (shared by every flow).

A contract's paid amount P is spread over its T hours (bought + bonus) cumulatively: after H hours
have been released, R = floor(P * H / T) fen have left prepaid. Each class takes the difference, so
rounding never leaves a remainder behind: the last class takes what is left.
"""

from __future__ import annotations

from datetime import datetime
from typing import cast
from uuid import UUID

from sqlalchemy import Table, bindparam, func, insert, or_, select
from sqlalchemy.orm import Session

from escrow.access.audit import SYSTEM, Actor, note
from escrow.access.callers import Caller
from escrow.db.records import ClassRecord, Collection, Contract, Institution, Payout, RefundRequest
from escrow.ids import new_id
from escrow.ledger.engine import Rows, open_account, post_transaction, record_entry
from escrow.ledger.idempotency import IdempotencyKey, new_key_row
from escrow.ledger.model import AccountKind, NewEntry, Side, account_code, credit, debit
from escrow.ledger.records import Account, IdempotencyRecord
from escrow.rules.states import (
    HELD_CLASS_STATUSES,
    INSTITUTION,
    ClassStatus,
    InstitutionStatus,
    PayoutKind,
    PayoutStatus,
    RefundStatus,
    move,
)

LEDGER = "system:ledger"  # the caller of postings the service makes itself, keyed by their cause
HELD_HOURS = HELD_CLASS_STATUSES  # recorded, not yet confirmed: not refundable, not yet released


def account_id(session: Session, institution_id: UUID, code: str) -> UUID:
    return session.scalars(
        select(Account.id).where(Account.institution_id == institution_id, Account.code == code)
    ).one()


def refund_payable_account(session: Session, contract: Contract) -> UUID:
    return open_account(
        session,
        institution_id=contract.institution_id,
        code=account_code(AccountKind.REFUND_PAYABLE, contract.id),
        kind=AccountKind.REFUND_PAYABLE,
        contract_id=contract.id,
        normal_side=Side.CREDIT,
    ).id


def paid_fen(session: Session, contract: Contract) -> int:
    total = session.scalar(
        select(func.coalesce(func.sum(Collection.amount_fen), 0)).where(
            Collection.institution_id == contract.institution_id, Collection.contract_id == contract.id
        )
    )
    return int(total or 0)


def _hours(session: Session, contract: Contract, *, released: bool | None, statuses: tuple[str, ...]) -> int:
    query = select(func.coalesce(func.sum(ClassRecord.hours), 0)).where(
        ClassRecord.institution_id == contract.institution_id,
        ClassRecord.contract_id == contract.id,
        ClassRecord.status.in_(statuses),
    )
    if released is not None:  # released: its share was worked out (and moved, when above zero)
        query = query.where(ClassRecord.amount_fen.is_not(None) if released else ClassRecord.amount_fen.is_(None))
    return int(session.scalar(query) or 0)


def released_fen(session: Session, contract: Contract) -> int:
    total = session.scalar(
        select(func.coalesce(func.sum(ClassRecord.amount_fen), 0)).where(
            ClassRecord.institution_id == contract.institution_id, ClassRecord.contract_id == contract.id
        )
    )
    return int(total or 0)


def total_hours(contract: Contract) -> int:
    return contract.hours_bought + contract.bonus_hours


def hours_used(session: Session, contract: Contract) -> int:
    """Hours recorded and not returned: pending, disputed or confirmed."""
    return _hours(session, contract, released=None, statuses=(*HELD_CLASS_STATUSES, ClassStatus.CONFIRMED))


def share(paid: int, hours: int, total: int) -> int:
    return paid * hours // total


def held_fen(session: Session, contract: Contract) -> int:
    return int(
        session.scalar(
            select(Account.balance).where(
                Account.institution_id == contract.institution_id, Account.id == contract.prepaid_account_id
            )
        )
        or 0
    )


_CLASS = cast(Table, ClassRecord.__table__)
_OF_CONTRACT = (
    _CLASS.c.institution_id == bindparam("p_institution_id"),
    _CLASS.c.contract_id == bindparam("p_contract_id"),
)
# Built once: every confirmation runs both, and building a statement costs more than running it
_WAITING = (
    select(ClassRecord)
    .where(*_OF_CONTRACT, ClassRecord.status == ClassStatus.CONFIRMED, ClassRecord.amount_fen.is_(None))
    .order_by(ClassRecord.given_on, ClassRecord.id)
)
_DONE = (  # one pass over the contract's classes: hours whose share was worked out, and fen it moved
    select(
        func.coalesce(
            func.sum(_CLASS.c.hours).filter(_CLASS.c.status == ClassStatus.CONFIRMED, _CLASS.c.amount_fen.is_not(None)),
            0,
        ).label("hours_done"),
        func.coalesce(func.sum(_CLASS.c.amount_fen), 0).label("released"),
    )
    .where(*_OF_CONTRACT)
    .subquery()
)
_RELEASE_STATE = select(
    or_(  # an open refund request or an open dispute holds back release for the whole contract
        select(RefundRequest.id)
        .where(
            RefundRequest.institution_id == bindparam("p_institution_id"),
            RefundRequest.contract_id == bindparam("p_contract_id"),
            RefundRequest.status == RefundStatus.OPEN,
        )
        .exists(),
        select(_CLASS.c.id).where(*_OF_CONTRACT, _CLASS.c.status == ClassStatus.DISPUTED, _CLASS.c.hours > 0).exists(),
    ).label("blocked"),
    select(func.coalesce(func.sum(Collection.amount_fen), 0))
    .where(
        Collection.institution_id == bindparam("p_institution_id"),
        Collection.contract_id == bindparam("p_contract_id"),
    )
    .scalar_subquery()
    .label("paid"),
    _DONE.c.hours_done,
    _DONE.c.released,
    select(Account.id)
    .where(Account.institution_id == bindparam("p_institution_id"), Account.code == "releasable")
    .scalar_subquery()
    .label("releasable"),
)


def release_ready(session: Session, contract: Contract, now: datetime) -> int:
    """Release every confirmed, unreleased class of the contract unless release is held back; fen released.
    The caller holds the contract's lock, so no other flow releases these classes meanwhile."""
    ids = {"p_institution_id": contract.institution_id, "p_contract_id": contract.id}
    waiting = session.scalars(_WAITING, ids).all()
    if not waiting:
        return 0
    state = session.execute(_RELEASE_STATE, ids).one()
    if state.blocked:
        return 0
    paid, hours_done, released_before = int(state.paid), int(state.hours_done), int(state.released)
    total = total_hours(contract)
    moved = 0
    for record in waiting:
        hours_done += record.hours
        amount = share(paid, hours_done, total) - released_before  # released_before: what actually moved
        released_before += amount
        if amount > 0:
            entry = NewEntry(
                kind="class_released",
                legs=[debit(contract.prepaid_account_id, amount), credit(state.releasable, amount)],
                effective_at=now,
                metadata={"contract_id": str(contract.id), "class_id": str(record.id), "hours": record.hours},
            )
            key = new_key_row(  # the class is unreleased (amount_fen NULL) under the contract's lock
                institution_id=contract.institution_id,
                key=IdempotencyKey(LEDGER, f"release:{record.id}"),
                request={"operation": "release", "class_id": str(record.id), "amount_fen": amount},
                transaction_id=entry.id,
            )
            rows = Rows(insert(IdempotencyRecord), [key])
            record_entry(session, institution_id=contract.institution_id, entry=entry, rows=[rows])
            record.release_transaction_id = entry.id
            moved += amount
        record.amount_fen = amount  # set with the release, so one UPDATE records both
    session.flush()
    return moved


def refundable_fen(session: Session, contract: Contract) -> int:
    """What is unconsumed: held, less the value of hours recorded but not yet confirmed."""
    paid, total = paid_fen(session, contract), total_hours(contract)
    released_hours = _hours(session, contract, released=True, statuses=(ClassStatus.CONFIRMED,))
    committed = _hours(session, contract, released=False, statuses=(ClassStatus.CONFIRMED, *HELD_HOURS))
    reserved = share(paid, released_hours + committed, total) - released_fen(session, contract)
    return max(held_fen(session, contract) - reserved, 0)


def refund_remaining(session: Session, contract: Contract, *, cause: str, now: datetime) -> Payout | None:
    """Move what is unconsumed to refund_payable and instruct the bank to pay the family."""
    amount = refundable_fen(session, contract)
    if amount == 0:
        return None
    owed = refund_payable_account(session, contract)
    entry = NewEntry(
        kind="refund_approved",
        legs=[debit(contract.prepaid_account_id, amount), credit(owed, amount)],
        effective_at=now,
        metadata={"contract_id": str(contract.id), "cause": cause},
    )
    idempotency = IdempotencyKey(LEDGER, f"refund:{cause}")
    if post_transaction(session, institution_id=contract.institution_id, entry=entry, idempotency=idempotency).replayed:
        return None
    return instruct_refund(session, contract, amount, now)


def instruct_refund(session: Session, contract: Contract, amount: int, now: datetime) -> Payout | None:
    """A payout instruction to the family for `amount`, unless one is already in flight."""
    in_flight = session.scalar(
        select(Payout.id).where(
            Payout.institution_id == contract.institution_id,
            Payout.contract_id == contract.id,
            Payout.kind == PayoutKind.REFUND,
            Payout.status == PayoutStatus.INSTRUCTED,
        )
    )
    if in_flight is not None:
        return None
    payout = Payout(
        institution_id=contract.institution_id,
        id=new_id(),
        kind=PayoutKind.REFUND,
        contract_id=contract.id,
        amount_fen=amount,
        instructed_at=now,
    )
    session.add(payout)
    session.flush()
    note(
        session,
        SYSTEM,
        "payout.instructed",
        institution_id=contract.institution_id,
        object_type="payout",
        object_id=payout.id,
        at=now,
        after={"kind": "refund", "contract_id": contract.id, "amount_fen": amount},
    )
    return payout


def family_refunds_owed(session: Session, institution_id: UUID) -> int:
    """Refunds approved and not yet paid to families (every refund_payable account of the institution)."""
    owed = session.scalar(
        select(func.coalesce(func.sum(Account.balance), 0)).where(
            Account.institution_id == institution_id, Account.kind == AccountKind.REFUND_PAYABLE
        )
    )
    return int(owed or 0)


def close_once_refunds_paid(session: Session, who: Caller | Actor, institution: Institution, now: datetime) -> bool:
    """A closing institution whose families are all paid back is closed (on the audit trail); True if it was.

    The caller holds the institution's row lock (a closure does, and so does a refund's execution), so a closure
    and the execution of the last refund in flight cannot both miss that nothing is owed any more."""
    if institution.status != InstitutionStatus.CLOSING or family_refunds_owed(session, institution.id):
        return False
    institution.status = move("institution", INSTITUTION, institution.status, "refunds_paid")
    session.flush()
    note(
        session,
        who,
        "institution.closed",
        institution_id=institution.id,
        object_type="institution",
        object_id=institution.id,
        at=now,
        before={"status": InstitutionStatus.CLOSING},
        after={"status": InstitutionStatus.CLOSED, "cause": "every family's refund paid"},
    )
    return True
