"""Bank statement files read into one shape: the documented CSV (docs/statements.md), MT940 (mt-940)
and camt.053 (lxml, escrow/bank/camt053.py). A file is read whole or refused whole, with every problem and its line."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from escrow.errors import InvalidRequest
from escrow.rules.money import format_yuan, parse_yuan
from escrow.rules.text import character_problem

FORMATS = ("csv", "mt940", "camt053")
MAX_FILE_BYTES = 20 * 1024 * 1024
# Longest text kept from a statement, generous beside the formats' own (an IBAN is 34, an MT940 :25: 35,
# a camt.053 reference 35 and a name 140, an MT940 :86: 6 lines of 65)
MAX_TEXT = {"account": 35, "reference": 140, "counterparty": 140, "memo": 1000}


@dataclass(frozen=True, slots=True)
class StatementLine:
    value_date: date
    amount_fen: int  # signed: money into the custody account is positive
    reference: str
    counterparty: str = ""
    memo: str = ""
    source_line: int = field(default=0, compare=False)


@dataclass(frozen=True, slots=True)
class ParsedStatement:
    """One account's statement for one day."""

    account: str
    currency: str
    statement_date: date
    opening_fen: int
    closing_fen: int
    lines: tuple[StatementLine, ...]
    source_line: int = field(default=0, compare=False)

    @property
    def content_hash(self) -> str:
        """The same statement gives the same hash whatever file format or encoding it came in."""
        canonical = [
            self.account,
            self.currency,
            self.statement_date.isoformat(),
            self.opening_fen,
            self.closing_fen,
            [[x.value_date.isoformat(), x.amount_fen, x.reference] for x in self.lines],
        ]
        return hashlib.sha256(json.dumps(canonical, separators=(",", ":")).encode()).hexdigest()


class MalformedStatement(InvalidRequest):
    code = "statement_malformed"
    title = "Statement file refused"

    def __init__(self, problems: list[str]) -> None:
        shown = problems[:20] + ([f"and {len(problems) - 20} more"] if len(problems) > 20 else [])
        super().__init__("the file was refused whole, nothing was imported: " + "; ".join(shown), problems=shown)


class Problems(list[str]):
    def at(self, line: int, message: str) -> None:
        self.append(f"line {line}: {message}")


def parse_statements(data: bytes, fmt: str | None = None) -> list[ParsedStatement]:
    """Every statement in the file, checked (opening + lines = closing), or MalformedStatement."""
    if len(data) > MAX_FILE_BYTES:
        raise MalformedStatement([f"the file is {len(data)} bytes; the limit is {MAX_FILE_BYTES}"])
    fmt = fmt or detect_format(data)
    if fmt not in FORMATS:
        raise MalformedStatement([f"unknown format {fmt!r}; formats: {', '.join(FORMATS)}"])
    from escrow.bank.camt053 import read_camt053  # it reads into the shapes above

    statements = {"csv": _read_csv, "mt940": _read_mt940, "camt053": read_camt053}[fmt](data)
    problems = Problems()
    if not statements:
        problems.append("the file holds no statement")
    seen: dict[tuple[str, date], int] = {}
    for s in statements:
        key = (s.account, s.statement_date)
        if key in seen:
            problems.at(s.source_line, f"a second statement for account {s.account} on {s.statement_date}")
        seen[key] = s.source_line
        moved = sum(x.amount_fen for x in s.lines)
        if s.opening_fen + moved != s.closing_fen:
            problems.at(
                s.source_line,
                f"account {s.account} on {s.statement_date}: opening {format_yuan(s.opening_fen)} plus lines "
                f"{format_yuan(moved)} is {format_yuan(s.opening_fen + moved)}, "
                f"not the closing {format_yuan(s.closing_fen)}",
            )
        if s.currency != "CNY":
            problems.at(s.source_line, f"currency {s.currency}: custody accounts are kept in CNY")
        _text_problems(s, problems)
    if problems:
        raise MalformedStatement(problems)
    return statements


def _text_problems(statement: ParsedStatement, problems: Problems) -> None:
    """Every text the statement carries that cannot be stored: a control character or too long."""
    texts = [(statement.source_line, "account", statement.account)]
    texts += [
        (x.source_line, key, getattr(x, key)) for x in statement.lines for key in ("reference", "counterparty", "memo")
    ]
    for line, key, value in texts:
        problem = character_problem(value)
        if problem:
            problems.at(line, f"the {key}: {problem}")
        elif len(value) > MAX_TEXT[key]:
            problems.at(line, f"the {key} has {len(value)} characters; at most {MAX_TEXT[key]} are kept")


