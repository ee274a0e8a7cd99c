"""What an institution's desk reads: what waits for it and by when, what it was paid, its contracts at a glance.

Read only, and only the caller's own institution (its staff, or its own system's token). Money figures
come from the books' rows (accounts, payouts), so they equal what the ledger says to the fen.
"""

from __future__ import annotations

from collections.abc import Collection as Collection_
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from uuid import UUID

from sqlalchemy import ColumnElement, Select, false, func, or_, select
from sqlalchemy.orm import InstrumentedAttribute, Session

from escrow.access.callers import Caller
from escrow.db.records import (
    BankStatement,
    ClassRecord,
    Collection,
    Contract,
    Course,
    Guardian,
    Institution,
    Payout,
    RefundRequest,
)
from escrow.flows.consumption import refundable_fen
from escrow.ledger.records import Account
from escrow.registry.calendar import jurisdiction_today
from escrow.registry.institutions import own_institution
from escrow.rules.calendar import BUSINESS_TZ, local_day_start
from escrow.rules.identity import mask_phone
from escrow.rules.states import (
    HELD_CLASS_STATUSES,
    ClassStatus,
    ContractStatus,
    PayoutKind,
    PayoutStatus,
    RefundStatus,
)

STATEMENT_DUE_HOUR = 9  # day T's statement is due by T+1 09:00 Beijing time (the statement_missing rule)
LISTED = 200  # rows a desk list shows at once; a search narrows it


@dataclass(frozen=True, slots=True)
class OpenRefund:
    request: RefundRequest
    student_name: str
    refundable_fen: int  # what approving it now would pay the family


@dataclass(frozen=True, slots=True)
class WaitingClass:
    record: ClassRecord
    student_name: str


@dataclass(frozen=True, slots=True)
class StatementDue:
    day: date | None  # the latest day whose statement is due by now (None: none yet, the books being newer)
    arrived: bool
    latest: date | None  # the newest statement the bank delivered


@dataclass(frozen=True, slots=True)
class Agenda:
    """What waits for the institution (and for its families), soonest first."""

    today: date
    refunds: list[OpenRefund]  # to answer by respond_by, or deemed approved
    classes: list[WaitingClass]  # awaiting the parent's word by confirm_by, or deemed confirmed
    classes_waiting: int
    disputes: list[WaitingClass]  # awaiting the regulator
    statement: StatementDue
    payouts_in_flight: list[Payout]  # sent to the bank, not yet executed
    paid_out_fen: int  # releases the bank executed to the institution, ever
    refunds_paid_fen: int  # refunds the bank executed to families, ever


def desk_agenda(session: Session, *, caller: Caller, institution_id: UUID, now: datetime, shown: int = 10) -> Agenda:
    """The desk's deadlines and what was paid out; `shown` of the classes awaiting parents."""
    institution = own_institution(session, caller, institution_id)
    today = jurisdiction_today(session, jurisdiction_code=institution.jurisdiction_code, now=now)
    pending = _classes(institution_id, ClassStatus.PENDING)
    paid = _paid(session, institution_id)
    return Agenda(
        today=today,
        refunds=open_refunds(session, caller=caller, institution_id=institution_id),
        classes=[WaitingClass(r, n) for r, n in session.execute(pending.order_by(ClassRecord.confirm_by).limit(shown))],
        classes_waiting=session.scalar(select(func.count()).select_from(pending.subquery())) or 0,
        disputes=[WaitingClass(r, n) for r, n in session.execute(_classes(institution_id, ClassStatus.DISPUTED))],
        statement=_statement_due(session, institution, now),
        payouts_in_flight=list(
            session.scalars(
                select(Payout)
                .where(Payout.institution_id == institution_id, Payout.status == PayoutStatus.INSTRUCTED)
                .order_by(Payout.instructed_at)
            )
        ),
        paid_out_fen=paid.get(PayoutKind.RELEASE, 0),
        refunds_paid_fen=paid.get(PayoutKind.REFUND, 0),
    )


