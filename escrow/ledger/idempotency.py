"""Idempotency keys: the same key and request give the first result; a different request is refused.

A key is claimed in the same database transaction as the effect it guards, so the key and the
postings commit or vanish together. Concurrent requests with one key queue on the key's row.
Keys are scoped to a caller within one institution's books (which keeps the table distributable).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, NamedTuple, TypeVar
from uuid import UUID

from sqlalchemy import text
from sqlalchemy.orm import Session

from escrow.db.pending import forget_since, made
from escrow.errors import EscrowError, IdempotencyConflict, InvalidRequest
from escrow.ledger._fused import array

T = TypeVar("T")
_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")


@dataclass(frozen=True, slots=True)
class IdempotencyKey:
    """Who is asking (a token, a job) and the key they chose for this one request."""

    caller: str
    key: str


def _check_key(key: IdempotencyKey) -> None:
    if not _KEY.match(key.key):
        raise InvalidRequest("an idempotency key is 1 to 255 printable ASCII characters without spaces", key=key.key)


def fingerprint(request: Mapping[str, Any]) -> str:
    """A stable hash of the request as the caller gave it (key order does not matter)."""
    canonical = json.dumps(request, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


class Outcome(NamedTuple, Generic[T]):
    """What an idempotent use case returns: its value, and whether it is a replay of an earlier request
    with the same key (then nothing moved or changed again)."""

    value: T
    replayed: bool


@dataclass(frozen=True, slots=True)
class KeyReused:
    """An item whose key was first used for a different request."""

    index: int
    key: str
    first_used_at: datetime


class KeysReused(IdempotencyConflict):
    """Some keys were first used for different requests; nothing was changed."""

    def __init__(self, reused: list[KeyReused]) -> None:
        first = reused[0]
        super().__init__(
            f"idempotency key {first.key!r} was first used at {first.first_used_at.isoformat()} "
            "for a different request; nothing was changed. Use a new key for a new request.",
            key=first.key,
        )
        self.reused = reused


def new_key_row(
    *, institution_id: UUID, key: IdempotencyKey, request: Mapping[str, Any], transaction_id: UUID
) -> dict[str, Any]:
    """The key and its outcome as one idempotency_record row, for a key no earlier request can have used
    (the caller holds the lock that makes a replay impossible): written with the entry it guards (one
    round trip fewer than claiming first), a used key is still refused, by the key's primary key."""
    _check_key(key)
    return {
        "institution_id": institution_id,
        "caller": key.caller,
        "key": key.key,
        "request_hash": fingerprint(request),
        "transaction_id": transaction_id,
        "result": {"transaction_id": str(transaction_id)},
    }


def run_once(
    session: Session,
    *,
    institution_id: UUID,
    key: IdempotencyKey,
    request: Mapping[str, Any],
    perform: Callable[[], T],
    recall: Callable[[Mapping[str, Any]], T],
    remember: Callable[[T], Mapping[str, Any]] | None = None,
    planned: Mapping[str, Any] | None = None,
) -> Outcome[T]:
    """Do `perform` once per key, in the caller's transaction; a replay gets `recall` of what was stored:
    `remember` of the value, or `planned`, the result known before performing (the use case chose its
    ids first), stored with the key as it is claimed (one statement fewer). A key first used for a
    different request is refused (IdempotencyConflict)."""
    return run_once_each(
        session,
        institution_id=institution_id,
        uses=[(key, request)],
        perform=lambda fresh: [perform()],
        recall=lambda stored: [recall(result) for result in stored],
        remember=remember,
        planned=None if planned is None else [planned],
    )[0]


def run_once_each(
    session: Session,
    *,
    institution_id: UUID,
    uses: Sequence[tuple[IdempotencyKey, Mapping[str, Any]]],
    perform: Callable[[list[int]], list[T]],
    recall: Callable[[list[Mapping[str, Any]]], list[T]],
    remember: Callable[[T], Mapping[str, Any]] | None = None,
    planned: Sequence[Mapping[str, Any]] | None = None,
) -> list[Outcome[T]]:
    """run_once for many requests of one institution in a few statements: `perform` gets the indexes of
    the requests whose keys are new (and returns their values in that order), `recall` the stored results
    of the replayed ones. What is stored is `remember` of each value, or, when the use case chose its ids
    before performing, `planned` (each request's result if it is new), stored with the key as it is
    claimed. Refused whole (KeysReused) if any key was first used for a different request; a request
    `perform` refuses leaves its key unused and its audit notes unwritten, as if rolled back, even should
    the caller commit."""
    assert (remember is None) != (planned is None), "a result is remembered after, or planned before"
    for key, _ in uses:
        _check_key(key)
    hashes = [fingerprint(request) for _, request in uses]
    keys = [key for key, _ in uses]
    earlier = _claim(session, institution_id, keys, hashes, planned)
    reused = [
        KeyReused(n, key.key, earlier[n].created_at)
        for n, (key, _) in enumerate(uses)
        if n in earlier and earlier[n].request_hash != hashes[n]
    ]
    if reused:
        raise KeysReused(reused)
    fresh = [n for n in range(len(uses)) if n not in earlier]
    done: dict[int, Outcome[T]] = {}
    if earlier:
        replays = sorted(earlier)
        for n, result in zip(replays, recall([_result(earlier[n]) for n in replays]), strict=True):
            done[n] = Outcome(result, True)
    if fresh:
        notes = made(session)
        try:
            values = perform(fresh)
        except EscrowError:  # refused: a key naming what was never written must not outlive it, nor a note
            _unclaim(session, institution_id, [keys[n] for n in fresh])
            forget_since(session, notes)
            raise
        if remember is not None:
            _record_outcomes(session, institution_id, [keys[n] for n in fresh], [remember(v) for v in values])
        done |= {n: Outcome(value, False) for n, value in zip(fresh, values, strict=True)}
    return [done[n] for n in range(len(uses))]


