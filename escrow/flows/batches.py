"""Collections imported in bulk: a batch is one transaction, whole or not at all; each item is idempotent.

Every new item passes the checks `collect()` makes, accumulated within the batch, and is written as
`collect()` writes it (same journal kind, metadata, idempotency fingerprint and audit note), but in a
handful of set-based statements per batch instead of a dozen per item. PostgreSQL still enforces the
ledger (balanced transactions, cached balances, append-only postings).
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, NamedTuple
from uuid import UUID

from sqlalchemy import text
from sqlalchemy.orm import Session

from escrow.access.audit import note
from escrow.access.callers import Caller, Role, require_role
from escrow.errors import IdempotencyConflict, InstitutionOnHold, InvalidRequest, NotFound
from escrow.ids import new_id
from escrow.ledger.engine import lock_accounts
from escrow.ledger.idempotency import fingerprint
from escrow.registry.institutions import CUSTODY_CASH
from escrow.registry.jurisdictions import policy_version
from escrow.rules.policy import CourseCategory, Policy, cap_problems

MAX_ITEMS = 1000
_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")  # the rule escrow/ledger/idempotency.py applies to every key
_REFERENCE = re.compile(r"^[A-Za-z0-9_./:-]{1,64}$")  # the CHECK on collection.bank_reference


class BatchItem(NamedTuple):
    contract_id: UUID
    amount_fen: int
    bank_reference: str
    collected_at: datetime | None
    idempotency_key: str


@dataclass(frozen=True, slots=True)
class Imported:
    """One item's collection: written by this batch, or (replayed) by the request that first used its key."""

    index: int
    collection_id: UUID
    transaction_id: UUID
    contract_id: UUID
    amount_fen: int
    bank_reference: str
    collected_at: datetime
    replayed: bool


class BatchRefused(InvalidRequest):
    """Some items may not be collected; the batch changed nothing. `problems` names each by index."""

    code = "batch_refused"
    title = "Batch refused"

    def __init__(self, problems: list[str]) -> None:
        super().__init__("nothing was imported: " + "; ".join(problems), problems=problems)
        self.problems = problems


class BatchKeyReused(IdempotencyConflict):
    """An item's idempotency key was first used for a different request; the batch changed nothing."""

    code = "batch_idempotency_key_reused"

    def __init__(self, problems: list[str]) -> None:
        super().__init__("nothing was imported: " + "; ".join(problems), problems=problems)
        self.problems = problems


_LOCK_INSTITUTION = text("SELECT status FROM institution WHERE id = :inst FOR SHARE")
# Sorted keys: concurrent batches sharing keys queue on them in one order instead of deadlocking
_CLAIM = text(
    "INSERT INTO idempotency_record (institution_id, caller, key, request_hash)"
    " SELECT :inst, :caller, k, h FROM unnest(CAST(:keys AS text[]), CAST(:hashes AS text[])) AS u(k, h) ORDER BY k"
    " ON CONFLICT DO NOTHING RETURNING key"
)
_EARLIER = text(
    "SELECT r.key, r.request_hash, r.transaction_id, r.result, r.created_at FROM idempotency_record r"
    " WHERE r.institution_id = :inst AND r.caller = :caller AND r.key = ANY(CAST(:keys AS text[]))"
)
_CONTRACTS = text(
    "SELECT c.id, c.status, c.price_fen, c.hours_bought, c.bonus_hours, c.term_start, c.term_end,"
    " c.policy_jurisdiction, c.policy_effective_date, c.prepaid_account_id, co.category,"
    " (SELECT a.id FROM account a WHERE a.institution_id = :inst AND a.code = :cash) AS cash"
    " FROM contract c JOIN course co ON co.institution_id = c.institution_id AND co.id = c.course_id"
    " WHERE c.institution_id = :inst AND c.id = ANY(CAST(:ids AS uuid[])) ORDER BY c.id FOR NO KEY UPDATE OF c"
)
# Read once the accounts are locked, so it counts what committed while we waited
_STANDING = text(
    "SELECT contract_id::text AS k, sum(amount_fen) AS collected, NULL::uuid AS duplicate FROM collection"
    " WHERE institution_id = :inst AND contract_id = ANY(CAST(:ids AS uuid[])) GROUP BY contract_id"
    " UNION ALL SELECT bank_reference, NULL, id FROM collection"
    " WHERE institution_id = :inst AND bank_reference = ANY(CAST(:refs AS text[]))"
)
_REPLAYED = text(
    "SELECT id, contract_id, amount_fen, bank_reference, collected_at, transaction_id FROM collection"
    " WHERE institution_id = :inst AND id = ANY(CAST(:ids AS uuid[]))"
)
# One statement writes every journal transaction, its two postings, the collection and the key's outcome:
# the balance trigger then moves each account once for the batch; foreign keys are checked at its end.
_WRITE = text(
    "WITH journal AS (INSERT INTO journal_transaction (institution_id, id, kind, effective_at, metadata, legs)"
    " SELECT :inst, t, 'collection', e, m, 2 FROM unnest(CAST(:txn AS uuid[]), CAST(:effective AS timestamptz[]),"
    " CAST(:metadata AS jsonb[])) AS u(t, e, m)),"
    " legs AS (INSERT INTO posting (institution_id, transaction_id, account_id, currency, amount)"
    " SELECT :inst, t, a, c, x FROM unnest(CAST(:leg_txn AS uuid[]), CAST(:leg_account AS uuid[]),"
    " CAST(:leg_currency AS text[]), CAST(:leg_amount AS bigint[])) AS u(t, a, c, x)),"
    " collected AS (INSERT INTO collection (institution_id, id, contract_id, amount_fen, bank_reference,"
    " collected_at, transaction_id) SELECT :inst, i, k, x, r, e, t FROM unnest(CAST(:ids AS uuid[]),"
    " CAST(:contracts AS uuid[]), CAST(:amounts AS bigint[]), CAST(:refs AS text[]),"
    " CAST(:effective AS timestamptz[]), CAST(:txn AS uuid[])) AS u(i, k, x, r, e, t))"
    " UPDATE idempotency_record AS r SET transaction_id = u.t, result = u.o"
    " FROM unnest(CAST(:keys AS text[]), CAST(:txn AS uuid[]), CAST(:outcomes AS jsonb[])) AS u(k, t, o)"
    " WHERE r.institution_id = :inst AND r.caller = :caller AND r.key = ANY(CAST(:keys AS text[])) AND r.key = u.k"
)


