"""Payout instructions: released money goes to the institution on the policy's cadence (or on its
request), refunds go to families; cash leaves custody only when the bank confirms execution."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection
from datetime import datetime, timedelta
from uuid import UUID

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from escrow.access.audit import SYSTEM, note
from escrow.access.callers import Caller, Role, require_role
from escrow.db.paging import Page, keyset
from escrow.db.records import ClassRecord, Contract, Institution, Payout
from escrow.errors import Conflict, InstitutionOnHold, NotFound
from escrow.flows.consumption import (
    LEDGER,
    account_id,
    close_once_refunds_paid,
    family_refunds_owed,
    instruct_refund,
    paid_fen,
    refund_payable_account,
)
from escrow.ids import new_id
from escrow.ledger.engine import post_transaction
from escrow.ledger.idempotency import IdempotencyKey, Outcome, run_once
from escrow.ledger.model import AccountKind, Leg, NewEntry, credit, debit
from escrow.ledger.records import Account
from escrow.registry.calendar import jurisdiction_today
from escrow.registry.institutions import CUSTODY_CASH, PAYOUT_PENDING, RELEASABLE, own_institution, visible_institution
from escrow.registry.jurisdictions import policy_in_force
from escrow.rules import states
from escrow.rules.calendar import BUSINESS_TZ
from escrow.rules.money import format_yuan
from escrow.rules.policy import NATIONAL_DEFAULTS, Policy, ReleaseCadence
from escrow.rules.states import InstitutionStatus, PayoutKind, PayoutStatus


def make_payouts(session: Session, *, now: datetime, institution_ids: Collection[UUID] | None = None) -> list[UUID]:
    """The scheduled run: instruct every release that is due under each jurisdiction's cadence (to these
    institutions only, when given)."""
    query = select(ClassRecord.institution_id).where(
        ClassRecord.release_transaction_id.is_not(None), ClassRecord.payout_id.is_(None)
    )
    if institution_ids is not None:
        query = query.where(ClassRecord.institution_id.in_(institution_ids))
    institutions = session.scalars(query.distinct()).all()
    made = []
    for institution_id in institutions:
        institution = session.get_one(Institution, institution_id, with_for_update={"key_share": True})
        if institution.status != InstitutionStatus.ACTIVE:  # a hold blocks payouts to the institution
            continue
        today = jurisdiction_today(session, jurisdiction_code=institution.jurisdiction_code, now=now)
        policy, _ = policy_in_force(session, jurisdiction_code=institution.jurisdiction_code, on=today)
        payout = _instruct_release(session, institution_id, policy, now, on_request=False)
        if payout is not None:
            made.append(payout.id)
    return made


def request_payout(
    session: Session, *, caller: Caller, institution_id: UUID, idempotency_key: str, now: datetime
) -> Outcome[Payout | None]:
    """The institution asks for everything released so far, whatever the cadence."""
    institution = own_institution(session, caller, institution_id)
    locked = session.get_one(Institution, institution.id, with_for_update={"key_share": True}, populate_existing=True)
    if locked.status != InstitutionStatus.ACTIVE:
        raise InstitutionOnHold(f"institution {institution_id} is {locked.status}: payouts are blocked")

    def perform() -> Payout | None:
        today = jurisdiction_today(session, jurisdiction_code=locked.jurisdiction_code, now=now)
        policy, _ = policy_in_force(session, jurisdiction_code=locked.jurisdiction_code, on=today)
        return _instruct_release(session, institution_id, policy, now, on_request=True)

    return run_once(
        session,
        institution_id=institution_id,
        key=IdempotencyKey(caller.principal, idempotency_key),
        request={"operation": "request_payout"},
        perform=perform,
        remember=lambda p: {"payout_id": str(p.id) if p else None},
        recall=lambda s: session.get(Payout, (institution_id, UUID(s["payout_id"]))) if s["payout_id"] else None,
    )


def settle_closure(
    session: Session, *, caller: Caller, institution_id: UUID, reason: str, idempotency_key: str, now: datetime
) -> Outcome[Payout]:
    """The final settlement of a closed institution: once every family's refund is paid, a regulator
    releases what the institution earned (releasable) to it, with a reason; after the bank executes it,
    custody holds nothing."""
    require_role(caller, Role.REGULATOR)
    visible_institution(session, caller, institution_id)

    def perform() -> Payout:
        locked = session.get_one(
            Institution, institution_id, with_for_update={"key_share": True}, populate_existing=True
        )
        if locked.status not in (InstitutionStatus.CLOSING, InstitutionStatus.CLOSED):
            raise Conflict(f"institution {institution_id} is {locked.status}: only a closed institution is settled")
        owed = family_refunds_owed(session, institution_id)
        if owed or locked.status != InstitutionStatus.CLOSED:
            raise Conflict(
                f"{format_yuan(owed)} yuan of refunds are not yet paid to families; "
                "settle the institution once the bank has executed them"
            )
        payout = _instruct_release(session, institution_id, NATIONAL_DEFAULTS, now, on_request=True)
        if payout is None:
            raise Conflict("the institution has nothing earned left to release")
        note(
            session,
            caller,
            "institution.settled",
            institution_id=institution_id,
            object_type="payout",
            object_id=payout.id,
            at=now,
            after={"amount_fen": payout.amount_fen, "reason": reason},
        )
        return payout

    return run_once(
        session,
        institution_id=institution_id,
        key=IdempotencyKey(caller.principal, idempotency_key),
        request={"operation": "settle_closure", "reason": reason},
        perform=perform,
        remember=lambda p: {"payout_id": str(p.id)},
        recall=lambda s: session.get_one(Payout, (institution_id, UUID(s["payout_id"]))),
    )


def _instruct_release(
    session: Session, institution_id: UUID, policy: Policy, now: datetime, *, on_request: bool
) -> Payout | None:
    unpaid = session.scalars(
        select(ClassRecord)
        .where(
            ClassRecord.institution_id == institution_id,
            ClassRecord.release_transaction_id.is_not(None),
            ClassRecord.payout_id.is_(None),
        )
        .order_by(ClassRecord.id)
        .with_for_update(key_share=True)
    ).all()
    due = list(unpaid) if on_request else _due(session, institution_id, policy, list(unpaid), now)
    amount = sum(c.amount_fen or 0 for c in due)
    if amount == 0:
        return None
    payout = Payout(
        institution_id=institution_id, id=new_id(), kind=PayoutKind.RELEASE, amount_fen=amount, instructed_at=now
    )
    session.add(payout)
    session.flush()
    entry = NewEntry(
        kind="payout_instructed",
        legs=[
            debit(account_id(session, institution_id, RELEASABLE), amount),
            credit(account_id(session, institution_id, PAYOUT_PENDING), amount),
        ],
        effective_at=now,
        metadata={"payout_id": str(payout.id), "classes": len(due)},
    )
    idempotency = IdempotencyKey(LEDGER, f"payout:{payout.id}")
    posted = post_transaction(session, institution_id=institution_id, entry=entry, idempotency=idempotency)
    payout.instruct_transaction_id = posted.value.id
    for record in due:
        record.payout_id = payout.id
    session.flush()
    note(
        session,
        SYSTEM,
        "payout.instructed",
        institution_id=institution_id,
        object_type="payout",
        object_id=payout.id,
        at=now,
        after={"kind": "release", "amount_fen": amount, "classes": len(due)},
    )
    return payout


def _due(
    session: Session, institution_id: UUID, policy: Policy, unpaid: list[ClassRecord], now: datetime
) -> list[ClassRecord]:
    """The released classes whose money the cadence says to pay out now."""
    if policy.release_cadence is ReleaseCadence.PER_CLASS:
        return unpaid
    if policy.release_cadence is ReleaseCadence.TRANCHES:
        return _tranches_reached(session, institution_id, policy, unpaid)
    last = session.scalar(
        select(func.max(Payout.instructed_at)).where(
            Payout.institution_id == institution_id,
            Payout.kind == PayoutKind.RELEASE,
            Payout.status.not_in((PayoutStatus.FAILED, PayoutStatus.RECALLED)),
        )
    )
    if last is None:
        return unpaid
    if policy.release_cadence is ReleaseCadence.WEEKLY:
        return unpaid if now - last >= timedelta(days=7) else []
    # monthly: the district's months, in its own time (Beijing), not UTC's
    this_month, last_month = now.astimezone(BUSINESS_TZ), last.astimezone(BUSINESS_TZ)
    return unpaid if (this_month.year, this_month.month) != (last_month.year, last_month.month) else []


def _tranches_reached(
    session: Session, institution_id: UUID, policy: Policy, unpaid: list[ClassRecord]
) -> list[ClassRecord]:
    """Per contract: pay once released money reaches the next tranche boundary (e.g. 30%, 60%, 100%)."""
    by_contract: dict[UUID, list[ClassRecord]] = defaultdict(list)
    for record in unpaid:
        by_contract[record.contract_id].append(record)
    due = []
    for contract_id, records in by_contract.items():
        contract = session.get_one(Contract, (institution_id, contract_id))
        paid = paid_fen(session, contract)
        released = session.scalar(
            select(func.coalesce(func.sum(ClassRecord.amount_fen), 0)).where(
                ClassRecord.institution_id == institution_id, ClassRecord.contract_id == contract_id
            )
        )
        already = int(released or 0) - sum(r.amount_fen or 0 for r in records)
        boundaries, total = [], 0
        for pct in policy.release_tranches_pct:
            total += pct
            boundaries.append(paid * total // 100)
        if paid and any(already < b <= int(released or 0) for b in boundaries):
            due += records
    return due


def settle_payout(
    session: Session,
    *,
    caller: Caller,
    institution_id: UUID,
    payout_id: UUID,
    executed: bool,
    note_text: str,
    idempotency_key: str,
    now: datetime,
) -> Outcome[Payout]:
    """The custody bank reports the instruction executed (cash leaves custody) or failed (money returns)."""
    require_role(caller, Role.BANK, Role.REGULATOR)
    visible_institution(session, caller, institution_id)

    def perform() -> Payout:
        payout = session.get(
            Payout, (institution_id, payout_id), with_for_update={"key_share": True}, populate_existing=True
        )
        if payout is None:
            raise NotFound(f"payout {payout_id} does not exist in this institution")
        # a refund may be the last one a closing institution owes: its execution and a closure (and other
        # refunds' executions) take turns on the institution's row, so none misses what the other did
        institution = (
            session.get_one(Institution, institution_id, with_for_update={"key_share": True}, populate_existing=True)
            if payout.kind == PayoutKind.REFUND
            else None
        )
        payout.status = states.move("payout", states.PAYOUT, payout.status, "execute" if executed else "fail")
        payout.settled_at = now
        if executed:
            payout.bank_reference = note_text
        else:
            payout.failure_reason = note_text
        legs = _settlement_legs(session, payout, executed)
        if legs:
            entry = NewEntry(
                kind="payout_executed" if executed else "payout_failed",
                legs=legs,
                effective_at=now,
                metadata={"payout_id": str(payout.id), "note": note_text}
                | ({"bank_reference": note_text} if executed else {}),
            )
            idempotency = IdempotencyKey(LEDGER, f"settle:{payout.id}")
            posted = post_transaction(session, institution_id=institution_id, entry=entry, idempotency=idempotency)
            payout.settle_transaction_id = posted.value.id
        if executed and institution is not None:  # owed after this one was sent (an upheld dispute): send it now
            _instruct_refund_owed(session, payout, now)
            close_once_refunds_paid(session, caller, institution, now)
        if not executed and payout.kind == PayoutKind.RELEASE:  # the classes wait for the next instruction
            for record in session.scalars(
                select(ClassRecord).where(
                    ClassRecord.institution_id == institution_id, ClassRecord.payout_id == payout.id
                )
            ):
                record.payout_id = None
        session.flush()
        note(
            session,
            caller,
            f"payout.{payout.status}",
            institution_id=institution_id,
            object_type="payout",
            object_id=payout.id,
            at=now,
            before={"status": PayoutStatus.INSTRUCTED},
            after={"status": payout.status, "note": note_text},
        )
        return payout

    return run_once(
        session,
        institution_id=institution_id,
        key=IdempotencyKey(caller.principal, idempotency_key),
        request={"operation": "settle_payout", "payout_id": str(payout_id), "executed": executed, "note": note_text},
        perform=perform,
        planned={"payout_id": str(payout_id)},
        recall=lambda s: session.get_one(Payout, (institution_id, UUID(s["payout_id"]))),
    )


def _settlement_legs(session: Session, payout: Payout, executed: bool) -> list[Leg]:
    institution_id, amount = payout.institution_id, payout.amount_fen
    cash = account_id(session, institution_id, CUSTODY_CASH)
    if payout.kind == PayoutKind.RELEASE:
        pending = account_id(session, institution_id, PAYOUT_PENDING)
        back_to = cash if executed else account_id(session, institution_id, RELEASABLE)
        return [debit(pending, amount), credit(back_to, amount)]
    if not executed:
        return []  # a failed refund stays owed to the family, in refund_payable, for a new instruction
    contract = session.get_one(Contract, (institution_id, payout.contract_id))
    return [debit(refund_payable_account(session, contract), amount), credit(cash, amount)]


def _instruct_refund_owed(session: Session, executed: Payout, now: datetime) -> None:
    contract = session.get_one(Contract, (executed.institution_id, executed.contract_id))
    owed = session.scalar(
        select(Account.balance).where(
            Account.institution_id == contract.institution_id, Account.id == refund_payable_account(session, contract)
        )
    )
    if owed:
        instruct_refund(session, contract, int(owed), now)


def reinstruct_refunds(session: Session, *, now: datetime) -> list[UUID]:
    """Refunds owed with no instruction in flight (a failed one, or owed after a dispute) get one."""
    owed = session.execute(
        select(Account.institution_id, Account.contract_id, Account.balance).where(
            Account.kind == AccountKind.REFUND_PAYABLE, Account.balance > 0
        )
    ).all()
    made = []
    for institution_id, contract_id, balance in owed:
        contract = session.get_one(Contract, (institution_id, contract_id))
        payout = instruct_refund(session, contract, int(balance), now)
        if payout is not None:
            made.append(payout.id)
    return made


def list_payouts(
    session: Session, *, caller: Caller, institution_id: UUID, cursor: str | None, limit: int
) -> Page[Payout]:
    require_role(caller, Role.REGULATOR, Role.INSTITUTION, Role.BANK)
    visible_institution(session, caller, institution_id)
    query = select(Payout).where(Payout.institution_id == institution_id)
    return keyset(session, query, Payout.id, cursor=cursor, limit=limit)