def desk_today(session: Session, *, caller: Caller, institution_id: UUID, now: datetime) -> date:
    """The institution's business date (Beijing time for every Chinese region)."""
    institution = own_institution(session, caller, institution_id)
    return jurisdiction_today(session, jurisdiction_code=institution.jurisdiction_code, now=now)


def open_refunds(session: Session, *, caller: Caller, institution_id: UUID) -> list[OpenRefund]:
    """Refund requests awaiting the institution's answer, the nearest deadline first."""
    own_institution(session, caller, institution_id)
    rows = session.execute(
        select(RefundRequest, Contract)
        .join(Contract, _contract_of(RefundRequest.institution_id, RefundRequest.contract_id))
        .where(RefundRequest.institution_id == institution_id, RefundRequest.status == RefundStatus.OPEN)
        .order_by(RefundRequest.respond_by, RefundRequest.requested_at)
    ).all()
    return [OpenRefund(request, contract.student_name, refundable_fen(session, contract)) for request, contract in rows]


def answered_refunds(session: Session, *, caller: Caller, institution_id: UUID, limit: int = 50) -> list[OpenRefund]:
    """The latest refund requests decided (by the institution, by silence, or by closure), newest first."""
    own_institution(session, caller, institution_id)
    rows = session.execute(
        select(RefundRequest, Contract.student_name)
        .join(Contract, _contract_of(RefundRequest.institution_id, RefundRequest.contract_id))
        .where(RefundRequest.institution_id == institution_id, RefundRequest.status != RefundStatus.OPEN)
        .order_by(RefundRequest.decided_at.desc().nulls_last(), RefundRequest.id.desc())
        .limit(limit)
    ).all()
    return [OpenRefund(request, name, request.amount_fen or 0) for request, name in rows]


def _contract_of(
    institution_id: InstrumentedAttribute[UUID], contract_id: InstrumentedAttribute[UUID]
) -> ColumnElement[bool]:
    return (Contract.institution_id == institution_id) & (Contract.id == contract_id)


def _classes(institution_id: UUID, status: ClassStatus) -> Select[ClassRecord, str]:
    return (
        select(ClassRecord, Contract.student_name)
        .join(Contract, _contract_of(ClassRecord.institution_id, ClassRecord.contract_id))
        .where(ClassRecord.institution_id == institution_id, ClassRecord.status == status)
    )


def _paid(session: Session, institution_id: UUID) -> dict[str, int]:
    rows = session.execute(
        select(Payout.kind, func.sum(Payout.amount_fen))
        .where(Payout.institution_id == institution_id, Payout.status == PayoutStatus.EXECUTED)
        .group_by(Payout.kind)
    ).all()
    return {str(kind): int(total) for kind, total in rows}


def _statement_due(session: Session, institution: Institution, now: datetime) -> StatementDue:
    """Day T's statement is due by T+1 09:00 Beijing time, once the institution had books on T (as the
    statement_missing rule has it)."""
    local = now.astimezone(BUSINESS_TZ)
    due = local.date() - timedelta(days=1 if local.hour >= STATEMENT_DUE_HOUR else 2)
    of_institution = BankStatement.institution_id == institution.id
    latest = session.scalar(select(func.max(BankStatement.statement_date)).where(of_institution))
    if institution.created_at >= local_day_start(due + timedelta(days=1)):
        return StatementDue(None, False, latest)
    arrived = session.scalar(select(BankStatement.id).where(of_institution, BankStatement.statement_date == due))
    return StatementDue(due, arrived is not None, latest)


@dataclass(frozen=True, slots=True)
class ContractRow:
    """A contract at a glance, as its institution sees it (the guardian's phone masked)."""

    contract: Contract
    course_name: str
    guardian_name: str
    guardian_phone: str
    held_fen: int
    collected_fen: int
    hours_used: int

    @property
    def left_to_collect_fen(self) -> int:
        return max(self.contract.price_fen - self.collected_fen, 0)

    @property
    def hours_left(self) -> int:
        return self.contract.hours_bought + self.contract.bonus_hours - self.hours_used


