"""What a family sees on its phone: its contracts with the hours and the money under each, the classes
waiting for its word, and a contract's terms. Every figure comes from the books as the JSON API gives them
(registry.contracts for paid and held, the ledger's accounts for refunds owed)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from uuid import UUID

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from escrow.access.callers import Caller, Role, contract_scope, require_role
from escrow.db.family_records import Evaluation
from escrow.db.records import ClassRecord, Contract, Course, Institution, Jurisdiction, Payout
from escrow.errors import NotFound
from escrow.ledger.model import AccountKind
from escrow.ledger.records import Account
from escrow.registry.contracts import ContractView, get_contract, list_contracts
from escrow.registry.jurisdictions import policy_version
from escrow.rules.policy import Policy
from escrow.rules.states import ClassStatus, PayoutKind, PayoutStatus

GIVEN = (ClassStatus.PENDING, ClassStatus.DISPUTED, ClassStatus.CONFIRMED)  # recorded and not returned


@dataclass(frozen=True, slots=True)
class ContractSummary:
    view: ContractView
    institution_name: str
    course_name: str
    course_category: str
    hours_total: int
    hours_given: int  # recorded by the institution and not returned to the family
    hours_confirmed: int
    hours_waiting: int  # waiting for the family's word
    hours_disputed: int
    released_fen: int  # what confirmed classes passed to the institution
    refund_owed_fen: int  # approved, not yet paid by the bank
    refunded_fen: int  # paid back by the bank

    @property
    def contract(self) -> Contract:
        return self.view.contract

    @property
    def hours_left(self) -> int:
        return self.hours_total - self.hours_given

    @property
    def paid_fen(self) -> int:
        return self.view.collected_fen

    @property
    def held_fen(self) -> int:
        return self.view.held_fen


@dataclass(frozen=True, slots=True)
class ClassLine:
    """A class as its family sees it, with the evaluation they gave it (if any)."""

    record: ClassRecord
    institution_id: UUID
    institution_name: str
    course_name: str
    student_name: str
    stars: int | None
    comment: str | None


def my_contracts(session: Session, *, caller: Caller) -> list[ContractSummary]:
    """Every contract registered under the parent's phone, at every institution, newest first."""
    require_role(caller, Role.PARENT)
    views = list_contracts(session, caller=caller, institution_id=None, cursor=None, limit=200).items
    return sorted((_summary(session, v) for v in views), key=lambda s: s.contract.signed_at, reverse=True)


def contract_summary(session: Session, *, caller: Caller, institution_id: UUID, contract_id: UUID) -> ContractSummary:
    """One contract's hours and money, for anyone who may see the contract (a parent only their own)."""
    return _summary(
        session, get_contract(session, caller=caller, institution_id=institution_id, contract_id=contract_id)
    )


def _summary(session: Session, view: ContractView) -> ContractSummary:
    contract = view.contract
    institution = session.get_one(Institution, contract.institution_id)
    course = session.get_one(Course, (contract.institution_id, contract.course_id))
    hours = dict(
        session.execute(
            select(ClassRecord.status, func.sum(ClassRecord.hours))
            .where(ClassRecord.institution_id == contract.institution_id, ClassRecord.contract_id == contract.id)
            .group_by(ClassRecord.status)
        ).all()
    )
    released = session.scalar(
        select(func.coalesce(func.sum(ClassRecord.amount_fen), 0)).where(
            ClassRecord.institution_id == contract.institution_id, ClassRecord.contract_id == contract.id
        )
    )
    owed = session.scalar(
        select(func.coalesce(func.sum(Account.balance), 0)).where(
            Account.institution_id == contract.institution_id,
            Account.kind == AccountKind.REFUND_PAYABLE,
            Account.contract_id == contract.id,
        )
    )
    return ContractSummary(
        view=view,
        institution_name=institution.name,
        course_name=course.name,
        course_category=course.category,
        hours_total=contract.hours_bought + contract.bonus_hours,
        hours_given=sum(int(hours.get(s, 0)) for s in GIVEN),
        hours_confirmed=int(hours.get(ClassStatus.CONFIRMED, 0)),
        hours_waiting=int(hours.get(ClassStatus.PENDING, 0)),
        hours_disputed=int(hours.get(ClassStatus.DISPUTED, 0)),
        released_fen=int(released or 0),
        refund_owed_fen=int(owed or 0),
        refunded_fen=_refunded(session, contract),
    )


