"""Bank statements matched against the ledger's cash movements, per institution and day (Beijing time).

A cash movement is a journal transaction's postings to custody_cash. A statement line matches movements
by reference and amount: one to one first, then one line to several movements that share its reference
and sum to it (a bank that pays a batch as one). What stays unmatched on either side, and a closing
balance that differs from the ledger's custody cash by more than the unmatched items explain, are breaks.
Set-based SQL throughout: one run reconciles every due statement of a province in a few statements.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from escrow.rules.calendar import BUSINESS_TZ
from escrow.rules.money import format_yuan
from escrow.supervision.alerts import Finding, Severity

RECON_RULES = ("recon_bank_line_unmatched", "recon_ledger_unmatched", "recon_balance_differs")
RECHECK_DAYS = 7  # recent statements are matched again: the ledger may catch up with the bank late

_DUE = """
CREATE TEMP TABLE recon_due ON COMMIT DROP AS
SELECT s.institution_id, s.id, s.statement_date,
       (s.statement_date::timestamp AT TIME ZONE :tz) AS day_start,
       ((s.statement_date + 1)::timestamp AT TIME ZONE :tz) AS day_end
FROM bank_statement s
WHERE s.reconciled_at IS NULL OR s.statement_date >= :recent OR s.unmatched_ledger <> '[]'
   OR EXISTS (SELECT 1 FROM statement_line l WHERE l.institution_id = s.institution_id AND l.statement_id = s.id
              AND NOT EXISTS (SELECT 1 FROM statement_match m WHERE m.institution_id = l.institution_id
                              AND m.line_id = l.id))
"""

# The transactions of each due statement's day, and those effective since the earliest due day of each
# institution ended, read from journal_transaction_by_effective_at: a LATERAL subquery (that OFFSET 0
# keeps from being merged into the join) per statement or institution, because PostgreSQL cannot
# estimate a range join and would scan every transaction. Kept as tables and analyzed, so that what
# joins them knows how many they are.
_DAY = """
CREATE TEMP TABLE recon_day ON COMMIT DROP AS
SELECT d.institution_id, d.id AS statement_id, t.id, t.metadata ->> 'bank_reference' AS reference, t.effective_at
FROM recon_due d CROSS JOIN LATERAL (
    SELECT t.id, t.metadata, t.effective_at FROM journal_transaction t
    WHERE t.institution_id = d.institution_id AND t.effective_at >= d.day_start AND t.effective_at < d.day_end
    OFFSET 0) t
"""

_AFTER = """
CREATE TEMP TABLE recon_after ON COMMIT DROP AS
SELECT d.institution_id, t.id, t.effective_at
FROM (SELECT institution_id, min(day_end) AS day_end FROM recon_due GROUP BY institution_id) d CROSS JOIN LATERAL (
    SELECT t.id, t.effective_at FROM journal_transaction t
    WHERE t.institution_id = d.institution_id AND t.effective_at >= d.day_end OFFSET 0) t
"""

# the day's cash movements not matched yet, with the bank reference the ledger knows them by; each
# transaction's custody cash summed from its own few postings (posting_by_transaction, the account as a
# FILTER): asked for the account's postings of the transaction, PostgreSQL reads every posting of the
# custody cash account, for each transaction of the day
_MOVES = """
CREATE TEMP TABLE recon_move ON COMMIT DROP AS
SELECT t.institution_id, t.statement_id, t.id AS transaction_id, c.amount::bigint AS amount_fen,
       coalesce(t.reference, po.bank_reference, '') AS reference, t.effective_at
FROM recon_day t
JOIN account a ON a.institution_id = t.institution_id AND a.kind = 'custody_cash'
CROSS JOIN LATERAL (SELECT sum(p.amount) FILTER (WHERE p.account_id = a.id) AS amount FROM posting p
                    WHERE p.institution_id = t.institution_id AND p.transaction_id = t.id) c
LEFT JOIN payout po ON po.institution_id = t.institution_id AND po.settle_transaction_id = t.id
WHERE c.amount <> 0
  AND NOT EXISTS (SELECT 1 FROM statement_match m WHERE m.institution_id = t.institution_id
                  AND m.transaction_id = t.id)
