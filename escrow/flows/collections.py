"""Collections: a family's payment into escrow for a contract, posted as custody cash and prepaid.

One set-based path: `collect_many` collects any number of payments to one institution in one go (a
batch import is many; `collect` is the one-item case). Each is idempotent under its own key, claimed in
the same transaction as the postings; `collection_problems` (pure) names every reason to refuse any of
them, and then nothing is collected.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, NamedTuple
from uuid import UUID

from sqlalchemy import Text, bindparam, cast, func, insert, literal, select, union_all
from sqlalchemy.orm import Session, make_transient_to_detached

from escrow.access.audit import note
from escrow.access.callers import Caller, Role, require_role
from escrow.db.paging import Page, keyset
from escrow.db.records import Collection, Contract, Course, Institution
from escrow.errors import Conflict, InstitutionOnHold, InvalidRequest, NotFound, PolicyViolation
from escrow.ids import new_id
from escrow.ledger.engine import Rows, record_entries
from escrow.ledger.idempotency import IdempotencyKey, Outcome, run_once_each
from escrow.ledger.model import NewEntry, credit, debit
from escrow.ledger.records import Account
from escrow.registry.contracts import visible_contract
from escrow.registry.institutions import CUSTODY_CASH, visible_institution
from escrow.registry.jurisdictions import policy_version
from escrow.rules.policy import CourseCategory, Policy, cap_problems

_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")  # the rule escrow/ledger/idempotency.py applies to every key
_REFERENCE = re.compile(r"^[A-Za-z0-9_./:-]{1,64}$")  # the CHECK on collection.bank_reference
# Built once: they run on every collection, and building a statement costs more than running it
_LOCK_INSTITUTION = (
    select(Institution.status).where(Institution.id == bindparam("institution_id")).with_for_update(read=True)
)
_LOCK_CONTRACTS = (
    select(
        Contract.id,
        Contract.status,
        Contract.price_fen,
        Contract.hours_bought,
        Contract.bonus_hours,
        Contract.term_start,
        Contract.term_end,
        Contract.policy_jurisdiction,
        Contract.policy_effective_date,
        Contract.prepaid_account_id,
        Course.category,
    )
    .join(Course, (Course.institution_id == Contract.institution_id) & (Course.id == Contract.course_id))
    .where(
        Contract.institution_id == bindparam("institution_id"), Contract.id.in_(bindparam("contracts", expanding=True))
    )
    .order_by(Contract.id)
    .with_for_update(key_share=True, of=Contract)
)
# One statement, once the contracts are locked (so it counts what committed while we waited): what each
# contract has collected, which references were collected before, and the custody cash account
_STANDING = union_all(
    select(literal("collected"), cast(Collection.contract_id, Text), cast(func.sum(Collection.amount_fen), Text))
    .where(
        Collection.institution_id == bindparam("institution_id"),
        Collection.contract_id.in_(bindparam("contracts", expanding=True)),
    )
    .group_by(Collection.contract_id),
    select(literal("duplicate"), Collection.bank_reference, cast(Collection.id, Text)).where(
        Collection.institution_id == bindparam("institution_id"),
        Collection.bank_reference.in_(bindparam("references", expanding=True)),
    ),
    select(literal("cash"), Account.code, cast(Account.id, Text)).where(
        Account.institution_id == bindparam("institution_id"), Account.code == CUSTODY_CASH
    ),
)


class Payment(NamedTuple):
    """One payment to collect, as the institution reports it."""

    contract_id: UUID
    amount_fen: int
    bank_reference: str
    collected_at: datetime | None
    idempotency_key: str


class Problem(NamedTuple):
    """A reason to refuse payment number `item`: `kind` is what the one-item case answers with."""

    item: int
    kind: type[Exception]
    message: str


@dataclass(frozen=True, slots=True)
class Standing:
    """What the books hold for the payments' contracts, read under their locks."""

    cash: UUID
    contracts: dict[UUID, Any]
    collected: dict[UUID, int]
    duplicates: dict[str, UUID]
    policies: dict[tuple[str, date | None], Policy]


