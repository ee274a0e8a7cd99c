"""ORM records of the ledger tables (made by migrations/versions/0001_ledger.py; account kinds by 0013)."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import BigInteger, Identity, Text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from escrow.db.orm import Base, text_enum
from escrow.ledger.model import AccountKind


class Account(Base):
    __tablename__ = "account"

    institution_id: Mapped[UUID] = mapped_column(primary_key=True)
    id: Mapped[UUID] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(Text)
    kind: Mapped[AccountKind] = mapped_column(text_enum(AccountKind))
    contract_id: Mapped[UUID | None]
    normal_side: Mapped[str] = mapped_column(Text)
    currency: Mapped[str] = mapped_column(Text)
    allow_negative: Mapped[bool]
    balance: Mapped[int] = mapped_column(BigInteger, server_default="0")
    version: Mapped[int] = mapped_column(BigInteger, server_default="0")
    created_at: Mapped[datetime] = mapped_column(server_default="now()")


class JournalTransaction(Base):
    __tablename__ = "journal_transaction"

    institution_id: Mapped[UUID] = mapped_column(primary_key=True)
    id: Mapped[UUID] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(Text)
    effective_at: Mapped[datetime]
    created_at: Mapped[datetime] = mapped_column(server_default="now()")
    reverses_id: Mapped[UUID | None]
    reversal_reason: Mapped[str | None] = mapped_column(Text)
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", JSONB, server_default="{}")


class Posting(Base):
    __tablename__ = "posting"

    institution_id: Mapped[UUID] = mapped_column(primary_key=True)
    id: Mapped[int] = mapped_column(BigInteger, Identity(always=True), primary_key=True)
    transaction_id: Mapped[UUID]
    account_id: Mapped[UUID]
    currency: Mapped[str] = mapped_column(Text)
    amount: Mapped[int] = mapped_column(BigInteger)


class IdempotencyRecord(Base):
    __tablename__ = "idempotency_record"

    institution_id: Mapped[UUID] = mapped_column(primary_key=True)
    caller: Mapped[str] = mapped_column(Text, primary_key=True)
    key: Mapped[str] = mapped_column(Text, primary_key=True)
    request_hash: Mapped[str] = mapped_column(Text)
    transaction_id: Mapped[UUID | None]
    result: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    created_at: Mapped[datetime] = mapped_column(server_default="now()")