"""

_LINES = """
CREATE TEMP TABLE recon_line ON COMMIT DROP AS
SELECT l.institution_id, l.id, l.statement_id, l.reference, l.amount_fen, l.position
FROM statement_line l JOIN recon_due d ON d.institution_id = l.institution_id AND d.id = l.statement_id
WHERE NOT EXISTS (SELECT 1 FROM statement_match m WHERE m.institution_id = l.institution_id AND m.line_id = l.id)
"""

_ONE_TO_ONE = """
INSERT INTO statement_match (institution_id, transaction_id, line_id, how, matched_at)
SELECT mv.institution_id, mv.transaction_id, ln.id, 'one_to_one', :now
FROM (SELECT *, row_number() OVER (PARTITION BY institution_id, statement_id, reference, amount_fen
                                   ORDER BY position) AS n FROM recon_line) ln
JOIN (SELECT *, row_number() OVER (PARTITION BY institution_id, statement_id, reference, amount_fen
                                   ORDER BY effective_at, transaction_id) AS n FROM recon_move) mv
  ON mv.institution_id = ln.institution_id AND mv.statement_id = ln.statement_id
 AND mv.reference = ln.reference AND mv.amount_fen = ln.amount_fen AND mv.n = ln.n
"""

_MANY_TO_ONE = """
INSERT INTO statement_match (institution_id, transaction_id, line_id, how, matched_at)
SELECT mv.institution_id, mv.transaction_id, ln.id, 'many_to_one', :now
FROM (SELECT DISTINCT ON (institution_id, statement_id, reference, amount_fen) * FROM recon_line
      ORDER BY institution_id, statement_id, reference, amount_fen, position) ln
JOIN (SELECT institution_id, statement_id, reference, sum(amount_fen) AS total FROM recon_move
      WHERE reference <> '' GROUP BY institution_id, statement_id, reference HAVING count(*) > 1) g
  ON g.institution_id = ln.institution_id AND g.statement_id = ln.statement_id
 AND g.reference = ln.reference AND g.total = ln.amount_fen
JOIN recon_move mv ON mv.institution_id = g.institution_id AND mv.statement_id = g.statement_id
 AND mv.reference = g.reference
ON CONFLICT DO NOTHING
"""

_FORGET_MATCHED = """
DELETE FROM recon_move r USING statement_match m
WHERE m.institution_id = r.institution_id AND m.transaction_id = r.transaction_id;
DELETE FROM recon_line r USING statement_match m WHERE m.institution_id = r.institution_id AND m.line_id = r.id
"""


# What the ledger says at the end of each due day: custody cash, and what families are owed (prepaid and
# refund_payable), as the accounts' cached balances less the postings of the transactions effective since
# the day ended (recon_after, the last days only). The job reads one snapshot throughout
# (jobs.SNAPSHOT_JOBS), so balances and postings agree. A cached balance is kept by the trigger of the
# statement that posts, and check_invariants holds it to its postings; so that a drifted cache is reported
# there alone, and not again as the bank's difference, every institution whose figures would raise an
# alert here or in the risk rules (the bank's closing balance is not the ledger's, or is below what
# families are owed) has them summed again from its postings (_RECOUNT), and stored again.
def _figures(institutions: str, posted: str) -> str:
    """Custody cash and what families are owed, per institution of the `institutions` subquery, with each
    account's postings summed as `posted` (an expression over the account `a`)."""
    family = "a.kind IN ('prepaid', 'refund_payable')"
    return f"""
SELECT d.institution_id,
       coalesce(sum(a.posted) FILTER (WHERE a.kind = 'custody_cash'), 0) AS custody,
       coalesce(sum(a.posted) FILTER (WHERE {family}), 0) AS family
FROM ({institutions}) d
CROSS JOIN LATERAL (SELECT a.kind, {posted} AS posted FROM account a
                    WHERE a.institution_id = d.institution_id AND (a.kind = 'custody_cash' OR {family})) a
GROUP BY d.institution_id
"""  # noqa: S608 (constant parts only)


_BOOKS = "CREATE TEMP TABLE recon_books ON COMMIT DROP AS" + _figures(  # noqa: S608
    "SELECT DISTINCT institution_id FROM recon_due", "a.balance * CASE a.normal_side WHEN 'debit' THEN 1 ELSE -1 END"
)

