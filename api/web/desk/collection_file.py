"""A file of collections read line by line: every bad line named (its number, the field, what is wrong)
before the batch use case is asked to keep anything; and the batch's own refusals said the same way.

The file is a CSV with a header (English or Chinese column names), UTF-8 with or without BOM, or GB18030
(what Excel on Chinese Windows writes). The desk's template lists the contracts in force with what is left.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from api.web.desk.common import Translate, beijing_instant, fen_of, to_uuid
from api.web.formats import yuan
from escrow.flows.batches import MAX_ITEMS, BatchItem

# 1,000 lines of a hundred characters fit five times over; a body over the desk's 1 MB is refused before it is read
MAX_FILE_BYTES = 512 * 1024
COLUMNS = {
    "contract_id": ("contract_id", "合同编号"),
    "amount": ("amount", "金额"),
    "bank_reference": ("bank_reference", "银行流水号"),
    "collected_at": ("collected_at", "收款时间"),
    "student": ("student", "学生"),
}
REQUIRED = ("contract_id", "amount", "bank_reference")
INFORMATIONAL = {"course", "课程", "left_to_collect", "待收金额"}  # the template's, for the reader only
_REFERENCE = re.compile(r"^[A-Za-z0-9_./:-]{1,64}$")


@dataclass(frozen=True, slots=True)
class LineProblem:
    line: int
    field: str  # a column, or "" for the file as a whole
    message: str
    lang: str | None = None  # "en" where the core's own sentence is shown as it is


@dataclass(frozen=True, slots=True)
class Line:
    number: int  # in the file, the header being line 1
    contract_id: UUID
    amount_fen: int
    bank_reference: str
    collected_at: datetime | None
    student: str

    def item(self) -> BatchItem:
        """A batch item keyed by its bank reference: the file sent again replays, never collects twice."""
        return BatchItem(
            self.contract_id, self.amount_fen, self.bank_reference, self.collected_at, f"desk-csv:{self.bank_reference}"
        )


def read_file(data: bytes, _: Translate, now: datetime) -> tuple[list[Line], list[LineProblem]]:
    """The file's lines and every problem of its form; a problem of the file as a whole is on line 1."""
    if len(data) > MAX_FILE_BYTES:
        return [], [LineProblem(1, "", _("The file is larger than 512 KB: split it into smaller files."))]
    text = _decoded(data)
    if text is None:
        return [], [LineProblem(1, "", _("The file is neither UTF-8 nor GB18030 text: save it as CSV (UTF-8)."))]
    rows = [(n, row) for n, row in enumerate(csv.reader(io.StringIO(text)), 1) if any(c.strip() for c in row)]
    if not rows:
        return [], [LineProblem(1, "", _("The file is empty."))]
    header_line, header = rows[0]
    columns, problems = _columns(header, header_line, _)
    if problems:
        return [], problems
    if len(rows) - 1 > MAX_ITEMS:
        return [], [LineProblem(1, "", _("A file holds at most %(n)s lines of collections.") % {"n": f"{MAX_ITEMS:,}"})]
    if len(rows) == 1:
        return [], [LineProblem(1, "", _("The file has a header but no collections."))]
    lines: list[Line] = []
    seen: dict[str, int] = {}
    for number, row in rows[1:]:
        line, found = _line(number, row, columns, seen, _, now)
        problems += found
        if line is not None:
            lines.append(line)
    return lines, problems


def _decoded(data: bytes) -> str | None:
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    return None


def _columns(header: list[str], line: int, _: Translate) -> tuple[dict[str, int], list[LineProblem]]:
    names = {alias: key for key, aliases in COLUMNS.items() for alias in aliases}
    columns: dict[str, int] = {}
    problems = []
    for index, cell in enumerate(header):
        name = cell.strip().lower() if cell.strip().isascii() else cell.strip()
        if name in names:
            columns[names[name]] = index
        elif name not in INFORMATIONAL:
            problems.append(LineProblem(line, cell.strip(), _("This column is not one the desk reads.")))
    for key in REQUIRED:
        if key not in columns:
            problems.append(LineProblem(line, key, _("The header has no such column: it is needed.")))
    return columns, problems


