"""What a truthful custody bank would send: a day's statement built from the ledger's cash movements,
written in the documented CSV. The demo district and the benchmarks deliver their statements this way."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from datetime import date, timedelta
from uuid import UUID

from sqlalchemy import text
from sqlalchemy.orm import Session

from escrow.bank.formats import ParsedStatement, StatementLine
from escrow.rules.calendar import local_day_start
from escrow.rules.money import format_yuan


def ledger_statements(
    session: Session, *, day: date, institution_ids: Iterable[UUID] | None = None
) -> list[ParsedStatement]:
    """Each institution's custody cash on `day` as its bank would report it, one query for all."""
    start, end = local_day_start(day), local_day_start(day + timedelta(days=1))
    ids = list(institution_ids) if institution_ids is not None else None
    rows = session.execute(
        text(
            "SELECT i.id, i.custody_account, t.id AS txn, t.effective_at < :start AS before,"
            " sum(p.amount)::bigint AS amount,"
            " coalesce(t.metadata ->> 'bank_reference', po.bank_reference, '') AS reference"
            " FROM institution i JOIN account a ON a.institution_id = i.id AND a.code = 'custody_cash'"
            " LEFT JOIN posting p ON p.institution_id = i.id AND p.account_id = a.id"
            " LEFT JOIN journal_transaction t ON t.institution_id = p.institution_id AND t.id = p.transaction_id"
            " LEFT JOIN payout po ON po.institution_id = t.institution_id AND po.settle_transaction_id = t.id"
            " WHERE (CAST(:ids AS uuid[]) IS NULL OR i.id = ANY(CAST(:ids AS uuid[])))"
            " AND (t.id IS NULL OR t.effective_at < :end)"
            " GROUP BY i.id, i.custody_account, t.institution_id, t.id, po.bank_reference"
            " ORDER BY i.id, t.effective_at, t.id"
        ),
        {"start": start, "end": end, "ids": ids},
    )
    books: dict[UUID, tuple[str, list[int], list[StatementLine]]] = {}
    for inst, account, txn, before, amount, reference in rows:
        opening, lines = books.setdefault(inst, (account, [0], []))[1:]
        if txn is None or not amount:
            continue
        if before:
            opening[0] += amount
        else:
            lines.append(StatementLine(day, int(amount), reference or f"TXN-{txn}"))
    return [
        ParsedStatement(account, "CNY", day, opening[0], opening[0] + sum(x.amount_fen for x in lines), tuple(lines))
        for account, opening, lines in books.values()
    ]


CSV_HEADER = ("account", "date", "type", "amount", "reference", "counterparty", "memo")


def statements_csv(statements: Iterable[ParsedStatement]) -> bytes:
    """The documented CSV (docs/statements.md), UTF-8."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_HEADER)
    for s in statements:
        day = s.statement_date.isoformat()
        writer.writerow((s.account, day, "opening", format_yuan(s.opening_fen), "", "", ""))
        for line in s.lines:
            kind = "credit" if line.amount_fen > 0 else "debit"
            writer.writerow(
                (s.account, day, kind, format_yuan(abs(line.amount_fen)), line.reference, line.counterparty, line.memo)
            )
        writer.writerow((s.account, day, "closing", format_yuan(s.closing_fen), "", "", ""))
    return out.getvalue().encode()
