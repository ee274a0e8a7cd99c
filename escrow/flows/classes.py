"""Classes given: recorded by the institution, confirmed or disputed by the parent, or deemed
confirmed after the policy's working days of silence; a dispute is resolved by the regulator."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from datetime import date, datetime
from typing import Any
from uuid import UUID

from sqlalchemy import select
from sqlalchemy.orm import Session

from escrow.access.audit import SYSTEM, note
from escrow.access.callers import Caller, Role, contract_scope, require_role
from escrow.db.paging import Page, keyset
from escrow.db.records import ClassRecord, Contract
from escrow.errors import Conflict, InvalidRequest, NotFound, PolicyViolation
from escrow.flows.consumption import hours_used, refund_remaining, release_ready, total_hours
from escrow.ids import new_id
from escrow.ledger.idempotency import IdempotencyKey, Outcome, run_once
from escrow.registry.calendar import jurisdiction_today, official_calendar
from escrow.registry.contracts import visible_contract
from escrow.registry.jurisdictions import policy_version
from escrow.rules import states
from escrow.rules.calendar import local_date
from escrow.rules.policy import backdate_problem
from escrow.rules.states import ClassStatus, ConfirmedHow, ContractStatus


def record_class(
    session: Session,
    *,
    caller: Caller,
    institution_id: UUID,
    contract_id: UUID,
    hours: int,
    given_on: date | None,
    idempotency_key: str,
    now: datetime,
) -> Outcome[ClassRecord]:
    """Record hours given on a date, once per key; they stop being refundable until confirmed or returned."""
    require_role(caller, Role.INSTITUTION)
    if caller.institution_id != institution_id:  # the contract's scope below holds this too; said plainly here
        raise NotFound(f"institution {institution_id} does not exist or is outside your scope")
    class_id = new_id()  # chosen first, so the key is claimed with its outcome
    return run_once(
        session,
        institution_id=institution_id,
        key=IdempotencyKey(caller.principal, idempotency_key),
        request={"operation": "record_class", "contract_id": str(contract_id), "hours": hours, "given_on": given_on},
        perform=lambda: _record(session, caller, institution_id, contract_id, class_id, hours, given_on, now),
        planned={"class_id": str(class_id)},
        recall=_recall(session, institution_id),
    )


def _record(
    session: Session,
    caller: Caller,
    institution_id: UUID,
    contract_id: UUID,
    class_id: UUID,
    hours: int,
    given_on: date | None,
    now: datetime,
) -> ClassRecord:
    contract = visible_contract(session, caller, institution_id, contract_id, lock=True)
    today = jurisdiction_today(session, jurisdiction_code=contract.policy_jurisdiction, now=now)
    day = given_on or today
    if contract.status != ContractStatus.ACTIVE:
        raise Conflict(f"contract {contract_id} is {contract.status}; no more classes can be recorded")
    if day > today:
        raise InvalidRequest(f"given_on {day} is in the future; record a class once it is given")
    if not contract.term_start <= day <= contract.term_end:
        raise InvalidRequest(f"{day} is outside the contract's term {contract.term_start} to {contract.term_end}")
    policy = policy_version(
        session, jurisdiction_code=contract.policy_jurisdiction, effective_date=contract.policy_effective_date
    )
    recorded_on = today  # the first day the parent can see the class: their window starts here
    too_old = backdate_problem(policy, given_on=day, today=recorded_on)
    if too_old:
        raise PolicyViolation([too_old])
    left = total_hours(contract) - hours_used(session, contract)
    if hours > left:
        raise Conflict(f"the contract has {left} class hours left; {hours} cannot be recorded")
    row = ClassRecord(
        institution_id=institution_id,
        id=class_id,
        contract_id=contract_id,
        hours=hours,
        given_on=day,
        confirm_by=official_calendar(session).add_working_days(recorded_on, policy.confirm_after_working_days),
        recorded_at=now,
    )
    session.add(row)
    session.flush()
    note(
        session,
        caller,
        "class.recorded",
        institution_id=institution_id,
        object_type="class",
        object_id=row.id,
        at=now,
        after={"contract_id": contract_id, "hours": hours, "given_on": day, "confirm_by": row.confirm_by},
    )
    return row


_PAST = {"confirm": "confirmed", "dispute": "disputed", "uphold": "upheld", "reject": "dispute_rejected"}


def _class_for_update(
    session: Session, caller: Caller, institution_id: UUID, class_id: UUID
) -> tuple[ClassRecord, Contract]:
    """Lock the contract, then the class: the one order every flow on a contract takes. The contract's
    scope is the caller's (a parent's own contracts, or the institutions the caller may see)."""
    contract = session.scalars(
        select(Contract)
        .join(
            ClassRecord,
            (ClassRecord.institution_id == Contract.institution_id) & (ClassRecord.contract_id == Contract.id),
        )
        .where(ClassRecord.institution_id == institution_id, ClassRecord.id == class_id, contract_scope(caller))
        .with_for_update(key_share=True, of=Contract)
    ).one_or_none()
    if contract is None:
        raise NotFound(f"class {class_id} does not exist or is outside your scope")
    row = session.scalars(
        select(ClassRecord)
        .where(ClassRecord.institution_id == institution_id, ClassRecord.id == class_id)
        .with_for_update(key_share=True)
        .execution_options(populate_existing=True)
    ).one()
    return row, contract


def _recall(session: Session, institution_id: UUID) -> Callable[[Mapping[str, Any]], ClassRecord]:
    return lambda stored: session.get_one(ClassRecord, (institution_id, UUID(stored["class_id"])))


def _decide(
    session: Session,
    *,
    caller: Caller,
    institution_id: UUID,
    class_id: UUID,
    event: str,
    idempotency_key: str,
    now: datetime,
    note_text: str | None = None,
) -> Outcome[ClassRecord]:
    """Move one class through its state machine, then release whatever that makes releasable."""

    def perform() -> ClassRecord:
        row, contract = _class_for_update(session, caller, institution_id, class_id)
        before = row.status
        row.status = states.move("class", states.CLASS, row.status, event)
        row.decided_at = now
        if event == "confirm":
            row.confirmed_how = ConfirmedHow.PARENT
        elif event == "reject":
            row.confirmed_how = ConfirmedHow.DISPUTE_REJECTED
            row.resolution_note = note_text
        elif event == "dispute":
            row.dispute_reason = note_text
        elif event == "uphold":
            row.resolution_note = note_text
        session.flush()
        note(
            session,
            caller,
            f"class.{_PAST[event]}",
            institution_id=institution_id,
            object_type="class",
            object_id=row.id,
            at=now,
            before={"status": before},
            after={"status": row.status, "note": note_text},
        )
        release_ready(session, contract, now)
        if event == "uphold" and contract.status != ContractStatus.ACTIVE:  # the hours came back after the refund
            refund_remaining(session, contract, cause=f"upheld:{row.id}", now=now)
        return row

    return run_once(
        session,
        institution_id=institution_id,
        key=IdempotencyKey(caller.principal, idempotency_key),
        request={"operation": f"class_{event}", "class_id": str(class_id), "note": note_text},
        perform=perform,
        planned={"class_id": str(class_id)},
        recall=_recall(session, institution_id),
    )


def confirm_class(
    session: Session, *, caller: Caller, institution_id: UUID, class_id: UUID, idempotency_key: str, now: datetime
) -> Outcome[ClassRecord]:
    """The parent confirms the class: its share of the prepayment becomes releasable."""
    require_role(caller, Role.PARENT)
    return _decide(
        session,
        caller=caller,
        institution_id=institution_id,
        class_id=class_id,
        event="confirm",
        idempotency_key=idempotency_key,
        now=now,
    )


def dispute_class(
    session: Session,
    *,
    caller: Caller,
    institution_id: UUID,
    class_id: UUID,
    reason: str,
    idempotency_key: str,
    now: datetime,
) -> Outcome[ClassRecord]:
    """The parent disputes the class: release of the contract stops until the regulator resolves it."""
    require_role(caller, Role.PARENT)
    return _decide(
        session,
        caller=caller,
        institution_id=institution_id,
        class_id=class_id,
        event="dispute",
        idempotency_key=idempotency_key,
        now=now,
        note_text=reason,
    )


def resolve_dispute(
    session: Session,
    *,
    caller: Caller,
    institution_id: UUID,
    class_id: UUID,
    upheld: bool,
    note: str,
    idempotency_key: str,
    now: datetime,
) -> Outcome[ClassRecord]:
    """Upheld: the hours return to the family. Rejected: the class counts as confirmed."""
    require_role(caller, Role.REGULATOR)
    return _decide(
        session,
        caller=caller,
        institution_id=institution_id,
        class_id=class_id,
        event="uphold" if upheld else "reject",
        idempotency_key=idempotency_key,
        now=now,
        note_text=note,
    )


def deem_classes_confirmed(
    session: Session, *, now: datetime, institution_ids: Collection[UUID] | None = None
) -> list[UUID]:
    """Confirm every class whose parent stayed silent past its confirm_by date (of these institutions only,
    when given); safe to run again."""
    query = select(ClassRecord.institution_id, ClassRecord.contract_id).where(
        ClassRecord.status == ClassStatus.PENDING, ClassRecord.confirm_by < local_date(now)
    )
    if institution_ids is not None:
        query = query.where(ClassRecord.institution_id.in_(institution_ids))
    contracts = session.execute(query.distinct()).all()
    deemed: list[UUID] = []
    for institution_id, contract_id in contracts:
        contract = session.get_one(Contract, (institution_id, contract_id), with_for_update={"key_share": True})
        due = session.scalars(
            select(ClassRecord)
            .where(
                ClassRecord.institution_id == institution_id,
                ClassRecord.contract_id == contract_id,
                ClassRecord.status == ClassStatus.PENDING,
                ClassRecord.confirm_by < local_date(now),
            )
            .with_for_update(key_share=True)
            .execution_options(populate_existing=True)
        ).all()
        for row in due:
            row.status = states.move("class", states.CLASS, row.status, "deem")
            row.confirmed_how = ConfirmedHow.DEEMED
            row.decided_at = now
            deemed.append(row.id)
            note(
                session,
                SYSTEM,
                "class.deemed_confirmed",
                institution_id=institution_id,
                object_type="class",
                object_id=row.id,
                at=now,
                before={"status": ClassStatus.PENDING},
                after={"status": ClassStatus.CONFIRMED},
            )
        session.flush()
        release_ready(session, contract, now)
    return deemed


def list_classes(
    session: Session, *, caller: Caller, institution_id: UUID, contract_id: UUID, cursor: str | None, limit: int
) -> Page[ClassRecord]:
    visible_contract(session, caller, institution_id, contract_id)
    query = select(ClassRecord).where(
        ClassRecord.institution_id == institution_id, ClassRecord.contract_id == contract_id
    )
    return keyset(session, query, ClassRecord.id, cursor=cursor, limit=limit)


def contract_of_class(session: Session, *, caller: Caller, institution_id: UUID, class_id: UUID) -> UUID:
    """The contract a class was given under, if the caller may see it."""
    contract_id = session.scalar(
        select(ClassRecord.contract_id)
        .join(
            Contract, (Contract.institution_id == ClassRecord.institution_id) & (Contract.id == ClassRecord.contract_id)
        )
        .where(ClassRecord.institution_id == institution_id, ClassRecord.id == class_id, contract_scope(caller))
    )
    if contract_id is None:
        raise NotFound(f"class {class_id} does not exist in this institution or is outside your scope")
    return contract_id
