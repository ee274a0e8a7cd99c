"""Complaints about institutions, their threads and handling; evaluations of classes; a refund previewed."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Request, Response

from api.auth import Now
from api.deps import ApiRoute, CallerDep, SessionDep
from api.family_schemas import (
    AssignmentIn,
    ComplaintClosureIn,
    ComplaintDetailOut,
    ComplaintIn,
    ComplaintMessageOut,
    ComplaintOut,
    ComplaintReplyIn,
    EvaluationIn,
    EvaluationOut,
    EvaluationsOut,
    EvaluationSummaryOut,
    RefundPreviewOut,
)
from api.routers import documented, mark_replayed
from api.routers.contracts import CONTRACT
from api.routers.institutions import Cursor, Limit
from api.schemas import PageOf
from escrow.access.messages import MessageSender
from escrow.db.paging import DEFAULT_LIMIT
from escrow.families import complaints, evaluations, refunds
from escrow.families.complaints import ComplaintView
from escrow.rules.families import ComplaintCategory
from escrow.rules.states import ComplaintStatus

router = APIRouter(tags=["complaints and evaluations"], route_class=ApiRoute)
COMPLAINT = "/institutions/{institution_id}/complaints/{complaint_id}"


async def message_sender(request: Request) -> MessageSender:
    """The app's messages backend (the settings' choice)."""
    sender: MessageSender = request.app.state.messages
    return sender


SenderDep = Annotated[MessageSender, Depends(message_sender)]


def detail_out(view: ComplaintView) -> ComplaintDetailOut:
    return ComplaintDetailOut.model_validate(
        {
            **ComplaintOut.model_validate(view.complaint).model_dump(),
            "institution_name": view.institution_name,
            "guardian_phone": view.guardian_phone,
            "assignee_name": view.assignee_name,
            "messages": [ComplaintMessageOut.model_validate(m) for m in view.messages],
        }
    )


@router.post(
    "/institutions/{institution_id}/complaints",
    status_code=201,
    operation_id="submit_complaint",
    responses=documented(403, 404),
)
def submit_complaint(
    institution_id: UUID, body: ComplaintIn, session: SessionDep, caller: CallerDep, now: Now
) -> ComplaintOut:
    """A parent complains to the regulator about an institution they have a contract with."""
    row = complaints.submit_complaint(
        session,
        caller=caller,
        institution_id=institution_id,
        category=body.category,
        body=body.body,
        contract_id=body.contract_id,
        now=now,
    )
    return ComplaintOut.model_validate(row)


@router.get("/complaints", operation_id="list_complaints", responses=documented(403))
def list_complaints(
    session: SessionDep,
    caller: CallerDep,
    institution_id: Annotated[UUID | None, Query()] = None,
    status: Annotated[ComplaintStatus | None, Query()] = None,
    category: Annotated[ComplaintCategory | None, Query()] = None,
    cursor: Cursor = None,
    limit: Limit = DEFAULT_LIMIT,
) -> PageOf[ComplaintOut]:
    """Complaints in your scope: a parent's own, those about an institution, or about your jurisdictions'."""
    page = complaints.list_complaints(
        session,
        caller=caller,
        institution_id=institution_id,
        status=status,
        category=category,
        cursor=cursor,
        limit=limit,
    )
    return PageOf(items=[ComplaintOut.model_validate(c) for c in page.items], next_cursor=page.next_cursor)


@router.get(COMPLAINT, operation_id="get_complaint", responses=documented(403, 404))
def get_complaint(
    institution_id: UUID, complaint_id: UUID, session: SessionDep, caller: CallerDep
) -> ComplaintDetailOut:
    """A complaint with its whole thread."""
    return detail_out(
        complaints.get_complaint(session, caller=caller, institution_id=institution_id, complaint_id=complaint_id)
    )


@router.post(COMPLAINT + "/assignment", operation_id="assign_complaint", responses=documented(403, 404, 409))
def assign_complaint(
    institution_id: UUID, complaint_id: UUID, body: AssignmentIn, session: SessionDep, caller: CallerDep, now: Now
) -> ComplaintOut:
    """A regulator gives the complaint to a regulator of the institution's jurisdiction to handle."""
    row = complaints.assign_complaint(
        session,
        caller=caller,
        institution_id=institution_id,
        complaint_id=complaint_id,
        assignee_id=body.assignee_id,
        now=now,
    )
    return ComplaintOut.model_validate(row)