def _line(
    number: int, row: list[str], columns: dict[str, int], seen: dict[str, int], _: Translate, now: datetime
) -> tuple[Line | None, list[LineProblem]]:
    def cell(key: str) -> str:
        index = columns.get(key)
        return row[index].strip() if index is not None and index < len(row) else ""

    problems = []
    contract_id = to_uuid(cell("contract_id")) if cell("contract_id") else None
    if contract_id is None:
        problems.append(LineProblem(number, "contract_id", _("Give the contract number, as in the template.")))
    amount = fen_of(cell("amount"))
    if amount is None:
        problems.append(LineProblem(number, "amount", _("Give a positive amount in yuan, for example 6000.00.")))
    reference = cell("bank_reference")
    if not _REFERENCE.match(reference):
        problems.append(
            LineProblem(number, "bank_reference", _("Give the bank's reference: 1 to 64 letters, digits or _ . / : -"))
        )
    elif reference in seen:
        message = _("This bank reference is on line %(line)s too: a payment is registered once.") % {
            "line": seen[reference]
        }
        problems.append(LineProblem(number, "bank_reference", message))
    else:
        seen[reference] = number
    collected_at = _instant(cell("collected_at"), number, problems, _, now)
    if problems or contract_id is None or amount is None:
        return None, problems
    return Line(number, contract_id, amount, reference, collected_at, cell("student")), []


def _instant(text: str, number: int, problems: list[LineProblem], _: Translate, now: datetime) -> datetime | None:
    if not text:
        return None
    instant = beijing_instant(text) or _iso(text)
    if instant is None:
        problems.append(
            LineProblem(number, "collected_at", _("Give a date and time, for example 2026-12-01 10:30 (Beijing time)."))
        )
    elif instant > now:
        problems.append(LineProblem(number, "collected_at", _("This time is in the future.")))
    return instant


def _iso(text: str) -> datetime | None:
    try:
        instant = datetime.fromisoformat(text)
    except ValueError:
        return None
    return instant if instant.tzinfo is not None else None


def student_problems(lines: list[Line], students: dict[UUID, str], _: Translate) -> list[LineProblem]:
    """Lines naming a contract the institution does not have, or a student other than the contract's."""
    problems = []
    for line in lines:
        name = students.get(line.contract_id)
        if name is None:
            problems.append(LineProblem(line.number, "contract_id", _("None of your contracts has this number.")))
        elif line.student and line.student != name:
            message = _("This contract is %(name)s's, not %(given)s's: is the line out of place?") % {
                "name": name,
                "given": line.student,
            }
            problems.append(LineProblem(line.number, "student", message))
    return problems


# The core's sentences for a refused collection, said in the reader's words: (pattern, field, kind);
# a group in the pattern is an amount in fen the message names
_REFUSALS = (
    (r"contract \S+ is \w+; it takes no more collections", "contract_id", "ended"),
    (r"bank reference \S+ was already collected", "bank_reference", "duplicate"),
    (r"exceeds the non-subject cap of (\d+) fen", "amount", "non_subject_cap"),
    (r"above its price of \d+ fen \((-?\d+) fen left\)", "amount", "over_price"),
    (r"does not exist or is outside your scope", "contract_id", "unknown"),
    (r"idempotency key .* was first used", "bank_reference", "reused"),
)


def refusal_message(detail: str, _: Translate) -> tuple[str, str, str | None]:
    """(field, message, lang) for one refusal of the collection use cases; an unknown one is kept in English."""
    for pattern, field, kind in _REFUSALS:
        found = re.search(pattern, detail)
        if found:
            fen = int(found.group(1)) if found.groups() else 0
            return field, _refusal_text(kind, yuan(fen), _), None
    return "", detail, "en"


def _refusal_text(kind: str, money: str, _: Translate) -> str:
    texts = {
        "ended": _("This contract has ended: it takes no more collections."),
        "duplicate": _("A payment with this bank reference was already registered."),
        "non_subject_cap": _("More than the %(money)s yuan a non-subject course may collect at once."),
        "over_price": _("More than is left to collect on this contract (%(money)s yuan left)."),
        "unknown": _("None of your contracts has this number."),
        "reused": _("This bank reference was registered before with another contract, amount or time."),
    }
    return texts[kind] % {"money": money}


def batch_problems(problems: list[str], lines: list[Line], _: Translate) -> list[LineProblem]:
    """The batch's refusals ('item N: ...', N counting the lines sent) named by the file's line numbers."""
    found = []
    for problem in problems:
        item = re.match(r"item (\d+): (.*)", problem)
        if item is None or int(item.group(1)) >= len(lines):
            found.append(LineProblem(1, "", problem, "en"))
            continue
        field, message, lang = refusal_message(item.group(2), _)
        found.append(LineProblem(lines[int(item.group(1))].number, field, message, lang))
    return sorted(found, key=lambda p: p.line)
