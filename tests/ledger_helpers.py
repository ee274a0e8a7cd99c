"""Small helpers for ledger tests: open the usual accounts and post with a fresh key."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from uuid import UUID, uuid4

from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from escrow.ledger import engine
from escrow.ledger.idempotency import IdempotencyKey
from escrow.ledger.model import AccountKind, AccountState, JournalEntry, Leg, NewEntry, Side


def key(name: str | None = None, caller: str = "test") -> IdempotencyKey:
    return IdempotencyKey(caller=caller, key=name or uuid4().hex)


def asset(session: Session, institution: UUID, code: str, **kw: object) -> AccountState:
    """An asset account of the ledger's own (kind other, unless `kind` says)."""
    kw.setdefault("kind", AccountKind.OTHER)
    return engine.open_account(session, institution_id=institution, code=code, normal_side=Side.DEBIT, **kw)  # type: ignore[arg-type]


def liability(session: Session, institution: UUID, code: str, **kw: object) -> AccountState:
    """A liability account of the ledger's own (kind other, unless `kind` says)."""
    kw.setdefault("kind", AccountKind.OTHER)
    return engine.open_account(session, institution_id=institution, code=code, normal_side=Side.CREDIT, **kw)  # type: ignore[arg-type]


def post(
    session: Session,
    institution: UUID,
    kind: str,
    *legs: Leg,
    effective_at: datetime | None = None,
    idempotency: str | None = None,
) -> JournalEntry:
    return engine.post_transaction(
        session,
        institution_id=institution,
        idempotency=key(idempotency),
        entry=NewEntry(kind=kind, legs=list(legs), effective_at=effective_at),
    ).value


def balances(db: sessionmaker[Session], institution: UUID) -> dict[str, int]:
    """code -> cached balance of every account of the institution."""
    with db.begin() as s:
        rows = s.execute(text("SELECT code, balance FROM account WHERE institution_id = :i"), {"i": institution}).all()
    return {code: balance for code, balance in rows}


def books_problems(db: sessionmaker[Session], institution: UUID) -> list[str]:
    """Every way the institution's books are wrong: unbalanced transactions, drifted caches."""
    with db.begin() as s:
        unbalanced = s.execute(
            text(
                "SELECT transaction_id, currency, sum(amount) FROM posting WHERE institution_id = :i "
                "GROUP BY transaction_id, currency HAVING sum(amount) <> 0"
            ),
            {"i": institution},
        ).all()
        drifted = s.execute(
            text(
                "SELECT a.code, a.balance, coalesce(sum(p.amount), 0) * "
                "CASE a.normal_side WHEN 'debit' THEN 1 ELSE -1 END AS summed "
                "FROM account a LEFT JOIN posting p ON p.institution_id = a.institution_id "
                "AND p.account_id = a.id WHERE a.institution_id = :i "
                "GROUP BY a.code, a.balance, a.normal_side "
                "HAVING a.balance <> coalesce(sum(p.amount), 0) * "
                "CASE a.normal_side WHEN 'debit' THEN 1 ELSE -1 END"
            ),
            {"i": institution},
        ).all()
    return [f"unbalanced {t} {c} {s}" for t, c, s in unbalanced] + [
        f"drifted {code}: cached {b}, postings {s}" for code, b, s in drifted
    ]


def legs_for(pairs: Sequence[tuple[UUID, int]]) -> list[Leg]:
    return [Leg(account, amount) for account, amount in pairs]
