"""Request and response shapes of what families say: complaints and their threads, evaluations, and the
refund a request would bring. Requests refuse unknown fields, as in api/schemas.py."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import UUID

from pydantic import BaseModel, Field, StrictInt, StringConstraints

from api.schemas import WHOLE, Request, Response, example
from escrow.rules.families import MAX_COMMENT_CHARS, MAX_COMPLAINT_CHARS, Author, ComplaintCategory
from escrow.rules.states import ComplaintStatus

Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_COMPLAINT_CHARS)]
Comment = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_COMMENT_CHARS)]


class ComplaintIn(Request):
    model_config = example(
        category="refund",
        body="We asked for a refund three weeks ago; the institution does not answer the phone.",
        contract_id="01a23371-cf6d-7a36-b3ad-2ac2ffe89f7c",
    )

    category: ComplaintCategory
    body: Text
    contract_id: UUID | None = Field(default=None, description="the contract it is about, if one")


class ComplaintOut(Response):
    id: UUID
    institution_id: UUID
    contract_id: UUID | None
    category: ComplaintCategory
    body: str
    status: ComplaintStatus = Field(description="submitted, assigned (a regulator handles it), answered, closed")
    assigned_to: UUID | None = Field(description="the regulator (a user id) who handles it")
    submitted_at: datetime
    updated_at: datetime
    closed_at: datetime | None


class ComplaintMessageOut(Response):
    id: UUID
    author_role: Author
    author: str
    body: str
    created_at: datetime


class ComplaintDetailOut(ComplaintOut):
    institution_name: str
    guardian_phone: str = Field(description="masked unless it is yours or you are a regulator")
    assignee_name: str | None
    messages: list[ComplaintMessageOut]


class AssignmentIn(Request):
    model_config = example(assignee_id="01a23372-29f0-70ed-bbae-4642549dfce8")

    assignee_id: UUID = Field(description="a regulator user of the institution's jurisdiction")


class ComplaintReplyIn(Request):
    model_config = example(body="We called the institution: it will answer your refund request by Friday.")

    body: Text


class ComplaintClosureIn(Request):
    model_config = example(note="The refund was approved and paid on 12 March; closed.")

    note: Text


class EvaluationIn(Request):
    model_config = example(stars=5, comment="The teacher explained fractions patiently.")

    stars: Annotated[StrictInt, Field(ge=1, le=5), WHOLE]
    comment: Comment | None = None


class EvaluationOut(Response):
    id: UUID
    institution_id: UUID
    class_id: UUID
    contract_id: UUID
    stars: int
    comment: str | None
    created_at: datetime


class EvaluationSummaryOut(BaseModel):
    count: int
    average_stars: float | None = Field(description="the mean of the stars, to two decimals; null with none")
    by_stars: dict[str, int] = Field(description="how many evaluations gave each number of stars, '1' to '5'")


class EvaluationsOut(BaseModel):
    summary: EvaluationSummaryOut
    items: list[EvaluationOut]
    next_cursor: str | None = Field(description="pass as `cursor` for the next page; null on the last page")


class RefundPreviewOut(BaseModel):
    institution_id: UUID
    contract_id: UUID
    held_fen: int = Field(description="held for the family under the contract now")
    refundable_fen: int = Field(description="what a refund request approved now would pay back")
    reserved_fen: int = Field(description="held, but worth the classes still waiting for the family's word")
    waiting_hours: int = Field(description="hours recorded and not yet confirmed (pending or disputed)")
    can_request: bool = Field(description="false when the contract has ended or a request is already open")
    open_request_id: UUID | None