def collect(
    session: Session,
    *,
    caller: Caller,
    institution_id: UUID,
    contract_id: UUID,
    amount_fen: int,
    bank_reference: str,
    collected_at: datetime | None,
    idempotency_key: str,
    now: datetime,
) -> Outcome[Collection]:
    """Record a payment into escrow; refused with a reason on hold, over the price, or over a cap."""
    payment = Payment(contract_id, amount_fen, bank_reference, collected_at, idempotency_key)
    try:
        return collect_many(session, caller=caller, institution_id=institution_id, payments=[payment], now=now)[0]
    except CollectionsRefused as refused:
        raise _one_refusal(refused.found) from None


class CollectionsRefused(InvalidRequest):
    """Some payments may not be collected; nothing was. `problems` names each by its index."""

    code = "batch_refused"
    title = "Batch refused"

    def __init__(self, found: list[Problem]) -> None:
        problems = [f"item {p.item}: {p.message}" for p in found]
        super().__init__("nothing was imported: " + "; ".join(problems), problems=problems)
        self.problems = problems
        self.found = found


def _one_refusal(found: list[Problem]) -> Exception:
    """The error the one-item case answers with: its first problem's kind, with every cap and price problem."""
    kind = found[0].kind
    if kind is PolicyViolation:
        return PolicyViolation([p.message for p in found if p.kind is PolicyViolation])
    return kind(found[0].message)


def collect_many(
    session: Session, *, caller: Caller, institution_id: UUID, payments: Sequence[Payment], now: datetime
) -> list[Outcome[Collection]]:
    """Collect every payment, or none: refused (CollectionsRefused) with every bad payment named."""
    require_role(caller, Role.INSTITUTION)
    status = _lock_institution(session, caller, institution_id)
    payments = [Payment(*payment) for payment in payments]
    _refuse(malformed(payments, datetime.now(UTC)))
    rows = [_row(institution_id, payment, now) for payment in payments]  # ids chosen before the keys are claimed
    return run_once_each(
        session,
        institution_id=institution_id,
        uses=[(IdempotencyKey(caller.principal, p.idempotency_key), _request(p)) for p in payments],
        perform=lambda fresh: _collect_fresh(session, caller, institution_id, status, payments, rows, fresh, now),
        recall=lambda stored: _earlier(session, institution_id, [UUID(s["collection_id"]) for s in stored]),
        planned=[{"collection_id": str(row.id), "transaction_id": str(row.transaction_id)} for row in rows],
    )


def _lock_institution(session: Session, caller: Caller, institution_id: UUID) -> str:
    """A share lock on the institution: collections go ahead together, while a hold or closure waits."""
    ids = {"institution_id": institution_id}
    status = session.scalar(_LOCK_INSTITUTION, ids) if caller.institution_id == institution_id else None
    if status is None:
        raise NotFound(f"institution {institution_id} does not exist or is outside your scope")
    return status


def _request(payment: Payment) -> dict[str, Any]:
    """What a key's request is (the same for one payment or many, so a key replays across them)."""
    return {
        "operation": "collect",
        "contract_id": str(payment.contract_id),
        "amount_fen": payment.amount_fen,
        "bank_reference": payment.bank_reference,
        "collected_at": payment.collected_at,
    }


def _collect_fresh(
    session: Session,
    caller: Caller,
    institution_id: UUID,
    status: str,
    requested: list[Payment],
    planned: list[Collection],
    fresh: list[int],
    now: datetime,
) -> list[Collection]:
    """Lock the contracts, check every new payment against what they hold, then post them all together."""
    if status != "active":
        which = f" (items {_indexes(fresh)})" if len(requested) > 1 else ""
        raise InstitutionOnHold(f"institution {institution_id} is {status}: new collections are blocked{which}")
    payments = [requested[n] for n in fresh]
    standing = _standing(session, institution_id, payments)
    _refuse([p._replace(item=fresh[p.item]) for p in collection_problems(payments, standing)])
    cash = standing.cash
    rows = [planned[n] for n in fresh]
    entries = [
        NewEntry(
            kind="collection",
            legs=(
                debit(cash, row.amount_fen),
                credit(standing.contracts[row.contract_id].prepaid_account_id, row.amount_fen),
            ),
            effective_at=row.collected_at,
            metadata={"contract_id": str(row.contract_id), "bank_reference": row.bank_reference},
            id=row.transaction_id,
        )
        for row in rows
    ]
    for row in rows:  # noted first, so the notes are written with the entries: nothing is left for the commit
        _note(session, caller, row, now)
    written = record_entries(
        session,
        institution_id=institution_id,
        entries=entries,
        rows=[Rows(insert(Collection), [_values(row) for row in rows])],
    )
    for row, entry in zip(rows, written, strict=True):
        row.collected_at, row.created_at = entry.effective_at, entry.created_at  # the database transaction's now()
        make_transient_to_detached(row)  # written with the entries; the session knows it as stored
        session.add(row)
    return rows


