"""Contracts, collections into escrow, and the books behind every number."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Header, Query, Response

from api.auth import Now
from api.deps import ApiRoute, CallerDep, SessionDep
from api.routers import documented, mark_replayed
from api.routers.institutions import Cursor, Limit
from api.schemas import (
    CollectionIn,
    CollectionOut,
    ContractBalanceOut,
    ContractIn,
    ContractOut,
    GuardianOut,
    Instant,
    PageOf,
    PostingOut,
    TransactionOut,
)
from escrow.db.paging import DEFAULT_LIMIT
from escrow.flows import books, collections
from escrow.ledger.model import JournalEntry
from escrow.registry import contracts
from escrow.registry.contracts import ContractView, GuardianDetails

router = APIRouter(tags=["contracts"], route_class=ApiRoute)
IdempotencyKeyHeader = Annotated[
    str,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=255,
        pattern=r"^[\x21-\x7e]+$",
        description="your unique key for this request; a retry with the same key and body returns the first result",
    ),
]
AsOf = Annotated[Instant | None, Query(description="a past instant with its time zone; default now")]
CONTRACT = "/institutions/{institution_id}/contracts/{contract_id}"


def contract_out(view: ContractView) -> ContractOut:
    c = view.contract
    return ContractOut(
        id=c.id,
        institution_id=c.institution_id,
        course_id=c.course_id,
        guardian=GuardianOut(name=view.guardian_name, phone=view.guardian_phone, id_number=view.guardian_id_number),
        student_name=c.student_name,
        hours_bought=c.hours_bought,
        bonus_hours=c.bonus_hours,
        unit_price_fen=c.unit_price_fen,
        price_fen=c.price_fen,
        term_start=c.term_start,
        term_end=c.term_end,
        policy_jurisdiction=c.policy_jurisdiction,
        policy_effective_date=c.policy_effective_date,
        status=c.status,
        signed_at=c.signed_at,
        held_fen=view.held_fen,
        collected_fen=view.collected_fen,
    )


def transaction_out(entry: JournalEntry) -> TransactionOut:
    return TransactionOut(
        id=entry.id,
        institution_id=entry.institution_id,
        kind=entry.kind,
        effective_at=entry.effective_at,
        created_at=entry.created_at,
        reverses_id=entry.reverses_id,
        reversal_reason=entry.reversal_reason,
        metadata=dict(entry.metadata),
        postings=[
            PostingOut(id=p.id, account_id=p.account_id, amount_fen=p.amount, currency=p.currency)
            for p in entry.postings
        ],
    )


@router.post(
    "/institutions/{institution_id}/contracts",
    status_code=201,
    operation_id="sign_contract",
    responses=documented(403, 404, 409),
)
def sign_contract(
    institution_id: UUID, body: ContractIn, session: SessionDep, caller: CallerDep, now: Now
) -> ContractOut:
    """Sign a contract under the policy in force today; refused with every cap it would break."""
    view = contracts.sign_contract(
        session,
        caller=caller,
        institution_id=institution_id,
        course_id=body.course_id,
        guardian=GuardianDetails(**body.guardian.model_dump()),
        student_name=body.student_name,
        hours_bought=body.hours_bought,
        bonus_hours=body.bonus_hours,
        term_start=body.term_start,
        term_end=body.term_end,
        now=now,
    )
    return contract_out(view)


@router.get("/contracts", operation_id="list_contracts", responses=documented(404))
def list_contracts(
    session: SessionDep,
    caller: CallerDep,
    institution_id: Annotated[UUID | None, Query()] = None,
    cursor: Cursor = None,
    limit: Limit = DEFAULT_LIMIT,
) -> PageOf[ContractOut]:
    """Your contracts: a parent's own, an institution's, a regulator's jurisdictions', a bank's institutions'."""
    page = contracts.list_contracts(session, caller=caller, institution_id=institution_id, cursor=cursor, limit=limit)
    return PageOf(items=[contract_out(v) for v in page.items], next_cursor=page.next_cursor)


@router.get(CONTRACT, operation_id="get_contract", responses=documented(404))
def get_contract(institution_id: UUID, contract_id: UUID, session: SessionDep, caller: CallerDep) -> ContractOut:
    """One contract, with what is held for the family."""
    return contract_out(
        contracts.get_contract(session, caller=caller, institution_id=institution_id, contract_id=contract_id)
    )


@router.get(CONTRACT + "/balance", operation_id="get_contract_balance", responses=documented(404))
def get_contract_balance(
    institution_id: UUID, contract_id: UUID, session: SessionDep, caller: CallerDep, as_of: AsOf = None
) -> ContractBalanceOut:
    """What is held for the family under this contract, now or as of a past instant."""
    b = books.contract_balance(
        session, caller=caller, institution_id=institution_id, contract_id=contract_id, as_of=as_of
    )
    return ContractBalanceOut(contract_id=b.contract_id, as_of=b.as_of, held_fen=b.held_fen)


@router.post(
    CONTRACT + "/collections",
    status_code=201,
    operation_id="register_collection",
    responses=documented(403, 404, 409),
)
def register_collection(
    institution_id: UUID,
    contract_id: UUID,
    body: CollectionIn,
    idempotency_key: IdempotencyKeyHeader,
    session: SessionDep,
    caller: CallerDep,
    now: Now,
    response: Response,
) -> CollectionOut:
    """Record a payment into escrow for a contract. Refused when it breaks a cap or the institution is on hold."""
    done = collections.collect(
        session,
        caller=caller,
        institution_id=institution_id,
        contract_id=contract_id,
        amount_fen=body.amount_fen,
        bank_reference=body.bank_reference,
        collected_at=body.collected_at,
        idempotency_key=idempotency_key,
        now=now,
    )
    mark_replayed(response, done.replayed)
    return CollectionOut.model_validate(done.value)


@router.get(CONTRACT + "/collections", operation_id="list_collections", responses=documented(404))
def list_collections(
    institution_id: UUID,
    contract_id: UUID,
    session: SessionDep,
    caller: CallerDep,
    cursor: Cursor = None,
    limit: Limit = DEFAULT_LIMIT,
) -> PageOf[CollectionOut]:
    """The payments collected for a contract."""
    page = collections.list_collections(
        session, caller=caller, institution_id=institution_id, contract_id=contract_id, cursor=cursor, limit=limit
    )
    return PageOf(items=[CollectionOut.model_validate(c) for c in page.items], next_cursor=page.next_cursor)


@router.get(
    "/institutions/{institution_id}/collections/{collection_id}",
    operation_id="get_collection",
    responses=documented(404),
)
def get_collection(institution_id: UUID, collection_id: UUID, session: SessionDep, caller: CallerDep) -> CollectionOut:
    """One collection."""
    row = collections.get_collection(session, caller=caller, institution_id=institution_id, collection_id=collection_id)
    return CollectionOut.model_validate(row)


@router.get(CONTRACT + "/transactions", operation_id="list_contract_transactions", responses=documented(404))
def list_contract_transactions(
    institution_id: UUID,
    contract_id: UUID,
    session: SessionDep,
    caller: CallerDep,
    cursor: Cursor = None,
    limit: Limit = DEFAULT_LIMIT,
) -> PageOf[TransactionOut]:
    """The journal transactions that moved this contract's money, with their postings."""
    page = books.list_transactions(
        session, caller=caller, institution_id=institution_id, contract_id=contract_id, cursor=cursor, limit=limit
    )
    return PageOf(items=[transaction_out(e) for e in page.items], next_cursor=page.next_cursor)


@router.get(
    "/institutions/{institution_id}/transactions", operation_id="list_transactions", responses=documented(403, 404)
)
def list_transactions(
    institution_id: UUID, session: SessionDep, caller: CallerDep, cursor: Cursor = None, limit: Limit = DEFAULT_LIMIT
) -> PageOf[TransactionOut]:
    """The institution's journal transactions, with their postings."""
    page = books.list_transactions(
        session, caller=caller, institution_id=institution_id, contract_id=None, cursor=cursor, limit=limit
    )
    return PageOf(items=[transaction_out(e) for e in page.items], next_cursor=page.next_cursor)


@router.get(
    "/institutions/{institution_id}/transactions/{transaction_id}",
    operation_id="get_transaction",
    responses=documented(403, 404),
)
def get_transaction(
    institution_id: UUID, transaction_id: UUID, session: SessionDep, caller: CallerDep
) -> TransactionOut:
    """One journal transaction and its postings."""
    return transaction_out(
        books.get_transaction(session, caller=caller, institution_id=institution_id, transaction_id=transaction_id)
    )