def _array(values: Sequence[object]) -> str:
    """A PostgreSQL array literal: one constant for the server to read, where a bound list is one per element."""
    quoted = (str(v).replace("\\", "\\\\").replace('"', '\\"') for v in values)
    return "{" + ",".join(f'"{v}"' for v in quoted) + "}"


def import_collections(
    session: Session, *, caller: Caller, institution_id: UUID, items: Sequence[BatchItem], now: datetime
) -> list[Imported]:
    """Collect every item of the batch, or none: refused with every bad item named by its index."""
    require_role(caller, Role.INSTITUTION)
    if not 1 <= len(items) <= MAX_ITEMS:
        raise InvalidRequest(f"a batch holds 1 to {MAX_ITEMS} items, not {len(items)}")
    inst = {"inst": institution_id}
    status = session.scalar(_LOCK_INSTITUTION, inst) if caller.institution_id == institution_id else None
    if status is None:
        raise NotFound(f"institution {institution_id} does not exist or is outside your scope")
    items = [BatchItem(*item) for item in items]
    _refuse(_malformed(items))
    hashes = [fingerprint(_request(item)) for item in items]
    replays = _claim(session, institution_id, caller.principal, items, hashes)
    fresh = [n for n in range(len(items)) if n not in replays]
    if fresh and status != "active":
        raise InstitutionOnHold(
            f"institution {institution_id} is {status}: new collections are blocked (items {_indexes(fresh)})"
        )
    done = _write(session, caller, institution_id, items, fresh, now) if fresh else {}
    done |= _replayed(session, institution_id, items, replays)
    return [done[n] for n in range(len(items))]


def _request(item: BatchItem) -> dict[str, Any]:
    """What `collect()` fingerprints, so a key first used there replays here and the other way round."""
    return {
        "operation": "collect",
        "contract_id": str(item.contract_id),
        "amount_fen": item.amount_fen,
        "bank_reference": item.bank_reference,
        "collected_at": item.collected_at,
    }


