"""Complaints (投诉): a family complains to the regulator about an institution it has a contract with; a
regulator takes it up (assigned), the institution's staff and the regulator answer in its thread, the family
follows up, and the regulator closes it with a note the family reads. Each answer and the closing are sent
to the family's phone.

Scope: a family sees the complaints made from its phone, an institution those about it, a regulator those
about the institutions of its jurisdictions; anything else is not found.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from sqlalchemy import ColumnElement, Select, any_, false, literal, select
from sqlalchemy.orm import Session

from escrow.access.audit import note
from escrow.access.callers import Caller, Role, institution_scope, require_role, sees_personal_data
from escrow.access.messages import Message, MessageSender
from escrow.db.family_records import Complaint, ComplaintMessage
from escrow.db.paging import Page, keyset
from escrow.db.records import AppUser, Institution
from escrow.errors import InvalidRequest, NotFound
from escrow.ids import new_id
from escrow.registry.contracts import visible_contract
from escrow.registry.institutions import visible_institution
from escrow.rules import states
from escrow.rules.families import MAX_COMPLAINT_CHARS, Author, ComplaintCategory, MessageKind, text_problem
from escrow.rules.identity import mask_phone
from escrow.rules.states import ComplaintStatus

AUTHOR_OF = {Role.PARENT: Author.PARENT, Role.INSTITUTION: Author.INSTITUTION, Role.REGULATOR: Author.REGULATOR}


@dataclass(frozen=True, slots=True)
class ComplaintView:
    """A complaint with its thread, as one caller may see it: the family's phone masked unless it is theirs
    or a regulator's."""

    complaint: Complaint
    institution_name: str
    guardian_phone: str
    messages: list[ComplaintMessage]
    assignee_name: str | None


def complaint_scope(caller: Caller) -> ColumnElement[bool]:
    """The complaints the caller may see."""
    match caller.role:
        case Role.PARENT:
            return Complaint.guardian_phone == caller.guardian_phone
        case Role.INSTITUTION:
            return Complaint.institution_id == caller.institution_id
        case Role.REGULATOR:
            return Complaint.institution_id.in_(select(Institution.id).where(institution_scope(caller)))
    return false()


def _checked(body: str, field: str = "body") -> str:
    problem = text_problem(body, limit=MAX_COMPLAINT_CHARS, what="text")
    if problem:
        raise InvalidRequest(problem, field=field, reason="empty" if not body.strip() else "too_long")
    return body.strip()


def submit_complaint(
    session: Session,
    *,
    caller: Caller,
    institution_id: UUID,
    category: ComplaintCategory,
    body: str,
    contract_id: UUID | None,
    now: datetime,
) -> Complaint:
    """A family complains about an institution it has a contract with (about one contract, if named)."""
    require_role(caller, Role.PARENT)
    visible_institution(session, caller, institution_id)
    if contract_id is not None:
        visible_contract(session, caller, institution_id, contract_id)
    row = Complaint(
        institution_id=institution_id,
        id=new_id(),
        guardian_phone=caller.guardian_phone,
        contract_id=contract_id,
        category=ComplaintCategory(category),
        body=_checked(body),
        status=ComplaintStatus.SUBMITTED,
        submitted_at=now,
        updated_at=now,
    )
    session.add(row)
    session.flush()
    note(session, caller, "complaint.submitted", institution_id=institution_id, object_type="complaint",
         object_id=row.id, at=now, after={"category": row.category, "contract_id": contract_id})  # fmt: skip
    return row


def _filtered(
    caller: Caller, *, institution_id: UUID | None, status: ComplaintStatus | None, category: ComplaintCategory | None
) -> Select[Complaint]:
    require_role(caller, Role.PARENT, Role.INSTITUTION, Role.REGULATOR)
    query = select(Complaint).where(complaint_scope(caller))
    if institution_id is not None:
        query = query.where(Complaint.institution_id == institution_id)
    if status is not None:
        query = query.where(Complaint.status == status)
    if category is not None:
        query = query.where(Complaint.category == category)
    return query


def list_complaints(
    session: Session,
    *,
    caller: Caller,
    institution_id: UUID | None = None,
    status: ComplaintStatus | None = None,
    category: ComplaintCategory | None = None,
    cursor: str | None = None,
    limit: int = 50,
) -> Page[Complaint]:
    """The complaints in the caller's scope, oldest first, a page at a time (filters narrow, never widen)."""
    query = _filtered(caller, institution_id=institution_id, status=status, category=category)
    return keyset(session, query, Complaint.id, cursor=cursor, limit=limit)


def recent_complaints(
    session: Session,
    *,
    caller: Caller,
    institution_id: UUID | None = None,
    status: ComplaintStatus | None = None,
    category: ComplaintCategory | None = None,
    limit: int = 100,
) -> list[tuple[Complaint, str]]:
    """The newest complaints in the caller's scope, each with its institution's name (for pages)."""
    query = _filtered(caller, institution_id=institution_id, status=status, category=category)
    named = query.add_columns(Institution.name).join(Institution, Institution.id == Complaint.institution_id)
    rows = session.execute(named.order_by(Complaint.submitted_at.desc(), Complaint.id.desc()).limit(limit))
    return [(complaint, name) for complaint, name in rows.all()]


def _visible(session: Session, caller: Caller, institution_id: UUID, complaint_id: UUID, *, lock: bool) -> Complaint:
    query = select(Complaint).where(
        Complaint.institution_id == institution_id, Complaint.id == complaint_id, complaint_scope(caller)
    )
    row = session.scalars(query.with_for_update() if lock else query).one_or_none()
    if row is None:
        raise NotFound(f"complaint {complaint_id} does not exist or is outside your scope")
    return row


