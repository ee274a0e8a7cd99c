"""Each lifecycle's StrEnum allows exactly the values the database's CHECK on its column allows."""

from __future__ import annotations

import re
from enum import StrEnum

import pytest
from sqlalchemy import Engine, text

from escrow.ledger.model import AccountKind
from escrow.rules.families import Author, CodeOutcome, ComplaintCategory, MessageKind, SenderKind
from escrow.rules.states import (
    AlertState,
    ClassStatus,
    ComplaintStatus,
    ConfirmedHow,
    ContractStatus,
    InstitutionStatus,
    JobOutcome,
    PayoutKind,
    PayoutStatus,
    RefundStatus,
)

COLUMNS: list[tuple[str, str, type[StrEnum]]] = [
    ("class_record", "status", ClassStatus),
    ("class_record", "confirmed_how", ConfirmedHow),
    ("refund_request", "status", RefundStatus),
    ("payout", "status", PayoutStatus),
    ("payout", "kind", PayoutKind),
    ("institution", "status", InstitutionStatus),
    ("contract", "status", ContractStatus),
    ("alert", "state", AlertState),
    ("job_run", "outcome", JobOutcome),
    ("account", "kind", AccountKind),
    ("complaint", "status", ComplaintStatus),
    ("complaint", "category", ComplaintCategory),
    ("complaint_message", "author_role", Author),
    ("outbox_message", "kind", MessageKind),
    ("outbox_message", "sent_by", SenderKind),
    ("sign_in_code", "outcome", CodeOutcome),
]

# the CHECKs on this one column alone (a CHECK that also reads other columns says something else)
_CHECKS = """
SELECT pg_get_constraintdef(k.oid) FROM pg_constraint k
JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = ALL(k.conkey)
WHERE k.contype = 'c' AND k.conrelid = CAST(:table AS regclass) AND a.attname = :column
  AND cardinality(k.conkey) = 1
"""


@pytest.mark.parametrize(("table", "column", "values"), COLUMNS, ids=[f"{t}.{c}" for t, c, _ in COLUMNS])
def test_the_database_allows_exactly_the_enums_values(
    engine: Engine, table: str, column: str, values: type[StrEnum]
) -> None:
    with engine.connect() as conn:
        checks = conn.scalars(text(_CHECKS), {"table": table, "column": column}).all()
    allowed = [set(re.findall(r"'([a-z_]+)'::text", check)) for check in checks]
    assert {frozenset(a) for a in allowed if a} == {frozenset(v.value for v in values)}