def _malformed(items: Sequence[BatchItem]) -> list[str]:
    """Every item the database would refuse outright, and keys or references repeated in the batch."""
    problems = []
    wall_clock = datetime.now(UTC)
    keys: dict[str, int] = {}  # the first item of each key and reference: the later ones are refused
    references: dict[str, int] = {}
    for n, item in enumerate(items):
        if not _KEY.match(item.idempotency_key):
            problems.append(f"item {n}: an idempotency key is 1 to 255 printable ASCII characters without spaces")
        elif keys.setdefault(item.idempotency_key, n) != n:
            problems.append(
                f"item {n}: idempotency key {item.idempotency_key!r} is used by item {keys[item.idempotency_key]} too"
            )
        if not (isinstance(item.amount_fen, int) and item.amount_fen > 0):
            problems.append(f"item {n}: the amount must be a positive whole number of fen")
        if not _REFERENCE.match(item.bank_reference):
            problems.append(f"item {n}: bank reference {item.bank_reference!r} is not 1 to 64 of A-Z a-z 0-9 _ . / : -")
        elif references.setdefault(item.bank_reference, n) != n:
            problems.append(
                f"item {n}: bank reference {item.bank_reference} appears more than once in the batch"
                f" (first in item {references[item.bank_reference]})"
            )
        if item.collected_at is not None and item.collected_at.tzinfo is None:
            problems.append(f"item {n}: collected_at must carry a time zone")
        elif item.collected_at is not None and item.collected_at > wall_clock:
            problems.append(f"item {n}: collected_at {item.collected_at.isoformat()} is in the future")
    return problems


def _refuse(problems: list[str]) -> None:
    if problems:
        raise BatchRefused(problems)


def _indexes(numbers: Sequence[int]) -> str:
    shown = ", ".join(str(n) for n in numbers[:20])
    return shown + (f" and {len(numbers) - 20} more" if len(numbers) > 20 else "")


def _claim(
    session: Session, institution_id: UUID, principal: str, items: Sequence[BatchItem], hashes: list[str]
) -> dict[int, Any]:
    """Claim every key in one statement; the items whose key was claimed before are replays (index: record).
    A key first used for a different request refuses the batch."""
    keys = [item.idempotency_key for item in items]
    bound = {"inst": institution_id, "caller": principal, "keys": _array(keys)}
    claimed = set(session.scalars(_CLAIM, bound | {"hashes": _array(hashes)}))
    if len(claimed) == len(keys):
        return {}
    earlier = {
        r.key: r for r in session.execute(_EARLIER, bound | {"keys": _array([k for k in keys if k not in claimed])})
    }
    replays, conflicts = {}, []
    for n, key in enumerate(keys):
        if key in claimed:
            continue
        record = earlier[key]
        if record.request_hash != hashes[n]:
            conflicts.append(
                f"item {n}: idempotency key {key!r} was first used at {record.created_at.isoformat()} "
                "for a different request. Use a new key for a new request"
            )
        else:
            replays[n] = record
    if conflicts:
        raise BatchKeyReused(conflicts)
    return replays


def _write(
    session: Session, caller: Caller, institution_id: UUID, items: Sequence[BatchItem], fresh: list[int], now: datetime
) -> dict[int, Imported]:
    """Lock, check every new item (refusing the batch with all problems), then write them together."""
    inst = {"inst": institution_id}
    contract_ids = sorted({items[n].contract_id for n in fresh})
    locked = session.execute(_CONTRACTS, inst | {"ids": _array(contract_ids), "cash": CUSTODY_CASH}).all()
    contracts = {c.id: c for c in locked}
    if not contracts:  # every item names an unknown contract
        _refuse(_check(session, items, fresh, contracts, defaultdict(int), {}))
    cash = locked[0].cash
    assert cash is not None, "every institution opens its custody cash account when registered"
    # the accounts every posting moves, locked in id order as the engine does: batches for one institution queue
    accounts = lock_accounts(session, institution_id, [cash, *(c.prepaid_account_id for c in contracts.values())])
    collected: dict[UUID, int] = defaultdict(int)
    duplicates: dict[str, UUID] = {}
    standing = {"ids": _array(list(contracts)), "refs": _array([items[n].bank_reference for n in fresh])}
    for row in session.execute(_STANDING, inst | standing):
        if row.duplicate is None:
            collected[UUID(row.k)] = int(row.collected)
        else:
            duplicates[row.k] = row.duplicate
    _refuse(_check(session, items, fresh, contracts, collected, duplicates))
    return _insert(session, caller, institution_id, items, fresh, contracts, (cash, accounts), now)