def _row(institution_id: UUID, payment: Payment, now: datetime) -> Collection:
    return Collection(
        institution_id=institution_id,
        id=new_id(),
        contract_id=payment.contract_id,
        amount_fen=payment.amount_fen,
        bank_reference=payment.bank_reference,
        collected_at=payment.collected_at or now,
        transaction_id=new_id(),
    )


def _values(row: Collection) -> dict[str, Any]:
    return {
        "institution_id": row.institution_id,
        "id": row.id,
        "contract_id": row.contract_id,
        "amount_fen": row.amount_fen,
        "bank_reference": row.bank_reference,
        "collected_at": row.collected_at,
        "transaction_id": row.transaction_id,
    }


def _note(session: Session, caller: Caller, row: Collection, now: datetime) -> None:
    note(
        session,
        caller,
        "collection.registered",
        institution_id=row.institution_id,
        object_type="collection",
        object_id=row.id,
        at=now,
        after={
            "contract_id": row.contract_id,
            "amount_fen": row.amount_fen,
            "bank_reference": row.bank_reference,
            "transaction_id": row.transaction_id,
        },
    )


def _standing(session: Session, institution_id: UUID, payments: list[Payment]) -> Standing:
    """Lock the payments' contracts in id order, then read what they hold: the standing the checks need."""
    ids = {"institution_id": institution_id, "contracts": sorted({p.contract_id for p in payments})}
    locked = session.execute(_LOCK_CONTRACTS, ids).all()
    contracts = {c.id: c for c in locked}
    collected: dict[UUID, int] = defaultdict(int)
    duplicates: dict[str, UUID] = {}
    cash = None
    references = {"references": [p.bank_reference for p in payments]}
    for what, key, value in session.execute(_STANDING, ids | references):
        if what == "collected":
            collected[UUID(key)] = int(value)
        elif what == "duplicate":
            duplicates[key] = UUID(value)
        else:
            cash = UUID(value)
    assert cash is not None, "every institution opens its custody cash account when registered"
    policies = {
        known: policy_version(session, jurisdiction_code=known[0], effective_date=known[1])
        for known in {(c.policy_jurisdiction, c.policy_effective_date) for c in locked}
    }
    return Standing(cash, contracts, collected, duplicates, policies)


def malformed(payments: Sequence[Payment], wall_clock: datetime) -> list[Problem]:
    """Every payment the database would refuse outright, and keys or references repeated among them."""
    problems = []
    keys: dict[str, int] = {}  # the first payment of each key and reference: the later ones are refused
    references: dict[str, int] = {}
    for n, p in enumerate(payments):
        if not _KEY.match(p.idempotency_key):
            problems.append(
                Problem(n, InvalidRequest, "an idempotency key is 1 to 255 printable ASCII characters without spaces")
            )
        elif keys.setdefault(p.idempotency_key, n) != n:
            problems.append(
                Problem(
                    n,
                    InvalidRequest,
                    f"idempotency key {p.idempotency_key!r} is used by item {keys[p.idempotency_key]} too",
                )
            )
        if isinstance(p.amount_fen, bool) or not (isinstance(p.amount_fen, int) and p.amount_fen > 0):
            problems.append(Problem(n, InvalidRequest, "the amount must be a positive whole number of fen"))
        if not _REFERENCE.match(p.bank_reference):
            problems.append(
                Problem(
                    n, InvalidRequest, f"bank reference {p.bank_reference!r} is not 1 to 64 of A-Z a-z 0-9 _ . / : -"
                )
            )
        elif references.setdefault(p.bank_reference, n) != n:
            problems.append(
                Problem(
                    n,
                    InvalidRequest,
                    f"bank reference {p.bank_reference} appears more than once in the batch"
                    f" (first in item {references[p.bank_reference]})",
                )
            )
        if p.collected_at is not None and p.collected_at.tzinfo is None:
            problems.append(Problem(n, InvalidRequest, "collected_at must carry a time zone"))
        elif p.collected_at is not None and p.collected_at > wall_clock:
            problems.append(Problem(n, InvalidRequest, f"collected_at {p.collected_at.isoformat()} is in the future"))
    return problems