# the postings of each account read from posting_by_account, which holds their amounts (neither the
# table nor journal_transaction is visited)
_RECOUNT = (
    "UPDATE recon_books b SET custody = x.custody, family = x.family FROM ("  # noqa: S608
    + _figures(
        "SELECT DISTINCT s.institution_id FROM recon_due d"
        " JOIN bank_statement s ON s.institution_id = d.institution_id AND s.id = d.id"
        " WHERE s.closing_fen <> s.ledger_closing_fen OR s.closing_fen < s.family_owed_fen",
        "(SELECT sum(p.amount) FROM posting p WHERE p.institution_id = a.institution_id AND p.account_id = a.id)",
    )
    + ") x WHERE b.institution_id = x.institution_id RETURNING b.institution_id"
)

_AFTER_LEGS = """
CREATE TEMP TABLE recon_after_leg ON COMMIT DROP AS
SELECT t.institution_id, t.effective_at, p.account_id, p.amount
FROM recon_after t JOIN posting p ON p.institution_id = t.institution_id AND p.transaction_id = t.id
"""

_AFTER_SUMS = """
CREATE TEMP TABLE recon_after_sum ON COMMIT DROP AS
SELECT l.institution_id, l.effective_at,
       coalesce(sum(l.amount) FILTER (WHERE a.kind = 'custody_cash'), 0) AS custody,
       coalesce(sum(l.amount) FILTER (WHERE a.kind IN ('prepaid', 'refund_payable')), 0) AS family
FROM recon_after_leg l JOIN account a ON a.institution_id = l.institution_id AND a.id = l.account_id
GROUP BY l.institution_id, l.effective_at
"""

_STORE = """
UPDATE bank_statement s
SET reconciled_at = :now,
    ledger_closing_fen = (coalesce(b.custody, 0) - coalesce(l.custody, 0))::bigint,
    family_owed_fen = -(coalesce(b.family, 0) - coalesce(l.family, 0))::bigint,
    unmatched_ledger = coalesce(
        (SELECT jsonb_agg(jsonb_build_object('transaction_id', r.transaction_id, 'amount_fen', r.amount_fen,
                                             'reference', r.reference) ORDER BY r.effective_at, r.transaction_id)
         FROM recon_move r WHERE r.institution_id = s.institution_id AND r.statement_id = s.id), '[]')
FROM recon_due d
LEFT JOIN recon_books b ON b.institution_id = d.institution_id
LEFT JOIN (SELECT d.id, sum(m.custody) AS custody, sum(m.family) AS family FROM recon_due d
           JOIN recon_after_sum m ON m.institution_id = d.institution_id AND m.effective_at >= d.day_end
           GROUP BY d.id) l ON l.id = d.id
WHERE s.institution_id = d.institution_id AND s.id = d.id
"""


# the statements of the institutions recounted are stored again; the others are done
_ONLY_RECOUNTED = "DELETE FROM recon_due WHERE institution_id <> ALL(:recounted)"

_TABLES = "recon_due, recon_day, recon_after, recon_move, recon_line, recon_books, recon_after_leg, recon_after_sum"


def reconcile(session: Session, *, now: datetime) -> dict[str, int]:
    """Match every due statement and store what the ledger said that day. Safe to run twice."""
    params: dict[str, Any] = {
        "tz": str(BUSINESS_TZ),
        "now": now,
        "recent": now.astimezone(BUSINESS_TZ).date() - timedelta(days=RECHECK_DAYS),
    }
    session.execute(text(f"DROP TABLE IF EXISTS {_TABLES}"))
    session.execute(text(_DUE), params)
    session.execute(text("ANALYZE recon_due"))  # a temporary table has no statistics until asked
    session.execute(text(_DAY))
    session.execute(text(_AFTER))
    session.execute(text("ANALYZE recon_day, recon_after"))
    session.execute(text(_MOVES), params)
    session.execute(text(_LINES))
    one = session.execute(text(_ONE_TO_ONE), params).rowcount  # type: ignore[attr-defined]
    session.execute(text(_FORGET_MATCHED))
    many = session.execute(text(_MANY_TO_ONE), params).rowcount  # type: ignore[attr-defined]
    session.execute(text(_FORGET_MATCHED))
    session.execute(text(_BOOKS))
    session.execute(text("ANALYZE recon_books"))
    session.execute(text(_AFTER_LEGS))
    session.execute(text("ANALYZE recon_after_leg"))
    session.execute(text(_AFTER_SUMS))
    session.execute(text("ANALYZE recon_after_sum"))
    statements = session.execute(text(_STORE), params).rowcount  # type: ignore[attr-defined]
    recounted = list(session.scalars(text(_RECOUNT)))
    if recounted:
        session.execute(text(_ONLY_RECOUNTED), {"recounted": recounted})
        session.execute(text(_STORE), params)
    session.execute(text(f"DROP TABLE {_TABLES}"))
    return {"statements": statements, "matched_one_to_one": one, "matched_many_to_one": many}


