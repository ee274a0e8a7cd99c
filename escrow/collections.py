"""Collections: a family's payment into escrow for a contract, posted as custody cash and prepaid.

Money-moving, so idempotent: the key is claimed in the same transaction as the postings.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from escrow.access import Caller
from escrow.audit import note
from escrow.contracts import visible_contract
from escrow.errors import Conflict, InstitutionOnHold, NotFound, PolicyViolation
from escrow.idempotency import IdempotencyKey, claim_key, record_outcome
from escrow.ids import new_id
from escrow.institutions import CUSTODY_CASH, own_institution, visible_institution
from escrow.jurisdictions import policy_version
from escrow.ledger.engine import record_entry
from escrow.ledger.model import credit, debit
from escrow.ledger.records import Account
from escrow.paging import Page, keyset
from escrow.policy import CourseCategory, cap_problems
from escrow.records import Collection, Contract, Course


@dataclass(frozen=True, slots=True)
class Collected:
    collection: Collection
    replayed: bool


def collect(
    session: Session,
    *,
    caller: Caller,
    institution_id: UUID,
    contract_id: UUID,
    amount_fen: int,
    bank_reference: str,
    collected_at: datetime | None,
    idempotency_key: str,
    now: datetime,
) -> Collected:
    """Record a payment into escrow; refused with a reason on hold, over the price, or over a cap."""
    institution = own_institution(session, caller, institution_id, lock=True)
    key = IdempotencyKey(caller.principal, idempotency_key)
    request = {
        "operation": "collect",
        "contract_id": str(contract_id),
        "amount_fen": amount_fen,
        "bank_reference": bank_reference,
        "collected_at": collected_at,
    }
    earlier = claim_key(session, institution_id=institution_id, key=key, request=request)
    if earlier is not None:
        assert earlier.result is not None, "a claimed key records its result in the same transaction"
        return Collected(session.get_one(Collection, (institution_id, UUID(earlier.result["collection_id"]))), True)
    if institution.status != "active":
        raise InstitutionOnHold(f"institution {institution_id} is {institution.status}: new collections are blocked")
    contract = visible_contract(session, caller, institution_id, contract_id, lock=True)
    _check_collection(session, contract, amount_fen, bank_reference)
    cash = session.scalars(
        select(Account.id).where(Account.institution_id == institution_id, Account.code == CUSTODY_CASH)
    ).one()
    entry = record_entry(
        session,
        institution_id=institution_id,
        kind="collection",
        legs=[debit(cash, amount_fen), credit(contract.prepaid_account_id, amount_fen)],
        effective_at=collected_at or now,
        metadata={"contract_id": str(contract_id), "bank_reference": bank_reference},
    )
    row = Collection(
        institution_id=institution_id,
        id=new_id(),
        contract_id=contract_id,
        amount_fen=amount_fen,
        bank_reference=bank_reference,
        collected_at=entry.effective_at,
        transaction_id=entry.id,
    )
    session.add(row)
    session.flush()
    note(
        session,
        caller,
        "collection.registered",
        institution_id=institution_id,
        object_type="collection",
        object_id=row.id,
        at=now,
        after={
            "contract_id": contract_id,
            "amount_fen": amount_fen,
            "bank_reference": bank_reference,
            "transaction_id": entry.id,
        },
    )
    record_outcome(
        session, institution_id=institution_id, key=key, transaction_id=entry.id, result={"collection_id": str(row.id)}
    )
    return Collected(row, False)


def _check_collection(session: Session, contract: Contract, amount_fen: int, bank_reference: str) -> None:
    if contract.status != "active":
        raise Conflict(f"contract {contract.id} is {contract.status}; it takes no more collections")
    duplicate = session.scalar(
        select(Collection.id).where(
            Collection.institution_id == contract.institution_id, Collection.bank_reference == bank_reference
        )
    )
    if duplicate is not None:
        raise Conflict(f"bank reference {bank_reference} was already collected as collection {duplicate}")
    collected = session.scalar(
        select(func.coalesce(func.sum(Collection.amount_fen), 0)).where(
            Collection.institution_id == contract.institution_id, Collection.contract_id == contract.id
        )
    )
    course = session.get_one(Course, (contract.institution_id, contract.course_id))
    policy = policy_version(
        session, jurisdiction_code=contract.policy_jurisdiction, effective_date=contract.policy_effective_date
    )
    problems = cap_problems(
        policy,
        category=CourseCategory(course.category),
        hours_bought=contract.hours_bought,
        bonus_hours=contract.bonus_hours,
        term_start=contract.term_start,
        term_end=contract.term_end,
        amount_fen=amount_fen,
    )
    if int(collected or 0) + amount_fen > contract.price_fen:
        problems.append(
            f"collecting {amount_fen} fen would bring the contract to {int(collected or 0) + amount_fen} fen, "
            f"above its price of {contract.price_fen} fen ({contract.price_fen - int(collected or 0)} fen left)"
        )
    if problems:
        raise PolicyViolation(problems)


def list_collections(
    session: Session, *, caller: Caller, institution_id: UUID, contract_id: UUID, cursor: str | None, limit: int
) -> Page[Collection]:
    visible_institution(session, caller, institution_id)
    visible_contract(session, caller, institution_id, contract_id)
    query = select(Collection).where(Collection.institution_id == institution_id, Collection.contract_id == contract_id)
    return keyset(session, query, Collection.id, cursor=cursor, limit=limit)


def get_collection(session: Session, *, caller: Caller, institution_id: UUID, collection_id: UUID) -> Collection:
    visible_institution(session, caller, institution_id)
    row = session.get(Collection, (institution_id, collection_id))
    if row is None:
        raise NotFound(f"collection {collection_id} does not exist in this institution")
    visible_contract(session, caller, institution_id, row.contract_id)
    return row
