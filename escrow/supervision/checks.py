"""The books checked against themselves: each check returns findings, one per thing wrong."""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from escrow.access.audit import verify_chains
from escrow.rules.money import format_yuan
from escrow.supervision.alerts import Finding, Severity

LEDGER_RULES = ("ledger_unbalanced", "ledger_balance_drift", "ledger_negative_balance", "custody_identity_broken")


# One pass over every posting, grouped by institution and currency, decides where to look. With h and k
# 29-bit hashes of the ids, salted anew on every run, it sums each posting's amount weighted by
# h(transaction) + k(account), and h(transaction) alone. If every transaction balances per currency, the
# h terms of the weighted sum cancel; if every cached balance is its postings' sum, the k terms equal the
# accounts' balances weighted by k; if every transaction has the postings it says it has
# (journal_transaction.legs), the h sum equals the transactions' legs x h. These equalities hold exactly
# on sound books, so a difference is always a real fault; a fault is missed only if its terms cancel by
# chance, at most one chance in 2^29 per run, drawn afresh on the next. The institutions where they fail
# are then checked exactly, transaction by transaction and account by account. Sums of bigints are exact
# in PostgreSQL; each product fits a bigint while an amount is below 2^33 fen (85.9 million yuan), and a
# larger one makes PostgreSQL refuse the product, so the pass is made again with amounts split in 32-bit
# halves (_BY_HALVES), exact for any amount. The same statement reads the accounts once for the rest:
# forbidden negatives, custody cash against owed.
_LEDGER = """
WITH p AS MATERIALIZED (
    SELECT institution_id, currency, sum(h) AS h, {weighted} AS weighted
    FROM (SELECT institution_id, currency, amount, uuid_hash_extended(transaction_id, :salt) & 536870911 AS h,
                 uuid_hash_extended(account_id, :salt + 1) & 536870911 AS k
          FROM posting) legs
    GROUP BY institution_id, currency
), a AS MATERIALIZED (
    SELECT institution_id, currency,
           sum((balance >> 32) * k) * 4294967296 + sum((balance & 4294967295) * k) AS weighted,
           sum(balance) FILTER (WHERE kind = 'custody_cash') AS cash,
           sum(balance) FILTER (WHERE kind IN ('prepaid', 'refund_payable', 'releasable', 'payout_pending')) AS owed,
           count(*) FILTER (WHERE NOT allow_negative AND balance < 0) AS negative
    FROM (SELECT institution_id, currency, kind, balance, allow_negative,  -- k signed: balances read as postings
                 (uuid_hash_extended(id, :salt + 1) & 536870911) * CASE normal_side WHEN 'debit' THEN 1 ELSE -1 END
                     AS k
          FROM account) accounts
    GROUP BY institution_id, currency
), t AS (
    SELECT institution_id, sum(legs * (uuid_hash_extended(id, :salt) & 536870911)) AS h
    FROM journal_transaction GROUP BY institution_id
), suspect AS (
    SELECT coalesce(p.institution_id, a.institution_id) AS institution_id
    FROM p FULL JOIN a USING (institution_id, currency) WHERE coalesce(p.weighted, 0) <> coalesce(a.weighted, 0)
    UNION
    SELECT coalesce(p.institution_id, t.institution_id)
    FROM (SELECT institution_id, sum(h) AS h FROM p GROUP BY institution_id) p
    FULL JOIN t USING (institution_id)
    WHERE p.h IS DISTINCT FROM t.h
), books AS (
    SELECT institution_id, coalesce(sum(cash), 0) AS cash, coalesce(sum(owed), 0) AS owed, sum(negative) AS negative
    FROM a GROUP BY institution_id
)
SELECT coalesce(b.institution_id, s.institution_id) AS institution_id, s.institution_id IS NOT NULL AS suspect,
       b.cash, b.owed, b.negative > 0 AS negative
FROM books b FULL JOIN suspect s USING (institution_id)
WHERE s.institution_id IS NOT NULL OR b.cash <> b.owed OR b.negative > 0
"""
_BY_PRODUCT = text(_LEDGER.format(weighted="sum(amount * (h + k))"))
_BY_HALVES = text(
    _LEDGER.format(weighted="sum((amount >> 32) * (h + k)) * 4294967296 + sum((amount & 4294967295) * (h + k))")
)
_OUT_OF_RANGE = "22003"  # numeric_value_out_of_range: a product too large for a bigint

# Exactly, in the suspect institutions: transactions without the postings they say they have or whose
# postings do not cancel per currency, and postings of a transaction that does not exist.
_UNBALANCED = """
WITH sums AS (
    SELECT institution_id, transaction_id, sum(n) AS legs, max(abs(total)) AS worst
    FROM (SELECT institution_id, transaction_id, count(*) AS n, sum(amount) AS total FROM posting
          WHERE institution_id = ANY(:suspects) GROUP BY institution_id, transaction_id, currency) c
    GROUP BY institution_id, transaction_id
)
SELECT t.institution_id, t.id, t.legs, coalesce(s.legs, 0), coalesce(s.worst, 0)
FROM journal_transaction t
LEFT JOIN sums s ON s.institution_id = t.institution_id AND s.transaction_id = t.id
WHERE t.institution_id = ANY(:suspects) AND (coalesce(s.legs, 0) <> t.legs OR s.worst > 0)
UNION ALL
SELECT s.institution_id, s.transaction_id, NULL, s.legs, s.worst FROM sums s
WHERE NOT EXISTS (SELECT 1 FROM journal_transaction t
                  WHERE t.institution_id = s.institution_id AND t.id = s.transaction_id)
"""

