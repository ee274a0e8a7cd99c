"""Collections: a family's payment into escrow for a contract, posted as custody cash and prepaid.

Money-moving, so idempotent: the key is claimed in the same transaction as the postings.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast
from uuid import UUID

from sqlalchemy import Table, bindparam, func, select
from sqlalchemy.orm import Session, make_transient_to_detached

from escrow.access.audit import note
from escrow.access.callers import Caller, Role, require_role
from escrow.db.paging import Page, keyset
from escrow.db.records import Collection, Contract, Course, Institution
from escrow.errors import Conflict, InstitutionOnHold, NotFound, PolicyViolation
from escrow.ids import new_id
from escrow.ledger.engine import AlsoWrite, outcome_write, record_entry
from escrow.ledger.idempotency import IdempotencyKey, claim_key
from escrow.ledger.model import credit, debit
from escrow.ledger.records import Account
from escrow.registry.contracts import visible_contract
from escrow.registry.institutions import CUSTODY_CASH, visible_institution
from escrow.registry.jurisdictions import policy_version
from escrow.rules.policy import CourseCategory, cap_problems


@dataclass(frozen=True, slots=True)
class Collected:
    collection: Collection
    replayed: bool


_INSTITUTION = cast(Table, Institution.__table__)
_CONTRACT = cast(Table, Contract.__table__)
_COURSE = cast(Table, Course.__table__)
_COLLECTION = cast(Table, Collection.__table__)
_ACCOUNT = cast(Table, Account.__table__)
# Built once: these run on every collection, and building a statement costs more than running it.
# A share lock on the institution: collections go ahead together, while a hold or closure waits for them.
_LOCK_INSTITUTION = (
    select(_INSTITUTION.c.status).where(_INSTITUTION.c.id == bindparam("p_institution_id")).with_for_update(read=True)
)
_LOCK_CONTRACT = (
    select(
        _CONTRACT.c.status,
        _CONTRACT.c.price_fen,
        _CONTRACT.c.hours_bought,
        _CONTRACT.c.bonus_hours,
        _CONTRACT.c.term_start,
        _CONTRACT.c.term_end,
        _CONTRACT.c.policy_jurisdiction,
        _CONTRACT.c.policy_effective_date,
        _CONTRACT.c.prepaid_account_id,
        _COURSE.c.category,
    )
    .join(_COURSE, (_COURSE.c.institution_id == _CONTRACT.c.institution_id) & (_COURSE.c.id == _CONTRACT.c.course_id))
    .where(_CONTRACT.c.institution_id == bindparam("p_institution_id"), _CONTRACT.c.id == bindparam("p_contract_id"))
    .with_for_update(key_share=True, of=_CONTRACT)
)
# A statement of its own, run once the contract is locked, so it counts what committed while we waited
_STANDING = select(
    select(_COLLECTION.c.id)
    .where(
        _COLLECTION.c.institution_id == bindparam("p_institution_id"),
        _COLLECTION.c.bank_reference == bindparam("p_bank_reference"),
    )
    .scalar_subquery()
    .label("duplicate"),
    select(func.coalesce(func.sum(_COLLECTION.c.amount_fen), 0))
    .where(
        _COLLECTION.c.institution_id == bindparam("p_institution_id"),
        _COLLECTION.c.contract_id == bindparam("p_contract_id"),
    )
    .scalar_subquery()
    .label("collected"),
    select(_ACCOUNT.c.id)
    .where(_ACCOUNT.c.institution_id == bindparam("p_institution_id"), _ACCOUNT.c.code == CUSTODY_CASH)
    .scalar_subquery()
    .label("cash"),
)
# Written with the journal transaction (see record_entry), at its effective time
_INSERT = (
    "INSERT INTO collection (institution_id, id, contract_id, amount_fen, bank_reference, collected_at,"
    " transaction_id) VALUES (:institution_id, :p_collection_id, :p_contract_id, :p_amount_fen, :p_bank_reference,"
    " :effective_at, :transaction_id)"
)


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
    require_role(caller, Role.INSTITUTION)
    ids = {"p_institution_id": institution_id, "p_contract_id": contract_id, "p_bank_reference": bank_reference}
    status = session.scalar(_LOCK_INSTITUTION, ids) if caller.institution_id == institution_id else None
    if status is None:
        raise NotFound(f"institution {institution_id} does not exist or is outside your scope")
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
    if status != "active":
        raise InstitutionOnHold(f"institution {institution_id} is {status}: new collections are blocked")
    contract = session.execute(_LOCK_CONTRACT, ids).one_or_none()
    if contract is None:
        raise NotFound(f"contract {contract_id} does not exist or is outside your scope")
    cash = _check_collection(session, contract, contract_id, ids, amount_fen, bank_reference)
    collection_id, transaction_id = new_id(), new_id()
    note(  # before the write, which appends it to the audit chain with the postings
        session,
        caller,
        "collection.registered",
        institution_id=institution_id,
        object_type="collection",
        object_id=collection_id,
        at=now,
        after={
            "contract_id": contract_id,
            "amount_fen": amount_fen,
            "bank_reference": bank_reference,
            "transaction_id": transaction_id,
        },
    )
    entry = record_entry(
        session,
        institution_id=institution_id,
        kind="collection",
        legs=[debit(cash, amount_fen), credit(contract.prepaid_account_id, amount_fen)],
        effective_at=collected_at or now,
        metadata={"contract_id": str(contract_id), "bank_reference": bank_reference},
        also=[
            AlsoWrite(_INSERT, ids | {"p_collection_id": collection_id, "p_amount_fen": amount_fen}),
            outcome_write(key, {"collection_id": str(collection_id)}),
        ],
        transaction_id=transaction_id,
        last_write=True,
    )
    row = Collection(
        institution_id=institution_id,
        id=collection_id,
        contract_id=contract_id,
        amount_fen=amount_fen,
        bank_reference=bank_reference,
        collected_at=entry.effective_at,
        transaction_id=entry.id,
        created_at=entry.created_at,  # both the database transaction's now()
    )
    make_transient_to_detached(row)  # written above with the journal transaction; the session knows it as stored
    session.add(row)
    return Collected(row, False)


def _check_collection(
    session: Session, contract: Any, contract_id: UUID, ids: dict[str, Any], amount_fen: int, bank_reference: str
) -> UUID:
    """Every reason to refuse the collection, or the custody cash account it debits."""
    if contract.status != "active":
        raise Conflict(f"contract {contract_id} is {contract.status}; it takes no more collections")
    duplicate, collected, cash = session.execute(_STANDING, ids).one()
    if duplicate is not None:
        raise Conflict(f"bank reference {bank_reference} was already collected as collection {duplicate}")
    policy = policy_version(
        session, jurisdiction_code=contract.policy_jurisdiction, effective_date=contract.policy_effective_date
    )
    problems = cap_problems(
        policy,
        category=CourseCategory(contract.category),
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
    assert cash is not None, "every institution opens its custody cash account when registered"
    return cash  # type: ignore[no-any-return]


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
