"""Custody bank statements: imported by the bank or a regulator, read by those who keep or watch the account."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from api.auth import Now
from api.deps import ApiRoute, CallerDep, SessionDep
from api.routers import documented, mark_replayed
from api.routers.institutions import Cursor, Limit
from api.schemas import Day, PageOf
from escrow.bank import statements
from escrow.bank.formats import FORMATS, MAX_FILE_BYTES
from escrow.db.paging import DEFAULT_LIMIT

router = APIRouter(tags=["bank statements"], route_class=ApiRoute)

_TEXT = {"schema": {"type": "string"}}
_FILE_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "the statement file as the bank sent it: CSV (docs/statements.md; UTF-8, UTF-8 with BOM or"
        " GB18030), MT940, or camt.053 XML",
        "content": {"text/csv": _TEXT, "text/plain": _TEXT, "application/xml": _TEXT},
    }
}


async def _file(request: Request) -> bytes:
    return await request.body()


class StatementOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: UUID
    institution_id: UUID
    statement_date: date
    account: str
    currency: str
    opening_fen: int
    closing_fen: int
    line_count: int
    source_format: str
    imported_by: str
    imported_at: datetime
    reconciled_at: datetime | None = Field(description="when the reconcile job last matched it; null before")
    ledger_closing_fen: int | None = Field(description="the ledger's custody cash at the end of that day")
    unmatched_ledger: list[dict[str, Any]] = Field(description="ledger cash movements of the day it does not show")


class ImportedOut(BaseModel):
    statement: StatementOut
    replayed: bool = Field(description="true when this very statement had been imported before: nothing changed")


class ImportOut(BaseModel):
    statements: list[ImportedOut]


class LineOut(BaseModel):
    position: int
    value_date: date
    amount_fen: int = Field(description="signed: money into the custody account is positive")
    reference: str
    counterparty: str
    memo: str
    matched_transaction_ids: list[UUID]


class StatementDetailOut(StatementOut):
    lines: list[LineOut]


@router.post(
    "/statements",
    status_code=201,
    operation_id="import_statements",
    responses=documented(403, 404, 409),
    openapi_extra=_FILE_BODY,
)
def import_statements(
    session: SessionDep,
    caller: CallerDep,
    now: Now,
    response: Response,
    data: Annotated[bytes, Depends(_file)],
    format: Annotated[str | None, Query(pattern="^(" + "|".join(FORMATS) + ")$")] = None,
) -> ImportOut:
    """Import a statement file whole (or nothing of it); the same statement again changes nothing."""
    if len(data) > MAX_FILE_BYTES:
        data = data[: MAX_FILE_BYTES + 1]  # refused by the parser with the limit in the reason
    imported = statements.import_statements(session, caller=caller, data=data, fmt=format, now=now)
    if all(item.replayed for item in imported):
        response.status_code = 200
        mark_replayed(response, True)
    return ImportOut(
        statements=[
            ImportedOut(statement=StatementOut.model_validate(i.statement), replayed=i.replayed) for i in imported
        ]
    )


@router.get("/statements", operation_id="list_statements", responses=documented(403))
def list_statements(
    session: SessionDep,
    caller: CallerDep,
    institution_id: Annotated[UUID | None, Query()] = None,
    statement_date: Annotated[Day | None, Query()] = None,
    cursor: Cursor = None,
    limit: Limit = DEFAULT_LIMIT,
) -> PageOf[StatementOut]:
    """Statements of the institutions you may see, by institution and day."""
    page = statements.list_statements(
        session, caller=caller, institution_id=institution_id, on=statement_date, cursor=cursor, limit=limit
    )
    return PageOf(items=[StatementOut.model_validate(s) for s in page.items], next_cursor=page.next_cursor)


@router.get(
    "/institutions/{institution_id}/statements/{statement_id}",
    operation_id="get_statement",
    responses=documented(403, 404),
)
def get_statement(
    institution_id: UUID, statement_id: UUID, session: SessionDep, caller: CallerDep
) -> StatementDetailOut:
    """A statement with its lines, each with the ledger transactions it matched."""
    statement, lines = statements.get_statement(
        session, caller=caller, institution_id=institution_id, statement_id=statement_id
    )
    base = StatementOut.model_validate(statement).model_dump()
    return StatementDetailOut(
        **base,
        lines=[
            LineOut(
                position=v.line.position,
                value_date=v.line.value_date,
                amount_fen=v.line.amount_fen,
                reference=v.line.reference,
                counterparty=v.line.counterparty,
                memo=v.line.memo,
                matched_transaction_ids=v.matched,
            )
            for v in lines
        ],
    )
