"""Reports as files: CSV (UTF-8 with a BOM, so Excel on Chinese Windows reads it) and XLSX.

Every amount is given twice: whole fen, and yuan with two decimals (numbers formatted '0.00' in XLSX).
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from decimal import Decimal
from itertools import chain, groupby

from escrow.rules.money import format_yuan
from escrow.supervision.reports import ContractHeld, Report

CSV_MEDIA_TYPE = "text/csv"
XLSX_MEDIA_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True, slots=True)
class Table:
    """Rows of text cells followed by amounts in fen, under `text` and `money` column names."""

    sheet: str
    text: tuple[str, ...]
    money: tuple[str, ...]
    rows: list[tuple[list[str], list[int]]] = field(default_factory=list)

    def header(self) -> list[str]:
        return [*self.text, *chain.from_iterable((f"{m}_fen", f"{m}_yuan") for m in self.money)]


def report_table(report: Report, sheet: str) -> Table:
    """Institutions by jurisdiction, each jurisdiction followed by its total, then the grand total."""
    stamp = report.as_of.isoformat()
    table = Table(sheet, ("as_of", "level", "jurisdiction_code", "institution_id", "institution_name"), report.columns)
    totals = report.by_jurisdiction()
    for code, rows in groupby(report.institutions, key=lambda r: r.jurisdiction_code):  # sorted by jurisdiction
        for row in rows:
            fen = [row.fen[c] for c in report.columns]
            table.rows.append(([stamp, "institution", code, str(row.institution_id), row.name], fen))
        table.rows.append(([stamp, "jurisdiction", code, "", ""], [totals[code][c] for c in report.columns]))
    grand = report.total()
    table.rows.append(([stamp, "total", "", "", ""], [grand[c] for c in report.columns]))
    return table


def contracts_table(contracts: list[ContractHeld], as_of: str) -> Table:
    table = Table(
        "contracts",
        ("as_of", "institution_id", "contract_id", "course_id", "student_name", "status", "signed_at"),
        ("collected", "held"),
    )
    for c in contracts:
        text = [as_of, str(c.institution_id), str(c.contract_id), str(c.course_id), c.student_name, c.status]
        table.rows.append(([*text, c.signed_at.isoformat()], [c.collected_fen, c.held_fen]))
    return table


def to_csv(table: Table) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(table.header())
    for text, fen in table.rows:
        amounts = chain.from_iterable((f, format_yuan(f)) for f in fen)
        writer.writerow([*(_inert(t) for t in text), *amounts])
    return out.getvalue().encode("utf-8-sig")


def to_xlsx(table: Table) -> bytes:
    from openpyxl import Workbook  # imported when asked for: 0.2 s of every worker's start otherwise

    book = Workbook()
    sheet = book.active
    assert sheet is not None, "a new workbook has a sheet"
    sheet.title = table.sheet
    sheet.append(table.header())
    for text, fen in table.rows:
        sheet.append([*text, *chain.from_iterable((f, Decimal(f).scaleb(-2)) for f in fen)])
        cells = sheet[sheet.max_row]
        for cell in cells[: len(text)]:
            cell.data_type = "s"  # text stays text: a name starting with '=' is not a formula
        for index, cell in enumerate(cells[len(text) :]):
            cell.number_format = "0" if index % 2 == 0 else "0.00"
    sheet.freeze_panes = "A2"
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def _inert(text: str) -> str:
    """A cell Excel would read as a formula is quoted as text (CSV injection)."""
    return "'" + text if text.startswith(_FORMULA_START) else text
