"""Idempotency keys: the same key and request give the first result; a different request is refused.

A key is claimed in the same database transaction as the effect it guards, so the key and the
postings commit or vanish together. Concurrent requests with one key queue on the key's row.
Keys are scoped to a caller within one institution's books (which keeps the table distributable).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar, cast
from uuid import UUID

from sqlalchemy import Table, bindparam, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from escrow.errors import IdempotencyConflict, InvalidRequest
from escrow.ledger.records import IdempotencyRecord

T = TypeVar("T")
_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")

# Built once: every money-moving request runs both, and building a statement costs more than running it
_RECORD = cast(Table, IdempotencyRecord.__table__)
_CLAIM = (
    insert(_RECORD)
    .values(
        institution_id=bindparam("p_institution_id"),
        caller=bindparam("p_caller"),
        key=bindparam("p_key"),
        request_hash=bindparam("p_request_hash"),
    )
    .on_conflict_do_nothing()
    .returning(_RECORD.c.key)
)


@dataclass(frozen=True, slots=True)
class IdempotencyKey:
    """Who is asking (a token, a job) and the key they chose for this one request."""

    caller: str
    key: str


# Plain SQL, so the ledger engine can also write it inside the statement that writes a journal transaction
OUTCOME_SQL = (
    "UPDATE idempotency_record SET transaction_id = :transaction_id, result = CAST(:p_outcome AS jsonb)"
    " WHERE institution_id = :institution_id AND caller = :p_caller AND key = :p_key"
)
_RECORD_OUTCOME = text(OUTCOME_SQL)
# The key and its transaction in one row, for a key no earlier request can have used (see post_transaction)
NEW_KEY_SQL = (
    "INSERT INTO idempotency_record (institution_id, caller, key, request_hash, transaction_id)"
    " VALUES (:institution_id, :p_caller, :p_key, :p_request_hash, :transaction_id)"
)


def outcome_params(key: IdempotencyKey, result: Mapping[str, Any] | None) -> dict[str, Any]:
    """OUTCOME_SQL's own parameters (it also takes :institution_id and :transaction_id)."""
    return {"p_caller": key.caller, "p_key": key.key, "p_outcome": None if result is None else json.dumps(dict(result))}


def new_key_params(key: IdempotencyKey, request: Mapping[str, Any]) -> dict[str, Any]:
    """NEW_KEY_SQL's own parameters (it also takes :institution_id and :transaction_id)."""
    _check_key(key)
    return {"p_caller": key.caller, "p_key": key.key, "p_request_hash": fingerprint(request)}


def _check_key(key: IdempotencyKey) -> None:
    if not _KEY.match(key.key):
        raise InvalidRequest("an idempotency key is 1 to 255 printable ASCII characters without spaces", key=key.key)


def fingerprint(request: Mapping[str, Any]) -> str:
    """A stable hash of the request as the caller gave it (key order does not matter)."""
    canonical = json.dumps(request, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def claim_key(
    session: Session, *, institution_id: UUID, key: IdempotencyKey, request: Mapping[str, Any]
) -> IdempotencyRecord | None:
    """Reserve `key` for `request`. None: first use, go ahead. A record: the earlier result to replay."""
    _check_key(key)
    request_hash = fingerprint(request)
    claimed = session.execute(
        _CLAIM,
        {"p_institution_id": institution_id, "p_caller": key.caller, "p_key": key.key, "p_request_hash": request_hash},
    ).first()
    if claimed is not None:
        return None
    # the row existed, or a concurrent holder just committed it: read it as it is now
    earlier = session.scalars(
        select(IdempotencyRecord)
        .where(
            IdempotencyRecord.institution_id == institution_id,
            IdempotencyRecord.caller == key.caller,
            IdempotencyRecord.key == key.key,
        )
        .execution_options(populate_existing=True)
    ).one()
    if earlier.request_hash != request_hash:
        raise IdempotencyConflict(
            f"idempotency key {key.key!r} was first used at {earlier.created_at.isoformat()} "
            "for a different request; nothing was changed. Use a new key for a new request.",
            key=key.key,
        )
    return earlier


def record_outcome(
    session: Session,
    *,
    institution_id: UUID,
    key: IdempotencyKey,
    transaction_id: UUID | None = None,
    result: Mapping[str, Any] | None = None,
) -> None:
    """Store what the first request produced, for replays."""
    session.execute(
        _RECORD_OUTCOME,
        {"institution_id": institution_id, "transaction_id": transaction_id} | outcome_params(key, result),
    )


def run_once(
    session: Session,
    *,
    institution_id: UUID,
    key: IdempotencyKey,
    request: Mapping[str, Any],
    perform: Callable[[], T],
    remember: Callable[[T], Mapping[str, Any]],
    recall: Callable[[Mapping[str, Any]], T],
) -> tuple[T, bool]:
    """Do `perform` once per key; a replay gets `recall` of what `remember` stored. (value, replayed)"""
    earlier = claim_key(session, institution_id=institution_id, key=key, request=request)
    if earlier is not None:
        assert earlier.result is not None, "a claimed key records its result in the same transaction"
        return recall(earlier.result), True
    value = perform()
    record_outcome(session, institution_id=institution_id, key=key, result=remember(value))
    return value, False