def collection_problems(payments: Sequence[Payment], standing: Standing) -> list[Problem]:
    """Every reason to refuse each payment, counting the ones before it (a refused one moves nothing)."""
    problems: list[Problem] = []
    collected = defaultdict(int, standing.collected)
    for n, payment in enumerate(payments):
        contract = standing.contracts.get(payment.contract_id)
        if contract is None:
            problems.append(
                Problem(n, NotFound, f"contract {payment.contract_id} does not exist or is outside your scope")
            )
            continue
        if contract.status != "active":
            message = f"contract {payment.contract_id} is {contract.status}; it takes no more collections"
            problems.append(Problem(n, Conflict, message))
            continue
        duplicate = standing.duplicates.get(payment.bank_reference)
        if duplicate is not None:
            message = f"bank reference {payment.bank_reference} was already collected as collection {duplicate}"
            problems.append(Problem(n, Conflict, message))
        caps = cap_problems(
            standing.policies[contract.policy_jurisdiction, contract.policy_effective_date],
            category=CourseCategory(contract.category),
            hours_bought=contract.hours_bought,
            bonus_hours=contract.bonus_hours,
            term_start=contract.term_start,
            term_end=contract.term_end,
            amount_fen=payment.amount_fen,
        )
        problems += [Problem(n, PolicyViolation, cap) for cap in caps]
        total = collected[payment.contract_id] + payment.amount_fen
        if total > contract.price_fen:
            left = contract.price_fen - collected[payment.contract_id]
            message = (
                f"collecting {payment.amount_fen} fen would bring contract {payment.contract_id} to {total} fen,"
                f" above its price of {contract.price_fen} fen ({left} fen left)"
            )
            problems.append(Problem(n, PolicyViolation, message))
        elif not caps and duplicate is None:
            collected[payment.contract_id] = total
    return problems


def _indexes(numbers: Sequence[int]) -> str:
    shown = ", ".join(str(n) for n in numbers[:20])
    return shown + (f" and {len(numbers) - 20} more" if len(numbers) > 20 else "")


def _refuse(problems: list[Problem]) -> None:
    if problems:
        raise CollectionsRefused(problems)


def _earlier(session: Session, institution_id: UUID, ids: list[UUID]) -> list[Collection]:
    """The collections the replayed keys first made, read in one query, in the order asked."""
    found = {
        row.id: row
        for row in session.scalars(
            select(Collection).where(Collection.institution_id == institution_id, Collection.id.in_(set(ids)))
        )
    }
    return [found[i] for i in ids]


def list_collections(
    session: Session, *, caller: Caller, institution_id: UUID, contract_id: UUID, cursor: str | None, limit: int
) -> Page[Collection]:
    visible_institution(session, caller, institution_id)
    visible_contract(session, caller, institution_id, contract_id)
    query = select(Collection).where(Collection.institution_id == institution_id, Collection.contract_id == contract_id)
    return keyset(session, query, Collection.id, cursor=cursor, limit=limit)


def get_collection(session: Session, *, caller: Caller, institution_id: UUID, collection_id: UUID) -> Collection:
    visible_institution(session, caller, institution_id)
    row = session.get(Collection, (institution_id, collection_id))
    if row is None:
        raise NotFound(f"collection {collection_id} does not exist in this institution")
    visible_contract(session, caller, institution_id, row.contract_id)
    return row
