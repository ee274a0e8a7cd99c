"""Reports as files an officer can hand on: a title, the instant in Beijing time, headers in the reader's
language, yuan with thousands separators, sized columns, a frozen header, and the totals."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal

from api.web.formats import beijing, yuan
from escrow.supervision.reports import Report

Translate = Callable[[str], str]
YUAN_FORMAT = "#,##0.00"
HEADER_ROW = 4  # title, instant, blank, header


def column_labels(report: Report, _: Translate) -> list[str]:
    labels = {
        "held": _("Held for families"),
        "releasable": _("Releasable"),
        "payout_pending": _("Payout pending"),
        "refund_payable": _("Refund payable"),
        "custody_cash": _("Custody cash"),
        "days_0_30": _("0-30 days"),
        "days_31_90": _("31-90 days"),
        "days_over_90": _("Over 90 days"),
    }
    return [_("Jurisdiction"), _("Institution"), *(f"{labels[c]} ({_('yuan')})" for c in report.columns)]


def _rows(report: Report, _: Translate) -> list[tuple[list[str], list[int]]]:
    rows = [([r.jurisdiction_code, r.name], [r.fen[c] for c in report.columns]) for r in report.institutions]
    total = report.total()
    return [*rows, ([_("Total"), ""], [total[c] for c in report.columns])]


def report_csv(report: Report, title: str, _: Translate) -> bytes:
    """UTF-8 with a BOM (Excel on Chinese Windows reads it so); amounts as text with separators."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([title])
    writer.writerow([f"{_('As of')} {beijing(report.as_of, '%Y-%m-%d %H:%M:%S')} ({_('Beijing time')})"])
    writer.writerow(column_labels(report, _))
    for text, fen in _rows(report, _):
        writer.writerow([*(_inert(t) for t in text), *(yuan(f) for f in fen)])
    return out.getvalue().encode("utf-8-sig")


def report_xlsx(report: Report, title: str, _: Translate) -> bytes:
    from openpyxl import Workbook
    from openpyxl.styles import Font
    from openpyxl.utils import get_column_letter

    book = Workbook()
    sheet = book.active
    assert sheet is not None, "a new workbook has a sheet"
    sheet.title = title[:31]
    sheet.append([title])
    sheet["A1"].font = Font(bold=True, size=14)
    sheet.append([f"{_('As of')} {beijing(report.as_of, '%Y-%m-%d %H:%M:%S')} ({_('Beijing time')})"])
    sheet.append([])
    labels = column_labels(report, _)
    sheet.append(labels)
    for cell in sheet[HEADER_ROW]:
        cell.font = Font(bold=True)
    rows = _rows(report, _)
    for index, (text, fen) in enumerate(rows):
        sheet.append([*text, *(Decimal(f).scaleb(-2) for f in fen)])
        cells = sheet[sheet.max_row]
        for cell in cells[: len(text)]:
            cell.data_type = "s"  # a name starting with '=' stays text
        for cell in cells[len(text) :]:
            cell.number_format = YUAN_FORMAT
            if index == len(rows) - 1:
                cell.font = Font(bold=True)
    sheet.cell(sheet.max_row, 1).font = Font(bold=True)
    widths = [10, max([len(r.name) for r in report.institutions] + [8]) * 2 + 2, *[18] * len(report.columns)]
    for column, width in enumerate(widths, start=1):
        sheet.column_dimensions[get_column_letter(column)].width = width
    sheet.freeze_panes = f"A{HEADER_ROW + 1}"
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def stamp(instant: datetime) -> str:
    return beijing(instant, "%Y%m%d-%H%M")


def _inert(text: str) -> str:
    return "'" + text if text.startswith(("=", "+", "-", "@", "\t", "\r")) else text
