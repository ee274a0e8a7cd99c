"""Copies of a seeded institution under identities of their own: how the demo district reaches its scale.

A copy is the template's books as the use cases wrote them (courses, contracts and their families,
accounts, journal transactions and postings, collections, classes, payouts, refunds, holds, idempotency
records and the audit chain), re-keyed: every UUIDv7 the template's rows hold, in id columns and inside
text and JSON alike, becomes the same UUID with version 8 and the copy's number in its last 16 bits.
So references stay references, ids keep their order (keyset pages still come out in creation order),
no copy's id can equal an original's (version 7), and two copies' ids can meet only if two originals'
ids agreed in all their other 112 bits. A copy has its own name,
credit code and custody account, and its families their own phone numbers.

Each table is copied for all of a template's copies in one INSERT ... SELECT, with every trigger and
foreign key on, except the books themselves: the template's journal transactions are posted to each copy
through the ledger engine (`record_entries`, all of one copy's at once), the one way postings are written.
Accounts open at zero and the postings move them (so balances are PostgreSQL's own sum, each account moved
once by the net of the copy's history), each journal transaction is checked balanced at commit, and the
audit records are appended to each copy's own chain, hashed afresh. Not re-keyed: idempotency records keep
the template's request fingerprints, so a seeding request replayed against a copy is refused as a
different request.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import text
from sqlalchemy.orm import Session

from escrow.access.audit import Actor, note
from escrow.ledger.engine import record_entries
from escrow.ledger.model import Leg, NewEntry

# parents before children: the foreign keys are checked as each statement ends
TABLES = (
    "institution",
    "guardian",
    "course",
    "account",
    "contract",
    "journal_transaction",
    "posting",
    "collection",
    "payout",
    "class_record",
    "refund_request",
    "hold",
    "idempotency_record",
)
_SOURCE = {  # where each table's rows of the template are (default: its institution_id)
    "institution": ("institution AS src", "src.id = :template"),
    "guardian": (  # k: the family's rank among the template's (a demo school has far fewer than 1000)
        "(SELECT g.*, row_number() OVER (ORDER BY g.id) AS k FROM guardian g"
        " WHERE g.id IN (SELECT guardian_id FROM contract WHERE institution_id = :template)) AS src",
        "true",
    ),
}
_OWN = {  # what a copy does not take from its template
    "institution": {"name": "tgt.name", "credit_code": "tgt.credit_code", "custody_account": "tgt.custody_account"},
    # '19' is a prefix no generated family has; a copy's number and the family's rank make each unique
    "guardian": {"phone": "'19' || lpad((tgt.n * 1000 + src.k)::text, 9, '0')"},
}
POSTED = ("journal_transaction", "posting")  # written by the ledger engine, not copied row by row
_SKIPPED = {"created_at", "balance", "version"}  # now(); accounts open at zero and postings move them
_TEMPLATE_BOOKS = text(
    "SELECT t.id, t.kind, t.effective_at, t.metadata::text AS metadata, t.reverses_id, p.account_id, p.amount"
    " FROM journal_transaction t JOIN posting p ON p.institution_id = t.institution_id AND p.transaction_id = t.id"
    " WHERE t.institution_id = :template ORDER BY t.id, p.id"
)

_V7 = r"([0-9a-f]{8}-[0-9a-f]{4}-)7([0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{8})[0-9a-f]{4}"
_V7_PATTERN = re.compile(_V7)
_REKEY_SQL = "regexp_replace(%s, '" + _V7 + r"', '\18\2' || tgt.suffix, 'g')"


@dataclass(frozen=True, slots=True)
class Identity:
    """Who a copy is: its number (1 to 65535, unique in the database: `next_copy_number`) and what the
    bureau knows it by."""

    number: int
    name: str
    credit_code: str
    custody_account: str

    @property
    def suffix(self) -> str:
        if not 0 < self.number < 2**16:
            raise ValueError(f"a copy's number is 1 to 65535, not {self.number}")
        return f"{self.number:04x}"


def next_copy_number(session: Session) -> int:
    """The lowest number above every copy's the database holds (1 when it holds none)."""
    highest = session.scalar(
        text(
            "SELECT max(('x' || right(id::text, 4))::bit(16)::int) FROM institution WHERE substr(id::text, 15, 1) = '8'"
        )
    )
    return (highest or 0) + 1


def copy_id(value: UUID, number: int) -> UUID:
    """The id a copy holds for its template's `value`."""
    return UUID(_rekey(str(value), f"{number:04x}"))


def _rekey(value: str, suffix: str) -> str:
    return _V7_PATTERN.sub(rf"\g<1>8\g<2>{suffix}", value)


def copy_institution(session: Session, *, template: UUID, copies: list[Identity]) -> list[UUID]:
    """Copy the template's books into each of `copies`, in the session's transaction; their ids."""
    session.execute(
        text(
            "CREATE TEMP TABLE copy_target (n int, suffix text, name text, credit_code text, custody_account text)"
            " ON COMMIT DROP"
        )
    )
    session.execute(
        text("INSERT INTO copy_target VALUES (:n, :suffix, :name, :credit_code, :custody_account)"),
        [
            {"n": c.number, "suffix": c.suffix, "name": c.name, "credit_code": c.credit_code}
            | {"custody_account": c.custody_account}
            for c in copies
        ],
    )
    columns = _columns(session)
    for table in TABLES:
        if table == POSTED[0]:  # after the accounts, before the rows that name the transactions
            _post_books(session, template, copies)
        if table not in POSTED:
            session.execute(text(_copy_sql(table, columns[table])), {"template": template})
    _copy_audit(session, template, copies)
    return [copy_id(template, c.number) for c in copies]


