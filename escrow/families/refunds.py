"""A family's refunds: how much a request would return, previewed without changing anything, and each request
followed from asking to the bank's payment."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from sqlalchemy import ColumnElement, select
from sqlalchemy.orm import Session

from escrow.access.callers import Caller, Role, contract_scope, require_role
from escrow.db.records import Contract, Course, Institution, Payout, RefundRequest
from escrow.errors import NotFound
from escrow.families.overview import contract_summary
from escrow.flows.consumption import refundable_fen
from escrow.flows.refunds import refund_payouts
from escrow.registry.contracts import visible_contract
from escrow.registry.jurisdictions import policy_version
from escrow.rules.states import ContractStatus, PayoutStatus, RefundStatus


@dataclass(frozen=True, slots=True)
class RefundPreview:
    """What asking for a refund now would return: what is held, less what the classes still waiting for the
    family's word are worth (those hours stay the institution's until confirmed, disputed or returned)."""

    institution_id: UUID
    contract_id: UUID
    held_fen: int
    refundable_fen: int
    waiting_hours: int
    open_request: RefundRequest | None
    contract_status: ContractStatus
    respond_working_days: int  # the institution answers within these, or the request is deemed approved

    @property
    def reserved_fen(self) -> int:
        return self.held_fen - self.refundable_fen

    @property
    def can_request(self) -> bool:
        return self.contract_status == ContractStatus.ACTIVE and self.open_request is None


def preview_refund(session: Session, *, caller: Caller, institution_id: UUID, contract_id: UUID) -> RefundPreview:
    """The refund a request would bring today; reads only."""
    summary = contract_summary(session, caller=caller, institution_id=institution_id, contract_id=contract_id)
    contract = visible_contract(session, caller, institution_id, contract_id)
    open_request = session.scalars(
        select(RefundRequest).where(
            RefundRequest.institution_id == institution_id,
            RefundRequest.contract_id == contract_id,
            RefundRequest.status == RefundStatus.OPEN,
        )
    ).one_or_none()
    refundable = refundable_fen(session, contract) if contract.status == ContractStatus.ACTIVE else 0
    return RefundPreview(
        institution_id=institution_id,
        contract_id=contract_id,
        held_fen=summary.held_fen,
        refundable_fen=refundable,
        waiting_hours=summary.hours_waiting + summary.hours_disputed,
        open_request=open_request,
        contract_status=contract.status,
        respond_working_days=policy_version(
            session, jurisdiction_code=contract.policy_jurisdiction, effective_date=contract.policy_effective_date
        ).refund_response_working_days,
    )


@dataclass(frozen=True, slots=True)
class RefundProgress:
    """A refund request from asking to the bank: asked, answered (approved, deemed approved or rejected), paid."""

    request: RefundRequest
    institution_name: str
    course_name: str
    student_name: str
    payments: list[Payout]

    @property
    def paid(self) -> list[Payout]:
        return [p for p in self.payments if p.status == PayoutStatus.EXECUTED]

    @property
    def paid_fen(self) -> int:
        return sum(p.amount_fen for p in self.paid)

    @property
    def paid_at(self) -> datetime | None:
        return max((p.settled_at for p in self.paid if p.settled_at), default=None)

    @property
    def in_flight_fen(self) -> int:
        return sum(p.amount_fen for p in self.payments if p.status == PayoutStatus.INSTRUCTED)


def my_refunds(session: Session, *, caller: Caller) -> list[RefundProgress]:
    """Every refund request of the parent's contracts, newest first."""
    require_role(caller, Role.PARENT)
    return _progress(session, caller)


def refund_progress(session: Session, *, caller: Caller, institution_id: UUID, request_id: UUID) -> RefundProgress:
    found = _progress(session, caller, RefundRequest.institution_id == institution_id, RefundRequest.id == request_id)
    if not found:
        raise NotFound(f"refund request {request_id} does not exist or is outside your scope")
    return found[0]


def _progress(session: Session, caller: Caller, *conditions: ColumnElement[bool]) -> list[RefundProgress]:
    rows = session.execute(
        select(RefundRequest, Institution.name, Course.name, Contract.student_name)
        .join(
            Contract,
            (Contract.institution_id == RefundRequest.institution_id) & (Contract.id == RefundRequest.contract_id),
        )
        .join(Institution, Institution.id == Contract.institution_id)
        .join(Course, (Course.institution_id == Contract.institution_id) & (Course.id == Contract.course_id))
        .where(contract_scope(caller), *conditions)
        .order_by(RefundRequest.requested_at.desc())
    ).all()
    return [RefundProgress(r, i, c, s, refund_payouts(session, r)) for r, i, c, s in rows]
