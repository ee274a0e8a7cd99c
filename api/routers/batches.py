"""Collections imported in bulk: one request, one transaction, every item idempotent under its own key."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Response
from pydantic import BaseModel, Field, StringConstraints

from api.auth import Now
from api.deps import ApiRoute, CallerDep, SessionDep
from api.routers import documented, mark_replayed
from api.schemas import Fen, Instant, Request, example
from escrow.flows import batches

router = APIRouter(tags=["contracts"], route_class=ApiRoute)


class BatchItemIn(Request):
    model_config = example(
        contract_id="01a23371-cf6d-7a36-b3ad-2ac2ffe89f7c",
        amount_fen=600_000,
        bank_reference="ICBC20270301-0001",
        idempotency_key="collection-2027-03-01-0001",
    )

    contract_id: UUID
    amount_fen: Fen
    bank_reference: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_./:-]{1,64}$")]
    collected_at: Instant | None = Field(default=None, description="when the bank received it; default now")
    idempotency_key: Annotated[
        str,
        StringConstraints(min_length=1, max_length=255, pattern=r"^[\x21-\x7e]+$"),
        Field(description="your unique key for this item; the same key and item again returns the first result"),
    ]


class CollectionBatchIn(Request):
    model_config = example(items=BatchItemIn.model_config["json_schema_extra"]["examples"])  # type: ignore[index]

    items: list[BatchItemIn] = Field(min_length=1, max_length=batches.MAX_ITEMS)


class BatchItemOut(BaseModel):
    index: int
    collection_id: UUID
    transaction_id: UUID
    contract_id: UUID
    amount_fen: int
    bank_reference: str
    collected_at: datetime
    replayed: bool = Field(description="the key matched an earlier request: nothing moved again")


class CollectionBatchOut(BaseModel):
    items: list[BatchItemOut]


@router.post(
    "/institutions/{institution_id}/collection-batches",
    status_code=201,
    operation_id="import_collections",
    responses={
        **documented(403, 404, 409),
        200: {"model": CollectionBatchOut, "description": "every item was a replay: nothing moved again"},
    },
)
def import_collections(
    institution_id: UUID,
    body: CollectionBatchIn,
    session: SessionDep,
    caller: CallerDep,
    now: Now,
    response: Response,
) -> CollectionBatchOut:
    """Register up to 1,000 collections at once, all or none; refused with every bad item named by index."""
    done = batches.import_collections(
        session,
        caller=caller,
        institution_id=institution_id,
        items=[
            batches.BatchItem(i.contract_id, i.amount_fen, i.bank_reference, i.collected_at, i.idempotency_key)
            for i in body.items
        ],
        now=now,
    )
    if all(d.replayed for d in done):
        response.status_code = 200
    mark_replayed(response, all(d.replayed for d in done))
    return CollectionBatchOut(
        items=[
            BatchItemOut(
                index=d.index,
                collection_id=d.collection_id,
                transaction_id=d.transaction_id,
                contract_id=d.contract_id,
                amount_fen=d.amount_fen,
                bank_reference=d.bank_reference,
                collected_at=d.collected_at,
                replayed=d.replayed,
            )
            for d in done
        ]
    )