def _refunded(session: Session, contract: Contract) -> int:
    paid = session.scalar(
        select(func.coalesce(func.sum(Payout.amount_fen), 0)).where(
            Payout.institution_id == contract.institution_id,
            Payout.contract_id == contract.id,
            Payout.kind == PayoutKind.REFUND,
            Payout.status == PayoutStatus.EXECUTED,
        )
    )
    return int(paid or 0)


def _class_lines(session: Session, caller: Caller, *conditions: ColumnElement[bool]) -> list[ClassLine]:
    rows = session.execute(
        select(ClassRecord, Institution.name, Course.name, Contract.student_name, Evaluation.stars, Evaluation.comment)
        .join(
            Contract,
            (Contract.institution_id == ClassRecord.institution_id) & (Contract.id == ClassRecord.contract_id),
        )
        .join(Institution, Institution.id == Contract.institution_id)
        .join(Course, (Course.institution_id == Contract.institution_id) & (Course.id == Contract.course_id))
        .outerjoin(
            Evaluation,
            (Evaluation.institution_id == ClassRecord.institution_id) & (Evaluation.class_id == ClassRecord.id),
        )
        .where(contract_scope(caller), *conditions)
        .order_by(ClassRecord.given_on.desc(), ClassRecord.id.desc())
    ).all()
    return [ClassLine(r, r.institution_id, i, c, s, stars, comment) for r, i, c, s, stars, comment in rows]


def waiting_classes(session: Session, *, caller: Caller) -> list[ClassLine]:
    """The classes waiting for the parent's word, the one to answer soonest first."""
    require_role(caller, Role.PARENT)
    lines = _class_lines(session, caller, ClassRecord.status == ClassStatus.PENDING)
    return sorted(lines, key=lambda line: (line.record.confirm_by, line.record.given_on))


def contract_classes(session: Session, *, caller: Caller, institution_id: UUID, contract_id: UUID) -> list[ClassLine]:
    """Every class recorded under a contract the caller may see, newest first."""
    get_contract(session, caller=caller, institution_id=institution_id, contract_id=contract_id)
    return _class_lines(
        session, caller, ClassRecord.institution_id == institution_id, ClassRecord.contract_id == contract_id
    )


def family_class(session: Session, *, caller: Caller, institution_id: UUID, class_id: UUID) -> ClassLine:
    """One class of the parent's own contracts."""
    require_role(caller, Role.PARENT)
    found = _class_lines(session, caller, ClassRecord.institution_id == institution_id, ClassRecord.id == class_id)
    if not found:
        raise NotFound(f"class {class_id} does not exist or is outside your scope")
    return found[0]


@dataclass(frozen=True, slots=True)
class ContractTerms:
    """The electronic contract: who, what, for how much, and the rules of the policy it was signed under."""

    summary: ContractSummary
    institution: Institution
    jurisdiction_name: str
    policy: Policy
    policy_effective_date: date | None
    signed_at: datetime


def contract_terms(session: Session, *, caller: Caller, institution_id: UUID, contract_id: UUID) -> ContractTerms:
    summary = contract_summary(session, caller=caller, institution_id=institution_id, contract_id=contract_id)
    contract = summary.contract
    institution = session.get_one(Institution, institution_id)
    jurisdiction = session.get_one(Jurisdiction, contract.policy_jurisdiction)
    policy = policy_version(
        session, jurisdiction_code=contract.policy_jurisdiction, effective_date=contract.policy_effective_date
    )
    return ContractTerms(
        summary, institution, jurisdiction.name, policy, contract.policy_effective_date, contract.signed_at
    )