def _check(
    session: Session,
    items: Sequence[BatchItem],
    fresh: list[int],
    contracts: dict[UUID, Any],
    collected: dict[UUID, int],
    duplicates: dict[str, UUID],
) -> list[str]:
    """Every reason `collect()` would refuse each new item, counting the batch's earlier items."""
    problems: list[str] = []
    policies: dict[tuple[str, date | None], Policy] = {}
    for n in fresh:
        item = items[n]
        contract = contracts.get(item.contract_id)
        if contract is None:
            problems.append(f"item {n}: contract {item.contract_id} does not exist or is outside your scope")
            continue
        if contract.status != "active":
            problems.append(f"item {n}: contract {item.contract_id} is {contract.status}; it takes no more collections")
            continue
        if item.bank_reference in duplicates:
            problems.append(
                f"item {n}: bank reference {item.bank_reference} was already collected as collection "
                f"{duplicates[item.bank_reference]}"
            )
        known = (contract.policy_jurisdiction, contract.policy_effective_date)
        if known not in policies:
            policies[known] = policy_version(session, jurisdiction_code=known[0], effective_date=known[1])
        caps = cap_problems(
            policies[known],
            category=CourseCategory(contract.category),
            hours_bought=contract.hours_bought,
            bonus_hours=contract.bonus_hours,
            term_start=contract.term_start,
            term_end=contract.term_end,
            amount_fen=item.amount_fen,
        )
        problems += [f"item {n}: {cap}" for cap in caps]
        total = collected[item.contract_id] + item.amount_fen
        if total > contract.price_fen:
            problems.append(
                f"item {n}: collecting {item.amount_fen} fen would bring contract {item.contract_id} to {total} fen, "
                f"above its price of {contract.price_fen} fen ({contract.price_fen - collected[item.contract_id]} "
                "fen left)"
            )
        elif not caps and item.bank_reference not in duplicates:
            collected[item.contract_id] = total  # a refused item moves nothing, as `collect()` would leave it
    return problems


def _insert(
    session: Session,
    caller: Caller,
    institution_id: UUID,
    items: Sequence[BatchItem],
    fresh: list[int],
    contracts: dict[UUID, Any],
    cash_and_accounts: tuple[UUID, dict[UUID, Any]],
    now: datetime,
) -> dict[int, Imported]:
    cash, accounts = cash_and_accounts
    session.flush()  # what the caller added goes in first, as `record_entry` does
    done: dict[int, Imported] = {}
    columns: dict[str, list[Any]] = defaultdict(list)
    for n in fresh:
        item = items[n]
        prepaid = contracts[item.contract_id].prepaid_account_id
        row = Imported(
            n,
            new_id(),
            new_id(),
            item.contract_id,
            item.amount_fen,
            item.bank_reference,
            item.collected_at or now,
            False,
        )
        done[n] = row
        txn = str(row.transaction_id)
        columns["txn"].append(txn)
        columns["effective"].append(row.collected_at)
        columns["metadata"].append(
            json.dumps({"contract_id": str(item.contract_id), "bank_reference": item.bank_reference})
        )
        columns["leg_txn"] += [txn, txn]
        columns["leg_account"] += [str(cash), str(prepaid)]
        columns["leg_currency"] += [accounts[cash].currency, accounts[prepaid].currency]
        columns["leg_amount"] += [item.amount_fen, -item.amount_fen]
        columns["ids"].append(str(row.collection_id))
        columns["contracts"].append(str(item.contract_id))
        columns["amounts"].append(item.amount_fen)
        columns["refs"].append(item.bank_reference)
        columns["keys"].append(item.idempotency_key)
        columns["outcomes"].append(json.dumps({"collection_id": str(row.collection_id)}))
    arrays = {name: _array(values) for name, values in columns.items()}
    session.execute(_WRITE, {"inst": institution_id, "caller": caller.principal, **arrays})
    for row in done.values():
        note(
            session,
            caller,
            "collection.registered",
            institution_id=institution_id,
            object_type="collection",
            object_id=row.collection_id,
            at=now,
            after={
                "contract_id": row.contract_id,
                "amount_fen": row.amount_fen,
                "bank_reference": row.bank_reference,
                "transaction_id": row.transaction_id,
            },
        )
    return done


def _replayed(
    session: Session, institution_id: UUID, items: Sequence[BatchItem], replays: dict[int, Any]
) -> dict[int, Imported]:
    """The earlier collections of the replayed items, read in one query."""
    if not replays:
        return {}
    wanted = {n: UUID(record.result["collection_id"]) for n, record in replays.items()}
    rows = {
        r.id: r
        for r in session.execute(_REPLAYED, {"inst": institution_id, "ids": _array(sorted(set(wanted.values())))})
    }
    return {
        n: Imported(
            n,
            c,
            rows[c].transaction_id,
            rows[c].contract_id,
            rows[c].amount_fen,
            rows[c].bank_reference,
            rows[c].collected_at,
            True,
        )
        for n, c in wanted.items()
    }
