"""The books checked against themselves: each check returns findings, one per thing wrong."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from sqlalchemy import text
from sqlalchemy.orm import Session

from escrow.alerts import Finding, Severity
from escrow.audit import verify_chains

LEDGER_RULES = ("ledger_unbalanced", "ledger_balance_drift", "ledger_negative_balance", "custody_identity_broken")


# Nearly every transaction is two postings in one currency that cancel out. One pass over the postings in
# the order of posting_by_transaction (which holds their currency and amount), merged with the
# transactions, keeps only the others: no postings, a currency with other than two, or two that do not
# cancel. Only those are summed exactly. The postings are asked for in that order (ORDER BY in a
# subquery) because, given a large work_mem, PostgreSQL would rather hash millions of groups, several
# times slower; and made distinct only afterwards, because asked for distinct rows at once it merges the
# other way round and buffers millions of groups to do it.
_UNBALANCED = """
WITH suspect AS MATERIALIZED (
    SELECT t.institution_id, t.id FROM journal_transaction t
    LEFT JOIN (SELECT institution_id, transaction_id, count(*) AS n, min(amount) AS low, max(amount) AS high
               FROM (SELECT institution_id, transaction_id, currency, amount FROM posting
                     ORDER BY institution_id, transaction_id, currency) p
               GROUP BY institution_id, transaction_id, currency) c
      ON c.institution_id = t.institution_id AND c.transaction_id = t.id
    WHERE c.n IS NULL OR c.n <> 2 OR CASE WHEN c.high > 0 THEN c.low <> -c.high ELSE true END  -- -high never overflows
), flagged AS (
    SELECT DISTINCT institution_id, id FROM suspect
), sums AS (
    SELECT p.institution_id, p.transaction_id, sum(p.amount) AS total, count(*) AS n
    FROM flagged f JOIN posting p ON p.institution_id = f.institution_id AND p.transaction_id = f.id
    GROUP BY p.institution_id, p.transaction_id, p.currency
)
SELECT t.institution_id, t.id, coalesce(s.legs, 0), coalesce(s.worst, 0) FROM flagged t
LEFT JOIN (SELECT institution_id, transaction_id, sum(n) AS legs, max(abs(total)) AS worst FROM sums
           GROUP BY institution_id, transaction_id) s ON s.institution_id = t.institution_id AND s.transaction_id = t.id
WHERE coalesce(s.legs, 0) < 2 OR s.worst > 0
"""


def ledger_findings(session: Session, *, now: datetime) -> list[Finding]:
    """Unbalanced transactions, cached balances that drifted from their postings, forbidden negative
    balances, and institutions whose custody cash is not what they owe (when nothing above explains it)."""
    findings: dict[tuple[str, str], Finding] = {}
    for inst, txn, legs, worst in session.execute(text(_UNBALANCED)):
        findings[("ledger_unbalanced", str(txn))] = Finding(
            "ledger_unbalanced",
            Severity.RED,
            inst,
            str(txn),
            f"journal transaction {txn} has {legs} posting(s) and is off by {worst} fen",
            {"postings": legs, "off_by_fen": worst},
        )
    for inst, account, code, cached, summed in session.execute(
        text(  # summed in the order of posting_by_account, which holds the amounts; hashed, several times slower
            "SELECT a.institution_id, a.id, a.code, a.balance,"
            " coalesce(s.total, 0) * CASE a.normal_side WHEN 'debit' THEN 1 ELSE -1 END FROM account a"
            " LEFT JOIN (SELECT institution_id, account_id, sum(amount) AS total FROM (SELECT institution_id,"
            "  account_id, amount FROM posting ORDER BY institution_id, account_id) p"
            "  GROUP BY institution_id, account_id) s ON s.institution_id = a.institution_id AND s.account_id = a.id"
            " WHERE a.balance <> coalesce(s.total, 0) * CASE a.normal_side WHEN 'debit' THEN 1 ELSE -1 END"
        )
    ):
        findings[("ledger_balance_drift", str(account))] = Finding(
            "ledger_balance_drift",
            Severity.RED,
            inst,
            str(account),
            f"account {code} caches {cached} fen but its postings sum to {summed}",
            {"code": code, "cached_fen": cached, "postings_fen": summed},
        )
    for inst, account, code, balance in session.execute(
        text("SELECT institution_id, id, code, balance FROM account WHERE NOT allow_negative AND balance < 0")
    ):
        findings[("ledger_negative_balance", str(account))] = Finding(
            "ledger_negative_balance",
            Severity.RED,
            inst,
            str(account),
            f"account {code} may not go below zero but holds {balance} fen",
            {"code": code, "balance_fen": balance},
        )
    explained = {f.institution_id for f in findings.values()}
    for inst, cash, owed in session.execute(
        text(
            "SELECT institution_id, coalesce(sum(balance) FILTER (WHERE code = 'custody_cash'), 0),"
            " coalesce(sum(balance) FILTER (WHERE split_part(code, ':', 1) IN"
            " ('prepaid', 'releasable', 'payout_pending', 'refund_payable')), 0)"
            " FROM account GROUP BY institution_id"
        )
    ):
        if cash != owed and inst not in explained:  # an echo of a fault above is not a second alert
            findings[("custody_identity_broken", str(inst))] = Finding(
                "custody_identity_broken",
                Severity.RED,
                inst,
                "",
                f"custody cash {cash} fen is not what the institution owes ({owed} fen)",
                {"custody_cash_fen": cash, "owed_fen": owed},
            )
    return list(findings.values())


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