# per contract: what was collected, and the hours recorded and not returned (pending, disputed or confirmed)
_COLLECTED = (
    select(func.coalesce(func.sum(Collection.amount_fen), 0))
    .where(Collection.institution_id == Contract.institution_id, Collection.contract_id == Contract.id)
    .scalar_subquery()
)
_USED = (
    select(func.coalesce(func.sum(ClassRecord.hours), 0))
    .where(
        ClassRecord.institution_id == Contract.institution_id,
        ClassRecord.contract_id == Contract.id,
        ClassRecord.status.in_((*HELD_CLASS_STATUSES, ClassStatus.CONFIRMED)),
    )
    .scalar_subquery()
)
_ROWS = (
    select(Contract, Course.name, Guardian.name, Guardian.phone, Account.balance, _COLLECTED, _USED)
    .join(Course, (Course.institution_id == Contract.institution_id) & (Course.id == Contract.course_id))
    .join(Guardian, Guardian.id == Contract.guardian_id)
    .join(Account, (Account.institution_id == Contract.institution_id) & (Account.id == Contract.prepaid_account_id))
)


def desk_contracts(
    session: Session,
    *,
    caller: Caller,
    institution_id: UUID,
    search: str = "",
    status: str | None = None,
    to_collect: bool = False,
    contract_ids: Collection_[UUID] | None = None,
    limit: int = LISTED,
) -> list[ContractRow]:
    """The institution's contracts by student name, narrowed by a search of the student's or guardian's name
    or the guardian's phone (its end), by status, to those with something left to collect, or to some ids."""
    own_institution(session, caller, institution_id)
    query = _ROWS.where(Contract.institution_id == institution_id)
    if search.strip():
        query = query.where(_found(search.strip()))
    if status is not None:
        query = query.where(Contract.status == status)
    if contract_ids is not None:
        query = query.where(Contract.id.in_(list(contract_ids)))
    if to_collect:
        query = query.where(Contract.status == ContractStatus.ACTIVE, Contract.price_fen > _COLLECTED)
    rows = session.execute(query.order_by(Contract.student_name, Contract.id).limit(limit)).all()
    return [
        ContractRow(contract, course, guardian, mask_phone(phone), int(held or 0), int(paid), int(hours))
        for contract, course, guardian, phone, held, paid, hours in rows
    ]


def _found(text: str) -> ColumnElement[bool]:
    """The student's or guardian's name holds the text, or the guardian's phone ends with it (4 digits or more)."""
    return or_(
        Contract.student_name.icontains(text, autoescape=True),
        Guardian.name.icontains(text, autoescape=True),
        Guardian.phone.endswith(text, autoescape=True) if text.isdigit() and len(text) >= 4 else false(),
    )


def contract_row(session: Session, *, caller: Caller, institution_id: UUID, contract_id: UUID) -> ContractRow | None:
    """One contract at a glance (None: not the institution's)."""
    rows = desk_contracts(session, caller=caller, institution_id=institution_id, contract_ids=[contract_id], limit=1)
    return rows[0] if rows else None


@dataclass(frozen=True, slots=True)
class RecentCollection:
    collection: Collection
    student_name: str


def recent_collections(
    session: Session, *, caller: Caller, institution_id: UUID, limit: int = 20
) -> list[RecentCollection]:
    """The collections registered last, newest first, with whose they are."""
    own_institution(session, caller, institution_id)
    rows = session.execute(
        select(Collection, Contract.student_name)
        .join(Contract, _contract_of(Collection.institution_id, Collection.contract_id))
        .where(Collection.institution_id == institution_id)
        .order_by(Collection.created_at.desc(), Collection.id.desc())
        .limit(limit)
    ).all()
    return [RecentCollection(collection, name) for collection, name in rows]
