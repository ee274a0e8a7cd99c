"""Keyset pagination with opaque cursors (the last id seen), the same for every list."""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar
from uuid import UUID

from sqlalchemy import Select
from sqlalchemy.orm import Session

from escrow.errors import InvalidRequest

T = TypeVar("T")
MAX_LIMIT = 200
DEFAULT_LIMIT = 50


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    items: list[T]
    next_cursor: str | None


def encode_cursor(last_id: UUID) -> str:
    return base64.urlsafe_b64encode(last_id.bytes).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> UUID | None:
    if cursor is None:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        return UUID(bytes=raw)
    except ValueError as exc:
        raise InvalidRequest("the cursor is not one this service issued; pass next_cursor as given") from exc


def check_limit(limit: int) -> int:
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidRequest(f"limit must be between 1 and {MAX_LIMIT}, got {limit}")
    return limit


def page_of(rows: list[T], limit: int, last_id: UUID | None) -> Page[T]:
    """`rows` was fetched with limit + 1; `last_id` is the id of rows[limit - 1] when there is more."""
    more = len(rows) > limit
    return Page(rows[:limit], encode_cursor(last_id) if more and last_id is not None else None)


def keyset(
    session: Session,
    query: Select[Any],
    id_column: Any,
    *,
    cursor: str | None,
    limit: int,
    key: Callable[[Any], UUID] = lambda row: row.id,
) -> Page[Any]:
    """One page of `query` in `id_column` order, after the cursor's id."""
    check_limit(limit)
    after = decode_cursor(cursor)
    if after is not None:
        query = query.where(id_column > after)
    rows = list(session.scalars(query.order_by(id_column).limit(limit + 1)).all())
    return page_of(rows, limit, key(rows[limit - 1]) if len(rows) > limit else None)
