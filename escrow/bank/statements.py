"""Custody bank statements: imported whole or not at all, once. Re-importing the same statement, in any
format or encoding, changes nothing; a different statement for an account and day already imported is
refused."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from uuid import UUID

from sqlalchemy import insert, select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from escrow.access.audit import note
from escrow.access.callers import Caller, Role, institution_scope, require_role
from escrow.bank.formats import ParsedStatement, detect_format, parse_statements
from escrow.db.paging import Page, keyset
from escrow.db.records import BankStatement, Institution, Jurisdiction, StatementLineRecord
from escrow.errors import Conflict, InvalidRequest, NotFound
from escrow.ids import new_id
from escrow.registry.institutions import visible_institution


@dataclass(frozen=True, slots=True)
class Imported:
    statement: BankStatement
    replayed: bool


def import_statements(
    session: Session, *, caller: Caller, data: bytes, fmt: str | None, now: datetime
) -> list[Imported]:
    """Read a statement file and store each statement in it; all or nothing."""
    require_role(caller, Role.BANK, Role.REGULATOR)
    fmt = fmt or detect_format(data)
    parsed = parse_statements(data, fmt)
    owners = _owners(session, caller, parsed)
    return [_store(session, caller, owners[s.account], s, fmt, now) for s in parsed]


def _owners(session: Session, caller: Caller, parsed: list[ParsedStatement]) -> dict[str, UUID]:
    """The institution whose custody account each statement is for, within the caller's scope."""
    accounts = sorted({s.account for s in parsed})
    found: dict[str, list[UUID]] = {}
    for account, institution_id in session.execute(
        select(Institution.custody_account, Institution.id).where(
            Institution.custody_account.in_(accounts), institution_scope(caller)
        )
    ):
        found.setdefault(account, []).append(institution_id)
    unknown = [f"line {s.source_line}: account {s.account}" for s in parsed if s.account not in found]
    if unknown:
        raise NotFound(
            "the file was refused whole, nothing was imported: not the custody account of an institution you may"
            " see: " + "; ".join(unknown)
        )
    shared = [f"line {s.source_line}: account {s.account}" for s in parsed if len(found[s.account]) > 1]
    if shared:
        raise InvalidRequest(
            "the file was refused whole: these accounts are kept for several institutions at different banks;"
            " import the file as the custody bank: " + "; ".join(shared)
        )
    return {account: ids[0] for account, ids in found.items()}


def _store(
    session: Session, caller: Caller, institution_id: UUID, s: ParsedStatement, fmt: str, now: datetime
) -> Imported:
    statement_id = new_id()
    inserted = session.scalar(
        pg_insert(BankStatement)
        .values(
            institution_id=institution_id,
            id=statement_id,
            statement_date=s.statement_date,
            account=s.account,
            currency=s.currency,
            opening_fen=s.opening_fen,
            closing_fen=s.closing_fen,
            line_count=len(s.lines),
            content_hash=s.content_hash,
            source_format=fmt,
            imported_by=caller.principal,
            imported_at=now,
        )
        .on_conflict_do_nothing(constraint="bank_statement_day_key")
        .returning(BankStatement.id)
    )
    if inserted is None:
        existing = session.scalars(
            select(BankStatement).where(
                BankStatement.institution_id == institution_id, BankStatement.statement_date == s.statement_date
            )
        ).one()
        if existing.content_hash != s.content_hash:
            raise Conflict(
                f"a different statement for account {s.account} on {s.statement_date} was imported at "
                f"{existing.imported_at.isoformat()} ({existing.line_count} lines, closing {existing.closing_fen} "
                "fen); nothing in this file was imported",
                statement_id=str(existing.id),
            )
        return Imported(existing, True)
    if s.lines:
        session.execute(
            insert(StatementLineRecord),
            [
                {
                    "institution_id": institution_id,
                    "id": new_id(),
                    "statement_id": statement_id,
                    "position": n,
                    "value_date": line.value_date,
                    "amount_fen": line.amount_fen,
                    "reference": line.reference,
                    "counterparty": line.counterparty,
                    "memo": line.memo,
                }
                for n, line in enumerate(s.lines, start=1)
            ],
        )
    note(
        session,
        caller,
        "statement.imported",
        institution_id=institution_id,
        object_type="bank_statement",
        object_id=statement_id,
        after={"date": s.statement_date, "closing_fen": s.closing_fen, "lines": len(s.lines), "hash": s.content_hash},
        at=now,
    )
    statement = session.get_one(BankStatement, (institution_id, statement_id))
    return Imported(statement, False)


def operator_caller(session: Session, *, bank: str | None) -> Caller:
    """Who the command line imports as: a custody bank, or the operator acting for every jurisdiction."""
    if bank is not None:
        return Caller(token_id=UUID(int=0), role=Role.BANK, bank_code=bank)
    codes = frozenset(session.scalars(select(Jurisdiction.code)))
    return Caller(token_id=UUID(int=0), role=Role.REGULATOR, jurisdictions=codes)


def _scope(caller: Caller) -> object:
    return BankStatement.institution_id.in_(select(Institution.id).where(institution_scope(caller)))


def list_statements(
    session: Session,
    *,
    caller: Caller,
    institution_id: UUID | None,
    on: date | None,
    cursor: str | None,
    limit: int,
) -> Page[BankStatement]:
    require_role(caller, Role.REGULATOR, Role.BANK, Role.INSTITUTION)
    query = select(BankStatement).where(_scope(caller))  # type: ignore[arg-type]
    if institution_id is not None:
        query = query.where(BankStatement.institution_id == institution_id)
    if on is not None:
        query = query.where(BankStatement.statement_date == on)
    return keyset(session, query, BankStatement.id, cursor=cursor, limit=limit)


@dataclass(frozen=True, slots=True)
class LineView:
    line: StatementLineRecord
    matched: list[UUID]


def get_statement(
    session: Session, *, caller: Caller, institution_id: UUID, statement_id: UUID
) -> tuple[BankStatement, list[LineView]]:
    """A statement with its lines and the ledger transactions each line matched."""
    require_role(caller, Role.REGULATOR, Role.BANK, Role.INSTITUTION)
    visible_institution(session, caller, institution_id)
    statement = session.get(BankStatement, (institution_id, statement_id))
    if statement is None:
        raise NotFound(f"statement {statement_id} does not exist in this institution")
    lines = session.scalars(
        select(StatementLineRecord)
        .where(StatementLineRecord.institution_id == institution_id, StatementLineRecord.statement_id == statement_id)
        .order_by(StatementLineRecord.position)
    ).all()
    matches: dict[UUID, list[UUID]] = {}
    for line_id, transaction_id in session.execute(
        text(
            "SELECT m.line_id, m.transaction_id FROM statement_match m JOIN statement_line l"
            " ON l.institution_id = m.institution_id AND l.id = m.line_id"
            " WHERE l.institution_id = :i AND l.statement_id = :s ORDER BY m.transaction_id"
        ),
        {"i": institution_id, "s": statement_id},
    ):
        matches.setdefault(line_id, []).append(transaction_id)
    return statement, [LineView(line, matches.get(line.id, [])) for line in lines]