def detect_format(data: bytes) -> str:
    head = data[:2048].lstrip(b"\xef\xbb\xbf \t\r\n")
    if head.startswith(b"<"):
        return "camt053"
    if re.search(rb"^:20:", data[:4096], re.MULTILINE) or head.startswith(b"{1:"):
        return "mt940"
    return "csv"


def decode_text(data: bytes) -> str:
    """UTF-8 with or without BOM; otherwise GB18030, what Excel on Chinese Windows writes."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        try:
            return data.decode("gb18030")
        except UnicodeDecodeError as e:
            line = data[: e.start].count(b"\n") + 1
            raise MalformedStatement([f"line {line}: the file is neither UTF-8 nor GB18030 text"]) from None


def yuan_fen(text: str) -> int:
    """'1,234.56' yuan as 123456 fen; ValueError with the reason otherwise."""
    return parse_yuan(text)


# ---- CSV -----------------------------------------------------------------------------------------

CSV_COLUMNS = {
    "account": ("account", "账号"),
    "date": ("date", "日期"),
    "type": ("type", "类型"),
    "amount": ("amount", "金额"),
    "reference": ("reference", "流水号"),
    "counterparty": ("counterparty", "对方户名"),
    "memo": ("memo", "摘要"),
}
CSV_TYPES = {
    "opening": "opening",
    "期初余额": "opening",
    "closing": "closing",
    "期末余额": "closing",
    "credit": "credit",
    "收入": "credit",
    "debit": "debit",
    "支出": "debit",
}


def _csv_rows(rows: Any, problems: Problems) -> Iterator[tuple[int, list[str]]]:
    """Each row after the header with its line; a row the csv module cannot read ends the file."""
    number = 1
    while True:
        number += 1
        try:
            row = next(rows)
        except StopIteration:
            return
        except csv.Error as e:  # e.g. a field over csv.field_size_limit() (131,072 characters)
            problems.at(number, f"the row cannot be read: {e}")
            return
        yield number, row


def _read_csv(data: bytes) -> list[ParsedStatement]:
    rows = csv.reader(io.StringIO(decode_text(data), newline=""))
    header = next(rows, None)
    problems = Problems()
    if header is None:
        raise MalformedStatement(["line 1: the file is empty"])
    names = {alias: key for key, aliases in CSV_COLUMNS.items() for alias in aliases}
    columns = {names.get(h.strip().lower(), names.get(h.strip())): i for i, h in enumerate(header)}
    missing = [k for k in ("account", "date", "type", "amount", "reference") if k not in columns]
    if missing:
        raise MalformedStatement(
            [f"line 1: the header lacks the column(s) {', '.join(missing)} (see docs/statements.md)"]
        )
    groups: dict[tuple[str, date], dict[str, Any]] = {}
    for number, row in _csv_rows(rows, problems):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            problems.at(number, f"{len(row)} fields where the header has {len(header)}")
            continue

        def cell(key: str, _row: list[str] = row) -> str:
            return _row[columns[key]].strip() if key in columns else ""

        kind = CSV_TYPES.get(cell("type").lower(), CSV_TYPES.get(cell("type")))
        if kind is None:
            problems.at(number, f"type {cell('type')!r} is not one of opening, credit, debit, closing")
            continue
        try:
            day = date.fromisoformat(cell("date"))
        except ValueError:
            problems.at(number, f"date {cell('date')!r} is not YYYY-MM-DD")
            continue
        try:
            amount = yuan_fen(cell("amount"))
        except ValueError as e:
            problems.at(number, f"amount: {e}")
            continue
        if not cell("account"):
            problems.at(number, "the account is empty")
            continue
        group = groups.setdefault((cell("account"), day), {"line": number, "lines": []})
        if kind in ("opening", "closing"):
            if kind in group:
                problems.at(number, f"a second {kind} balance for account {cell('account')} on {day}")
            group[kind] = amount
        elif amount <= 0:
            problems.at(number, f"a {kind} line needs a positive amount, not {cell('amount')!r}")
        elif not cell("reference"):
            problems.at(number, f"a {kind} line needs the bank reference")
        else:
            signed = amount if kind == "credit" else -amount
            group["lines"].append(
                StatementLine(day, signed, cell("reference"), cell("counterparty"), cell("memo"), number)
            )
    statements = []
    for (account, day), group in groups.items():
        absent = [k for k in ("opening", "closing") if k not in group]
        if absent:
            problems.at(group["line"], f"account {account} on {day} has no {' and no '.join(absent)} balance row")
            continue
        statements.append(
            ParsedStatement(
                account, "CNY", day, group["opening"], group["closing"], tuple(group["lines"]), group["line"]
            )
        )
    if problems:
        raise MalformedStatement(problems)
    return statements


# ---- MT940 ---------------------------------------------------------------------------------------


def _mt940_chunks(text: str) -> Iterator[tuple[int, str]]:
    """Each statement (from one :20: to the next) with the line it starts on."""
    lines = text.splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith(":20:")]
    for n, start in enumerate(starts):
        end = starts[n + 1] if n + 1 < len(starts) else len(lines)
        yield start + 1, "\n".join(lines[start:end]).rstrip("-} \n") + "\n"


# SWIFT's amounts (15d): digits, one decimal comma, at most 15 characters, 2 decimals for CNY
SWIFT_AMOUNT = re.compile(r"[0-9]+,[0-9]{0,2}")
MT940_BALANCE = re.compile(r":6[02][FM]:(?P<mark>[CD])[0-9]{6}[A-Z]{3}(?P<amount>.*)")
# :61: value date, entry date, mark (R reverses), funds code, amount, then the type (N/S/F + 3)
MT940_ENTRY = re.compile(r":61:[0-9]{6}(?:[0-9]{4})?(?P<mark>R?[CD])[A-Z]?(?P<amount>[^NSF]*?)[NSF][A-Z0-9]{3}")


def swift_fen(text: str) -> int:
    """'1500,00' as 150000 fen; ValueError for anything SWIFT does not define as an amount."""
    if len(text) > 15 or not SWIFT_AMOUNT.fullmatch(text):
        raise ValueError(f"amount {text!r} is not digits with one decimal comma, such as 1500,00")
    whole, _, cents = text.partition(",")
    return int(whole) * 100 + int(cents.ljust(2, "0"))


def _mt940_amounts(chunk: str, first: int, problems: Problems) -> dict[str, list[int]]:
    """The signed fen of the :60:, :62: and :61: fields of one statement, read as SWIFT defines them."""
    found: dict[str, list[int]] = {"60": [], "62": [], "61": []}
    for offset, line in enumerate(chunk.splitlines()):
        tag = ":" + line[1:].split(":", 1)[0] + ":"
        match = MT940_BALANCE.match(line) or MT940_ENTRY.match(line)
        if match is None:
            if tag in (":60F:", ":60M:", ":62F:", ":62M:", ":61:"):
                problems.at(first + offset, f"MT940 field not understood: {line[:60]!r}")
            continue
        try:
            fen = swift_fen(match["amount"].strip())
        except ValueError as e:
            problems.at(first + offset, f"MT940 field {tag} {e}")
            continue
        negative = match["mark"] in ("D", "RC")  # a reversed credit takes money out
        found[line[1:3]].append(-fen if negative else fen)
    return found


def _read_mt940(data: bytes) -> list[ParsedStatement]:
    import mt940

    text = decode_text(data)
    problems = Problems()
    statements = []
    for first, chunk in _mt940_chunks(text):
        before = len(problems)
        amounts = _mt940_amounts(chunk, first, problems)
        if len(problems) > before:
            continue
        transactions = mt940.models.Transactions()
        try:
            transactions.parse(chunk)
        except (RuntimeError, ValueError, KeyError) as e:
            bad = e.args[2] if isinstance(e, RuntimeError) and len(e.args) > 2 else ""
            offset = next((i for i, line in enumerate(chunk.splitlines()) if bad and bad[:20] in line), 0)
            problems.at(first + offset, f"MT940 field not understood: {str(e.args[0])[:160]}")
            continue
        head = transactions.data
        absent = [
            tag
            for tag, key in ((":25:", "account_identification"), (":60F:", "final_opening_balance"))
            if key not in head
        ]
        if "final_closing_balance" not in head:
            absent.append(":62F:")
        if absent:
            problems.at(first, f"the statement has no {', '.join(absent)} field")
            continue
        closing = head["final_closing_balance"]
        line_numbers = [first + i for i, line in enumerate(chunk.splitlines()) if line.startswith(":61:")]
        lines = []
        for number, t, fen in zip(line_numbers, transactions, amounts["61"], strict=True):
            reference = (t.data.get("customer_reference") or t.data.get("bank_reference") or "").strip()
            if not reference or reference == "NONREF":
                problems.at(number, "the :61: line has no reference")
                continue
            lines.append(
                StatementLine(
                    t.data["date"],
                    fen,
                    reference,
                    "",
                    (t.data.get("transaction_details") or "").replace("\n", " ").strip(),
                    number,
                )
            )
        statements.append(
            ParsedStatement(
                str(head["account_identification"]).strip(),
                str(closing.amount.currency),
                closing.date,
                amounts["60"][0],
                amounts["62"][-1],
                tuple(lines),
                first,
            )
        )
    if problems:
        raise MalformedStatement(problems)
    return statements