def reconciliation_findings(session: Session) -> list[Finding]:
    """The breaks in what is reconciled: unmatched lines on either side, unexplained balance differences."""
    findings = [
        Finding(
            "recon_bank_line_unmatched",
            Severity.RED,
            inst,
            str(line_id),
            f"the bank shows {format_yuan(amount)} yuan ref {reference} on {day} that the ledger has no movement for",
            {"statement_date": day.isoformat(), "amount_fen": amount, "reference": reference},
        )
        for inst, line_id, day, amount, reference in session.execute(
            text(
                "SELECT l.institution_id, l.id, s.statement_date, l.amount_fen, l.reference FROM statement_line l"
                " JOIN bank_statement s ON s.institution_id = l.institution_id AND s.id = l.statement_id"
                " WHERE s.reconciled_at IS NOT NULL AND NOT EXISTS (SELECT 1 FROM statement_match m"
                "  WHERE m.institution_id = l.institution_id AND m.line_id = l.id)"
            )
        )
    ]
    findings += [
        Finding(
            "recon_ledger_unmatched",
            Severity.RED,
            inst,
            str(move["transaction_id"]),
            f"the ledger moved {format_yuan(move['amount_fen'])} yuan through custody cash on {day}"
            f" (ref {move['reference'] or 'none'}) and the bank's statement does not show it",
            {
                "statement_date": day.isoformat(),
                "transaction_id": move["transaction_id"],
                "amount_fen": move["amount_fen"],
                "reference": move["reference"],
            },
        )
        for inst, day, move in session.execute(
            text(
                "SELECT s.institution_id, s.statement_date, e FROM bank_statement s,"
                " jsonb_array_elements(s.unmatched_ledger) e WHERE s.unmatched_ledger <> '[]'"
            )
        )
    ]
    findings += [
        Finding(
            "recon_balance_differs",
            Severity.RED,
            inst,
            "",
            f"the bank's closing balance on {day} is {format_yuan(closing)} yuan and the ledger's custody cash"
            f" {format_yuan(ledger)}: {format_yuan(closing - ledger - explained)} yuan more than the unmatched"
            " items explain",
            {"statement_date": day.isoformat(), "bank_fen": closing, "ledger_fen": ledger, "explained_fen": explained},
        )
        for inst, day, closing, ledger, explained in session.execute(text(_LATEST_DIFFERENCES))
    ]
    return findings


# the latest reconciled statement of each institution, and how much of its difference from the ledger
# the unmatched items (bank lines less ledger movements) of it and every earlier statement explain
_LATEST_DIFFERENCES = """
WITH latest AS (
    SELECT DISTINCT ON (institution_id) institution_id, statement_date, closing_fen, ledger_closing_fen
    FROM bank_statement WHERE reconciled_at IS NOT NULL ORDER BY institution_id, statement_date DESC
), explained AS (
    SELECT s.institution_id,
           coalesce(sum((SELECT coalesce(sum(l.amount_fen), 0) FROM statement_line l
                         WHERE l.institution_id = s.institution_id AND l.statement_id = s.id
                         AND NOT EXISTS (SELECT 1 FROM statement_match m
                                         WHERE m.institution_id = l.institution_id AND m.line_id = l.id))
                        - (SELECT coalesce(sum((e ->> 'amount_fen')::bigint), 0)
                           FROM jsonb_array_elements(s.unmatched_ledger) e)), 0) AS fen
    FROM bank_statement s JOIN latest USING (institution_id)
    WHERE s.statement_date <= latest.statement_date AND s.reconciled_at IS NOT NULL
    GROUP BY s.institution_id
)
SELECT latest.institution_id, statement_date, closing_fen, ledger_closing_fen, explained.fen::bigint
FROM latest JOIN explained USING (institution_id)
WHERE closing_fen - ledger_closing_fen <> explained.fen
"""
