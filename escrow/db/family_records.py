"""ORM records of the parent's face (made by migrations/versions/0017_parents_complaints.py): sign-in codes,
parent sessions, the messages sent to people, complaints with their threads, and evaluations."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from sqlalchemy import SmallInteger, Text
from sqlalchemy.orm import Mapped, mapped_column

from escrow.db.orm import Base, text_enum
from escrow.rules.families import Author, CodeOutcome, ComplaintCategory, MessageKind, SenderKind
from escrow.rules.states import ComplaintStatus


class SignInCode(Base):
    __tablename__ = "sign_in_code"

    id: Mapped[UUID] = mapped_column(primary_key=True)
    phone: Mapped[str] = mapped_column(Text)
    code_hash: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    attempts: Mapped[int] = mapped_column(server_default="0")
    ended_at: Mapped[datetime | None]
    outcome: Mapped[CodeOutcome | None] = mapped_column(text_enum(CodeOutcome))


class ParentSession(Base):
    __tablename__ = "parent_session"

    id: Mapped[UUID] = mapped_column(primary_key=True)
    secret_hash: Mapped[str] = mapped_column(Text)
    phone: Mapped[str] = mapped_column(Text)
    csrf_token: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    ended_at: Mapped[datetime | None]


class OutboxMessage(Base):
    __tablename__ = "outbox_message"

    id: Mapped[UUID] = mapped_column(primary_key=True)
    recipient: Mapped[str] = mapped_column(Text)
    kind: Mapped[MessageKind] = mapped_column(text_enum(MessageKind))
    body: Mapped[str] = mapped_column(Text)
    institution_id: Mapped[UUID | None]
    dedupe_key: Mapped[str | None] = mapped_column(Text)
    sent_by: Mapped[SenderKind] = mapped_column(text_enum(SenderKind))
    created_at: Mapped[datetime]


class Complaint(Base):
    __tablename__ = "complaint"

    institution_id: Mapped[UUID] = mapped_column(primary_key=True)
    id: Mapped[UUID] = mapped_column(primary_key=True)
    guardian_phone: Mapped[str] = mapped_column(Text)
    contract_id: Mapped[UUID | None]
    category: Mapped[ComplaintCategory] = mapped_column(text_enum(ComplaintCategory))
    body: Mapped[str] = mapped_column(Text)
    status: Mapped[ComplaintStatus] = mapped_column(text_enum(ComplaintStatus), server_default="submitted")
    assigned_to: Mapped[UUID | None]
    assigned_at: Mapped[datetime | None]
    submitted_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    closed_at: Mapped[datetime | None]


class ComplaintMessage(Base):
    __tablename__ = "complaint_message"

    institution_id: Mapped[UUID] = mapped_column(primary_key=True)
    id: Mapped[UUID] = mapped_column(primary_key=True)
    complaint_id: Mapped[UUID]
    author_role: Mapped[Author] = mapped_column(text_enum(Author))
    author: Mapped[str] = mapped_column(Text)
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime]


class Evaluation(Base):
    __tablename__ = "evaluation"

    institution_id: Mapped[UUID] = mapped_column(primary_key=True)
    id: Mapped[UUID] = mapped_column(primary_key=True)
    class_id: Mapped[UUID]
    contract_id: Mapped[UUID]
    guardian_phone: Mapped[str] = mapped_column(Text)
    stars: Mapped[int] = mapped_column(SmallInteger)
    comment: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
