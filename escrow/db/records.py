"""ORM records of the product tables (made by migrations/versions/0002_product.py)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any
from uuid import UUID

from sqlalchemy import ARRAY, BigInteger, Integer, Text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from escrow.db.orm import Base, text_enum
from escrow.rules.states import (
    ClassStatus,
    ConfirmedHow,
    ContractStatus,
    InstitutionStatus,
    PayoutKind,
    PayoutStatus,
    RefundStatus,
)


class Jurisdiction(Base):
    __tablename__ = "jurisdiction"

    code: Mapped[str] = mapped_column(Text, primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    time_zone: Mapped[str] = mapped_column(Text, server_default="Asia/Shanghai")
    created_at: Mapped[datetime] = mapped_column(server_default="now()")


class OfficialCalendarYear(Base):
    __tablename__ = "official_calendar_year"

    year: Mapped[int] = mapped_column(primary_key=True)
    source: Mapped[str] = mapped_column(Text)
    loaded_by: Mapped[str] = mapped_column(Text)
    loaded_at: Mapped[datetime] = mapped_column(server_default="now()")


class OfficialCalendarDay(Base):
    __tablename__ = "official_calendar_day"

    day: Mapped[date] = mapped_column(primary_key=True)
    year: Mapped[int]
    kind: Mapped[str] = mapped_column(Text)
    name: Mapped[str] = mapped_column(Text, server_default="")


class PolicyVersion(Base):
    __tablename__ = "policy_version"

    jurisdiction_code: Mapped[str] = mapped_column(Text, primary_key=True)
    effective_date: Mapped[date] = mapped_column(primary_key=True)
    max_months: Mapped[int]
    max_hours: Mapped[int]
    max_non_subject_fen: Mapped[int] = mapped_column(BigInteger)
    guide_price_margin_bp: Mapped[int]
    confirm_after_working_days: Mapped[int]
    refund_response_working_days: Mapped[int]
    max_class_backdate_days: Mapped[int] = mapped_column(server_default="7")
    max_term_start_past_days: Mapped[int] = mapped_column(server_default="30")
    release_cadence: Mapped[str] = mapped_column(Text)
    release_tranches_pct: Mapped[list[int]] = mapped_column(ARRAY(Integer))
    default_supervision_model: Mapped[str] = mapped_column(Text)
    alert_thresholds: Mapped[dict[str, Any]] = mapped_column(JSONB)
    created_by: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(server_default="now()")


class Institution(Base):
    __tablename__ = "institution"

    id: Mapped[UUID] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    credit_code: Mapped[str] = mapped_column(Text)
    jurisdiction_code: Mapped[str] = mapped_column(Text)
    supervision_model: Mapped[str] = mapped_column(Text)
    custody_bank: Mapped[str] = mapped_column(Text)
    custody_account: Mapped[str] = mapped_column(Text)
    status: Mapped[InstitutionStatus] = mapped_column(text_enum(InstitutionStatus), server_default="active")
    created_at: Mapped[datetime] = mapped_column(server_default="now()")


class Course(Base):
    __tablename__ = "course"

    institution_id: Mapped[UUID] = mapped_column(primary_key=True)
    id: Mapped[UUID] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    category: Mapped[str] = mapped_column(Text)
    unit_price_fen: Mapped[int] = mapped_column(BigInteger)
    guide_price_fen: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(server_default="now()")


class Guardian(Base):
    """A family as one institution knows it: each institution keeps its own (migration 0014)."""

    __tablename__ = "guardian"

    id: Mapped[UUID] = mapped_column(primary_key=True)
    institution_id: Mapped[UUID]
    phone: Mapped[str] = mapped_column(Text)
    name: Mapped[str] = mapped_column(Text)
    id_number: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(server_default="now()")


class Contract(Base):
    __tablename__ = "contract"

    institution_id: Mapped[UUID] = mapped_column(primary_key=True)
    id: Mapped[UUID] = mapped_column(primary_key=True)
    course_id: Mapped[UUID]
    guardian_id: Mapped[UUID]
    student_name: Mapped[str] = mapped_column(Text)
    hours_bought: Mapped[int]
    bonus_hours: Mapped[int]
    unit_price_fen: Mapped[int] = mapped_column(BigInteger)
    price_fen: Mapped[int] = mapped_column(BigInteger)
    term_start: Mapped[date]
    term_end: Mapped[date]
    policy_jurisdiction: Mapped[str] = mapped_column(Text)
    policy_effective_date: Mapped[date | None]
    prepaid_account_id: Mapped[UUID]
    signed_at: Mapped[datetime] = mapped_column(server_default="now()")
    status: Mapped[ContractStatus] = mapped_column(text_enum(ContractStatus), server_default="active")


class Collection(Base):
    __tablename__ = "collection"

    institution_id: Mapped[UUID] = mapped_column(primary_key=True)
    id: Mapped[UUID] = mapped_column(primary_key=True)
    contract_id: Mapped[UUID]
    amount_fen: Mapped[int] = mapped_column(BigInteger)
    bank_reference: Mapped[str] = mapped_column(Text)
    collected_at: Mapped[datetime]
    transaction_id: Mapped[UUID]
    created_at: Mapped[datetime] = mapped_column(server_default="now()")


class ApiToken(Base):
    __tablename__ = "api_token"

    id: Mapped[UUID] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(Text)
    role: Mapped[str] = mapped_column(Text)
    jurisdiction_codes: Mapped[list[str]] = mapped_column(ARRAY(Text), server_default="{}")
    institution_id: Mapped[UUID | None]
    guardian_phone: Mapped[str | None] = mapped_column(Text)
    bank_code: Mapped[str | None] = mapped_column(Text)
    label: Mapped[str] = mapped_column(Text, server_default="")
    created_at: Mapped[datetime] = mapped_column(server_default="now()")
    expires_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]


class ClassRecord(Base):
    __tablename__ = "class_record"

    institution_id: Mapped[UUID] = mapped_column(primary_key=True)
    id: Mapped[UUID] = mapped_column(primary_key=True)
    contract_id: Mapped[UUID]
    hours: Mapped[int]
    given_on: Mapped[date]
    status: Mapped[ClassStatus] = mapped_column(text_enum(ClassStatus), server_default="pending")
    confirmed_how: Mapped[ConfirmedHow | None] = mapped_column(text_enum(ConfirmedHow))
    confirm_by: Mapped[date]
    amount_fen: Mapped[int | None] = mapped_column(BigInteger)
    release_transaction_id: Mapped[UUID | None]
    payout_id: Mapped[UUID | None]
    dispute_reason: Mapped[str | None] = mapped_column(Text)
    resolution_note: Mapped[str | None] = mapped_column(Text)
    recorded_at: Mapped[datetime] = mapped_column(server_default="now()")
    decided_at: Mapped[datetime | None]


class RefundRequest(Base):
    __tablename__ = "refund_request"

    institution_id: Mapped[UUID] = mapped_column(primary_key=True)
    id: Mapped[UUID] = mapped_column(primary_key=True)
    contract_id: Mapped[UUID]
    reason: Mapped[str] = mapped_column(Text)
    status: Mapped[RefundStatus] = mapped_column(text_enum(RefundStatus), server_default="open")
    respond_by: Mapped[date]
    amount_fen: Mapped[int | None] = mapped_column(BigInteger)
    decision_reason: Mapped[str | None] = mapped_column(Text)
    decided_by: Mapped[str | None] = mapped_column(Text)
    requested_at: Mapped[datetime] = mapped_column(server_default="now()")
    decided_at: Mapped[datetime | None]
    transaction_id: Mapped[UUID | None]


class Payout(Base):
    __tablename__ = "payout"

    institution_id: Mapped[UUID] = mapped_column(primary_key=True)
    id: Mapped[UUID] = mapped_column(primary_key=True)
    kind: Mapped[PayoutKind] = mapped_column(text_enum(PayoutKind))
    contract_id: Mapped[UUID | None]
    amount_fen: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[PayoutStatus] = mapped_column(text_enum(PayoutStatus), server_default="instructed")
    instructed_at: Mapped[datetime]
    settled_at: Mapped[datetime | None]
    bank_reference: Mapped[str | None] = mapped_column(Text)
    failure_reason: Mapped[str | None] = mapped_column(Text)
    instruct_transaction_id: Mapped[UUID | None]
    settle_transaction_id: Mapped[UUID | None]


class Hold(Base):
    __tablename__ = "hold"

    institution_id: Mapped[UUID] = mapped_column(primary_key=True)
    id: Mapped[UUID] = mapped_column(primary_key=True)
    reason: Mapped[str] = mapped_column(Text)
    placed_by: Mapped[str] = mapped_column(Text)
    placed_at: Mapped[datetime]
    lifted_at: Mapped[datetime | None]
    lifted_by: Mapped[str | None] = mapped_column(Text)
    lift_reason: Mapped[str | None] = mapped_column(Text)


class BankStatement(Base):
    """One custody account's statement for one day, as the bank delivered it (migration 0006)."""

    __tablename__ = "bank_statement"

    institution_id: Mapped[UUID] = mapped_column(primary_key=True)
    id: Mapped[UUID] = mapped_column(primary_key=True)
    statement_date: Mapped[date]
    account: Mapped[str] = mapped_column(Text)
    currency: Mapped[str] = mapped_column(Text)
    opening_fen: Mapped[int] = mapped_column(BigInteger)
    closing_fen: Mapped[int] = mapped_column(BigInteger)
    line_count: Mapped[int]
    content_hash: Mapped[str] = mapped_column(Text)
    source_format: Mapped[str] = mapped_column(Text)
    imported_by: Mapped[str] = mapped_column(Text)
    imported_at: Mapped[datetime]
    reconciled_at: Mapped[datetime | None]
    ledger_closing_fen: Mapped[int | None] = mapped_column(BigInteger)
    family_owed_fen: Mapped[int | None] = mapped_column(BigInteger)
    unmatched_ledger: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, server_default="[]")