@router.post(
    COMPLAINT + "/messages",
    status_code=201,
    operation_id="reply_to_complaint",
    responses=documented(403, 404, 409),
)
def reply_to_complaint(
    institution_id: UUID,
    complaint_id: UUID,
    body: ComplaintReplyIn,
    session: SessionDep,
    caller: CallerDep,
    sender: SenderDep,
    now: Now,
) -> ComplaintMessageOut:
    """A message in the thread: the institution's or regulator's answer (sent to the family), or the parent's."""
    row = complaints.reply_to_complaint(
        session,
        caller=caller,
        institution_id=institution_id,
        complaint_id=complaint_id,
        body=body.body,
        sender=sender,
        now=now,
    )
    return ComplaintMessageOut.model_validate(row)


@router.post(COMPLAINT + "/closure", operation_id="close_complaint", responses=documented(403, 404, 409))
def close_complaint(
    institution_id: UUID,
    complaint_id: UUID,
    body: ComplaintClosureIn,
    session: SessionDep,
    caller: CallerDep,
    sender: SenderDep,
    now: Now,
) -> ComplaintMessageOut:
    """The regulator closes the complaint with a note the family reads."""
    row = complaints.close_complaint(
        session,
        caller=caller,
        institution_id=institution_id,
        complaint_id=complaint_id,
        note_text=body.note,
        sender=sender,
        now=now,
    )
    return ComplaintMessageOut.model_validate(row)


@router.post(
    "/institutions/{institution_id}/classes/{class_id}/evaluation",
    status_code=201,
    operation_id="evaluate_class",
    responses=documented(403, 404, 409),
)
def evaluate_class(
    institution_id: UUID,
    class_id: UUID,
    body: EvaluationIn,
    session: SessionDep,
    caller: CallerDep,
    now: Now,
    response: Response,
) -> EvaluationOut:
    """The parent gives a confirmed class 1 to 5 stars and a comment, once (the same again is a replay)."""
    row, replayed = evaluations.evaluate_class(
        session,
        caller=caller,
        institution_id=institution_id,
        class_id=class_id,
        stars=body.stars,
        comment=body.comment,
        now=now,
    )
    mark_replayed(response, replayed)
    return EvaluationOut.model_validate(row)


@router.get(
    "/institutions/{institution_id}/evaluations", operation_id="list_evaluations", responses=documented(403, 404)
)
def list_evaluations(
    institution_id: UUID, session: SessionDep, caller: CallerDep, cursor: Cursor = None, limit: Limit = DEFAULT_LIMIT
) -> EvaluationsOut:
    """How families rated an institution's classes: the average and counts, and the evaluations a page at a time."""
    summary = evaluations.evaluation_summary(session, caller=caller, institution_id=institution_id)
    page = evaluations.list_evaluations(
        session, caller=caller, institution_id=institution_id, cursor=cursor, limit=limit
    )
    average = summary.average
    return EvaluationsOut(
        summary=EvaluationSummaryOut(
            count=summary.count,
            average_stars=None if average is None else round(float(average), 2),
            by_stars={str(k): v for k, v in summary.by_stars.items()},
        ),
        items=[EvaluationOut.model_validate(e) for e in page.items],
        next_cursor=page.next_cursor,
    )


@router.get(CONTRACT + "/refund-preview", operation_id="preview_refund", responses=documented(404))
def preview_refund(institution_id: UUID, contract_id: UUID, session: SessionDep, caller: CallerDep) -> RefundPreviewOut:
    """What a refund request approved now would pay back; changes nothing."""
    preview = refunds.preview_refund(session, caller=caller, institution_id=institution_id, contract_id=contract_id)
    return RefundPreviewOut(
        institution_id=preview.institution_id,
        contract_id=preview.contract_id,
        held_fen=preview.held_fen,
        refundable_fen=preview.refundable_fen,
        reserved_fen=preview.reserved_fen,
        waiting_hours=preview.waiting_hours,
        can_request=preview.can_request,
        open_request_id=preview.open_request.id if preview.open_request else None,
    )