def get_complaint(session: Session, *, caller: Caller, institution_id: UUID, complaint_id: UUID) -> ComplaintView:
    require_role(caller, Role.PARENT, Role.INSTITUTION, Role.REGULATOR)
    row = _visible(session, caller, institution_id, complaint_id, lock=False)
    messages = session.scalars(
        select(ComplaintMessage)
        .where(ComplaintMessage.institution_id == institution_id, ComplaintMessage.complaint_id == complaint_id)
        .order_by(ComplaintMessage.created_at, ComplaintMessage.id)
    ).all()
    assignee = session.get(AppUser, row.assigned_to) if row.assigned_to else None
    phone = row.guardian_phone if sees_personal_data(caller, row.guardian_phone) else mask_phone(row.guardian_phone)
    name = session.get_one(Institution, institution_id).name
    return ComplaintView(row, name, phone, list(messages), assignee.name if assignee else None)


def assignable_regulators(session: Session, *, caller: Caller, institution_id: UUID) -> list[AppUser]:
    """The regulators who may take up a complaint about this institution: those of its jurisdiction."""
    require_role(caller, Role.REGULATOR)
    institution = visible_institution(session, caller, institution_id)
    query = select(AppUser).where(
        AppUser.role == Role.REGULATOR.value, literal(institution.jurisdiction_code) == any_(AppUser.jurisdiction_codes)
    )
    return list(session.scalars(query.order_by(AppUser.name)))


def assign_complaint(
    session: Session, *, caller: Caller, institution_id: UUID, complaint_id: UUID, assignee_id: UUID, now: datetime
) -> Complaint:
    """A regulator gives the complaint to a regulator of the institution's jurisdiction (themselves, or another)."""
    require_role(caller, Role.REGULATOR)
    row = _visible(session, caller, institution_id, complaint_id, lock=True)
    if assignee_id not in {u.id for u in assignable_regulators(session, caller=caller, institution_id=institution_id)}:
        raise InvalidRequest(
            f"user {assignee_id} is not a regulator of this institution's jurisdiction",
            field="assignee_id",
            reason="assignee",
        )
    before = row.status
    row.status = states.move("complaint", states.COMPLAINT, row.status, "assign")
    row.assigned_to, row.assigned_at, row.updated_at = assignee_id, now, now
    session.flush()
    after = {"status": row.status, "assignee": assignee_id}
    note(session, caller, "complaint.assigned", institution_id=institution_id, object_type="complaint",
         object_id=row.id, at=now, before={"status": before}, after=after)  # fmt: skip
    return row


def reply_to_complaint(
    session: Session,
    *,
    caller: Caller,
    institution_id: UUID,
    complaint_id: UUID,
    body: str,
    sender: MessageSender,
    now: datetime,
) -> ComplaintMessage:
    """A message in the complaint's thread: the institution's or the regulator's answer (sent to the family's
    phone), or the family's follow-up."""
    require_role(caller, Role.PARENT, Role.INSTITUTION, Role.REGULATOR)
    row = _visible(session, caller, institution_id, complaint_id, lock=True)
    event = "follow_up" if caller.role is Role.PARENT else "answer"
    return _add_message(session, caller, row, _checked(body), event, sender, now)


def close_complaint(
    session: Session,
    *,
    caller: Caller,
    institution_id: UUID,
    complaint_id: UUID,
    note_text: str,
    sender: MessageSender,
    now: datetime,
) -> ComplaintMessage:
    """The regulator closes the complaint with a note the family reads (the last message of its thread)."""
    require_role(caller, Role.REGULATOR)
    row = _visible(session, caller, institution_id, complaint_id, lock=True)
    return _add_message(session, caller, row, _checked(note_text, "note"), "close", sender, now)


def _author(caller: Caller) -> str:
    """Who wrote a message, as the thread shows it to everyone in it: a family by its masked phone."""
    if caller.role is Role.PARENT and caller.guardian_phone:
        return f"parent:{mask_phone(caller.guardian_phone)}"
    return caller.acting


def _add_message(
    session: Session, caller: Caller, row: Complaint, body: str, event: str, sender: MessageSender, now: datetime
) -> ComplaintMessage:
    before = row.status
    row.status = states.move("complaint", states.COMPLAINT, row.status, event)
    row.updated_at = now
    if row.status is ComplaintStatus.CLOSED:
        row.closed_at = now
    message = ComplaintMessage(
        institution_id=row.institution_id,
        id=new_id(),
        complaint_id=row.id,
        author_role=AUTHOR_OF[caller.role],
        author=_author(caller),
        body=body,
        created_at=now,
    )
    session.add(message)
    session.flush()
    if caller.role is not Role.PARENT:
        name = session.get_one(Institution, row.institution_id).name
        said = "已办结" if event == "close" else "有了新的回复"
        text = f"【预付费监管】您对「{name}」的投诉{said}，请登录家长端查看。"
        sender.send(session, Message(row.guardian_phone, MessageKind.COMPLAINT_ANSWERED, text, row.institution_id),
                    now=now)  # fmt: skip
    action = {"close": "complaint.closed", "answer": "complaint.answered", "follow_up": "complaint.followed_up"}
    after = {"status": row.status, "message": message.id}
    note(session, caller, action[event], institution_id=row.institution_id, object_type="complaint",
         object_id=row.id, at=now, before={"status": before}, after=after)  # fmt: skip
    return message