class StatementLineRecord(Base):
    __tablename__ = "statement_line"

    institution_id: Mapped[UUID] = mapped_column(primary_key=True)
    id: Mapped[UUID] = mapped_column(primary_key=True)
    statement_id: Mapped[UUID]
    position: Mapped[int]
    value_date: Mapped[date]
    amount_fen: Mapped[int] = mapped_column(BigInteger)
    reference: Mapped[str] = mapped_column(Text)
    counterparty: Mapped[str] = mapped_column(Text)
    memo: Mapped[str] = mapped_column(Text)


class AppUser(Base):
    """A person who signs in to the console (migrations/versions/0016_console.py)."""

    __tablename__ = "app_user"

    id: Mapped[UUID] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    role: Mapped[str] = mapped_column(Text)
    jurisdiction_codes: Mapped[list[str]] = mapped_column(ARRAY(Text), server_default="{}")
    institution_id: Mapped[UUID | None]
    password_hash: Mapped[str] = mapped_column(Text)
    created_by: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(server_default="now()")
    password_changed_at: Mapped[datetime | None]


class WebSession(Base):
    __tablename__ = "web_session"

    secret_hash: Mapped[str] = mapped_column(Text, primary_key=True)
    user_id: Mapped[UUID]
    csrf_token: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    ended_at: Mapped[datetime | None]


class DailyFigure(Base):
    __tablename__ = "daily_figure"

    institution_id: Mapped[UUID] = mapped_column(primary_key=True)
    business_date: Mapped[date] = mapped_column(primary_key=True)
    held_fen: Mapped[int] = mapped_column(BigInteger)
    collected_fen: Mapped[int] = mapped_column(BigInteger)
    released_fen: Mapped[int] = mapped_column(BigInteger)
    refunded_fen: Mapped[int] = mapped_column(BigInteger)
    aged_0_30_fen: Mapped[int] = mapped_column(BigInteger)
    aged_31_90_fen: Mapped[int] = mapped_column(BigInteger)
    aged_over_90_fen: Mapped[int] = mapped_column(BigInteger)
    computed_at: Mapped[datetime]