@dataclass(frozen=True, slots=True)
class _Entry:
    """One of the template's journal transactions, as read."""

    id: UUID
    kind: str
    effective_at: datetime
    metadata: str
    legs: list[tuple[UUID, int]]


def _post_books(session: Session, template: UUID, copies: list[Identity]) -> None:
    """Post the template's journal transactions, re-keyed, to each copy: one `record_entries` per copy."""
    entries: dict[UUID, _Entry] = {}
    for r in session.execute(_TEMPLATE_BOOKS, {"template": template}):
        if r.reverses_id is not None:  # a reversal is posted by reverse_transaction, one at a time
            raise ValueError(f"transaction {r.id} of template {template} is a reversal: copies take none")
        entry = entries.setdefault(r.id, _Entry(r.id, r.kind, r.effective_at, r.metadata, []))
        entry.legs.append((r.account_id, r.amount))
    for copy in copies:
        posted = [
            NewEntry(
                kind=e.kind,
                legs=[Leg(copy_id(account, copy.number), amount) for account, amount in e.legs],
                effective_at=e.effective_at,
                metadata=json.loads(_rekey(e.metadata, copy.suffix)),
                id=copy_id(e.id, copy.number),
            )
            for e in entries.values()
        ]
        if posted:
            record_entries(session, institution_id=copy_id(template, copy.number), entries=posted)


def _columns(session: Session) -> dict[str, list[tuple[str, str]]]:
    rows = session.execute(
        text(
            "SELECT table_name, column_name, data_type FROM information_schema.columns"
            " WHERE table_schema = current_schema() AND table_name = ANY(:tables) AND is_identity = 'NO'"
            " ORDER BY table_name, ordinal_position"
        ),
        {"tables": list(TABLES)},
    )
    columns: dict[str, list[tuple[str, str]]] = {table: [] for table in TABLES}
    for table, column, data_type in rows:
        if column not in _SKIPPED:
            columns[table].append((column, data_type))
    return columns


def _copy_sql(table: str, columns: list[tuple[str, str]]) -> str:
    own = _OWN.get(table, {})
    values = ", ".join(own.get(column) or _rekeyed(f"src.{column}", data_type) for column, data_type in columns)
    source, where = _SOURCE.get(table, (f"{table} AS src", "src.institution_id = :template"))
    return (
        f"INSERT INTO {table} ({', '.join(column for column, _ in columns)})"  # noqa: S608
        f" SELECT {values} FROM copy_target AS tgt CROSS JOIN {source} WHERE {where}"
    )


def _rekeyed(column: str, data_type: str) -> str:
    """SQL for the column's value in a copy: _rekey, in SQL."""
    if data_type == "uuid":
        return (
            f"CASE WHEN substr({column}::text, 15, 1) = '7'"
            f" THEN overlay(overlay({column}::text PLACING '8' FROM 15) PLACING tgt.suffix FROM 33)::uuid"
            f" ELSE {column} END"
        )
    if data_type == "text":
        return _REKEY_SQL % column
    if data_type == "jsonb":
        return f"({_REKEY_SQL % (column + '::text')})::jsonb"
    return column


def _copy_audit(session: Session, template: UUID, copies: list[Identity]) -> None:
    """The template's audit records, re-keyed, noted for each copy's own chain (hashed as they are written)."""
    institution = session.execute(
        text("SELECT name, credit_code, custody_account FROM institution WHERE id = :template"), {"template": template}
    ).one()
    records = session.execute(
        text(
            "SELECT occurred_at, actor, role, action, object_type, object_id, before, after FROM audit_record"
            " WHERE chain = :template ORDER BY position"
        ),
        {"template": template},
    ).all()
    for copy in copies:
        own = {
            institution.name: copy.name,
            institution.credit_code: copy.credit_code,
            institution.custody_account: copy.custody_account,
        }
        for r in records:
            note(
                session,
                Actor(_rekey(r.actor, copy.suffix), r.role),
                r.action,
                institution_id=copy_id(template, copy.number),
                object_type=r.object_type,
                object_id=_rekey(r.object_id, copy.suffix),
                before=_rekeyed_json(r.before, copy.suffix, own),
                after=_rekeyed_json(r.after, copy.suffix, own),
                at=r.occurred_at,
            )


def _rekeyed_json(value: dict[str, Any] | None, suffix: str, own: dict[str, str]) -> dict[str, Any] | None:
    if value is None:
        return None
    dumped = _rekey(json.dumps(value, ensure_ascii=False), suffix)
    for theirs, mine in own.items():
        dumped = dumped.replace(json.dumps(theirs, ensure_ascii=False), json.dumps(mine, ensure_ascii=False))
    loaded: dict[str, Any] = json.loads(dumped)
    return loaded