_DRIFT = """
SELECT a.institution_id, a.id, a.code, a.balance,
       coalesce(s.total, 0) * CASE a.normal_side WHEN 'debit' THEN 1 ELSE -1 END
FROM account a
LEFT JOIN (SELECT institution_id, account_id, sum(amount) AS total FROM posting
           WHERE institution_id = ANY(:suspects) GROUP BY institution_id, account_id) s
  ON s.institution_id = a.institution_id AND s.account_id = a.id
WHERE a.institution_id = ANY(:suspects)
  AND a.balance <> coalesce(s.total, 0) * CASE a.normal_side WHEN 'debit' THEN 1 ELSE -1 END
"""


_NEGATIVE = """
SELECT institution_id, id, code, balance FROM account
WHERE institution_id = ANY(:institutions) AND NOT allow_negative AND balance < 0
"""


def ledger_findings(session: Session, *, now: datetime) -> list[Finding]:
    """Unbalanced transactions, cached balances that drifted from their postings, forbidden negative
    balances, and institutions whose custody cash is not what they owe (when nothing above explains it)."""
    findings: dict[tuple[str, str], Finding] = {}
    salt = secrets.randbits(62)  # drawn anew each run: no fault can be shaped to cancel out
    rows = _ledger_rows(session, salt)
    suspects = [row.institution_id for row in rows if row.suspect]
    if suspects:
        _suspect_findings(session, suspects, findings)
    negative = [row.institution_id for row in rows if row.negative]
    for inst, account, code, balance in (
        session.execute(text(_NEGATIVE), {"institutions": negative}) if negative else ()
    ):
        findings[("ledger_negative_balance", str(account))] = Finding(
            "ledger_negative_balance",
            Severity.RED,
            inst,
            str(account),
            f"account {code} may not go below zero but holds {format_yuan(int(balance))} yuan",
            {"code": code, "balance_fen": balance},
        )
    explained = {f.institution_id for f in findings.values()}
    for row in rows:  # an echo of a fault above is not another
        if row.cash is not None and row.cash != row.owed and row.institution_id not in explained:
            findings[("custody_identity_broken", str(row.institution_id))] = Finding(
                "custody_identity_broken",
                Severity.RED,
                row.institution_id,
                "",
                f"custody cash {format_yuan(int(row.cash))} yuan is not what the institution owes"
                f" ({format_yuan(int(row.owed))} yuan)",
                {"custody_cash_fen": row.cash, "owed_fen": row.owed},
            )
    return list(findings.values())


def _ledger_rows(session: Session, salt: int) -> list[Any]:
    """The fingerprint pass by whole products; again by halves if some amount is too large for them."""
    # The transactions' legs are read from journal_transaction_legs, a fifth of the table's size; priced as
    # random reads from disk, its pages look dearer to PostgreSQL than the table's, which are in memory too.
    priced = session.scalar(text("SELECT current_setting('random_page_cost')"))
    session.execute(text("SET LOCAL random_page_cost = 1.1"))
    try:
        with session.begin_nested():
            rows = list(session.execute(_BY_PRODUCT, {"salt": salt}).all())
    except DBAPIError as exc:
        if getattr(exc.orig, "pgcode", None) != _OUT_OF_RANGE:
            raise
        rows = list(session.execute(_BY_HALVES, {"salt": salt}).all())
    session.execute(text("SELECT set_config('random_page_cost', :priced, true)"), {"priced": priced})
    return rows


def _suspect_findings(session: Session, suspects: list[UUID], findings: dict[tuple[str, str], Finding]) -> None:
    """The faults of the suspect institutions, named one by one."""
    for inst, txn, declared, legs, worst in session.execute(text(_UNBALANCED), {"suspects": suspects}):
        if declared is None:
            detail = f"posting(s) name journal transaction {txn}, which does not exist"
        elif legs != declared:
            detail = f"journal transaction {txn} says it has {declared} posting(s) but has {legs}"
        else:
            detail = f"journal transaction {txn} has {legs} posting(s) and is off by {worst} fen"
        findings[("ledger_unbalanced", str(txn))] = Finding(
            "ledger_unbalanced",
            Severity.RED,
            inst,
            str(txn),
            detail,
            {"postings": legs, "declared": declared, "off_by_fen": worst},
        )
    for inst, account, code, cached, summed in session.execute(text(_DRIFT), {"suspects": suspects}):
        findings[("ledger_balance_drift", str(account))] = Finding(
            "ledger_balance_drift",
            Severity.RED,
            inst,
            str(account),
            f"account {code} caches {cached} fen but its postings sum to {summed}",
            {"code": code, "cached_fen": cached, "postings_fen": summed},
        )
    named = {f.institution_id for f in findings.values()}
    for inst in suspects:
        if inst not in named:  # e.g. postings on an account that does not exist
            findings[("ledger_balance_drift", str(inst))] = Finding(
                "ledger_balance_drift",
                Severity.RED,
                inst,
                "",
                "the institution's postings do not add up to its accounts' balances and its transactions",
                {},
            )


def audit_findings(session: Session, *, now: datetime) -> list[Finding]:
    """A break anywhere in the audit trail's hash chains."""
    return [
        Finding(
            "audit_chain_broken",
            Severity.RED,
            None if b.chain == UUID(int=0) else b.chain,
            str(b.position),
            f"audit record {b.position} {b.problem}",
            {"chain": str(b.chain), "position": b.position},
        )
        for b in verify_chains(session)
    ]