def _result(record: Any) -> Mapping[str, Any]:
    assert record.result is not None, "a claimed key records its result in the same transaction"
    result: Mapping[str, Any] = record.result
    return result


# Sorted keys: concurrent requests sharing keys queue on them in one order instead of deadlocking
_CLAIM = text(
    "INSERT INTO idempotency_record (institution_id, caller, key, request_hash, result, transaction_id)"
    " SELECT :institution_id, c, k, h, o, CAST(o ->> 'transaction_id' AS uuid) FROM unnest(CAST(:callers AS text[]),"
    " CAST(:keys AS text[]), CAST(:hashes AS text[]), CAST(:outcomes AS jsonb[])) AS u(c, k, h, o) ORDER BY c, k"
    " ON CONFLICT DO NOTHING RETURNING caller, key"
)
# the rows that existed, or that a concurrent holder just committed: read as they are now
_EARLIER = text(
    "SELECT r.caller, r.key, r.request_hash, r.result, r.created_at FROM idempotency_record r"
    " JOIN unnest(CAST(:callers AS text[]), CAST(:keys AS text[])) AS u(c, k) ON r.caller = u.c AND r.key = u.k"
    " WHERE r.institution_id = :institution_id"
)
_UNCLAIM = text(
    "DELETE FROM idempotency_record AS r USING unnest(CAST(:callers AS text[]), CAST(:keys AS text[])) AS u(c, k)"
    " WHERE r.institution_id = :institution_id AND r.caller = u.c AND r.key = u.k"
)
_OUTCOMES = text(
    "UPDATE idempotency_record AS r SET result = u.o, transaction_id = CAST(u.o ->> 'transaction_id' AS uuid)"
    " FROM unnest(CAST(:callers AS text[]), CAST(:keys AS text[]), CAST(:outcomes AS jsonb[])) AS u(c, k, o)"
    " WHERE r.institution_id = :institution_id AND r.caller = u.c AND r.key = u.k"
)


def _claim(
    session: Session,
    institution_id: UUID,
    keys: list[IdempotencyKey],
    hashes: list[str],
    planned: Sequence[Mapping[str, Any]] | None,
) -> dict[int, Any]:
    """Claim every key in one statement (with its planned result); the earlier records of those claimed
    before, by index."""
    bound = {"institution_id": institution_id, "callers": array([k.caller for k in keys])}
    outcomes = array([None] * len(keys) if planned is None else [json.dumps(dict(p), default=str) for p in planned])
    claiming = bound | {"keys": array([k.key for k in keys]), "hashes": array(hashes), "outcomes": outcomes}
    claimed = {tuple(r) for r in session.execute(_CLAIM, claiming)}
    taken = [n for n, k in enumerate(keys) if (k.caller, k.key) not in claimed]
    if not taken:
        return {}
    bound["callers"] = array([keys[n].caller for n in taken])
    rows = {
        (r.caller, r.key): r for r in session.execute(_EARLIER, bound | {"keys": array([keys[n].key for n in taken])})
    }
    return {n: rows[keys[n].caller, keys[n].key] for n in taken}


def _record_outcomes(
    session: Session, institution_id: UUID, keys: list[IdempotencyKey], results: list[Mapping[str, Any]]
) -> None:
    session.execute(
        _OUTCOMES,
        {
            "institution_id": institution_id,
            "callers": array([k.caller for k in keys]),
            "keys": array([k.key for k in keys]),
            "outcomes": array([json.dumps(dict(r), default=str) for r in results]),
        },
    )


def _unclaim(session: Session, institution_id: UUID, keys: list[IdempotencyKey]) -> None:
    bound = {"callers": array([k.caller for k in keys]), "keys": array([k.key for k in keys])}
    session.execute(_UNCLAIM, {"institution_id": institution_id} | bound)
