"""Trying to break the books with raw SQL, bypassing the engine: PostgreSQL itself says no.

Each attempt runs in its own transaction; after each, the books are exactly as they were.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from uuid import UUID, uuid4

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from escrow.ledger.model import credit, debit
from tests.factories import bare_institution
from tests.ledger_helpers import asset, balances, books_problems, liability, post


class Books:
    def __init__(self, db: sessionmaker[Session], institution: UUID) -> None:
        self.db, self.institution = db, institution
        with db.begin() as s:
            self.cash = asset(s, institution, "custody_cash").id
            self.prepaid = liability(s, institution, "prepaid:c1").id
            self.collection = post(s, institution, "collection", debit(self.cash, 500), credit(self.prepaid, 500)).id

    def run(self, *statements: str, **params: Any) -> None:
        """Run raw statements in one transaction that commits (firing the deferred checks)."""
        with self.db.begin() as s:
            for sql in statements:
                s.execute(
                    text(sql),
                    {
                        "i": self.institution,
                        "cash": self.cash,
                        "prepaid": self.prepaid,
                        "txn": self.collection,
                        **params,
                    },
                )


@pytest.fixture
def books(db: sessionmaker[Session], institution: UUID) -> Iterator[Books]:
    books = Books(db, institution)
    before = balances(db, institution)
    yield books
    assert balances(db, institution) == before, "a refused attempt changed the balances"
    assert books_problems(db, institution) == []


NEW_TXN = (
    "INSERT INTO journal_transaction (institution_id, id, kind, effective_at, legs) VALUES (:i, :t, 'x', now(), 2)"
)


def posting(account: str, amount: int, currency: str = "CNY", txn: str = ":t", institution: str = ":i") -> str:
    return (
        "INSERT INTO posting (institution_id, transaction_id, account_id, currency, amount) "
        f"VALUES ({institution}, {txn}, :{account}, '{currency}', {amount})"
    )


def refused(books: Books, match: str, *statements: str, **params: Any) -> None:
    with pytest.raises(DBAPIError, match=match):
        books.run(*statements, **params)


def test_an_unbalanced_transaction_is_refused_at_commit(books: Books) -> None:
    refused(
        books,
        "is unbalanced: its CNY postings sum to 1 fen",
        NEW_TXN,
        posting("cash", 100),
        posting("prepaid", -99),
        t=uuid4(),
    )


def test_a_one_legged_transaction_is_refused(books: Books) -> None:
    refused(books, r"has 1 posting\(s\); it needs at least two", NEW_TXN, posting("cash", 100), t=uuid4())


def test_a_transaction_without_postings_is_refused(books: Books) -> None:
    refused(books, r"has 0 posting\(s\)", NEW_TXN, t=uuid4())


def test_a_transaction_must_have_the_postings_it_says_it_has(books: Books) -> None:
    three = NEW_TXN.replace("now(), 2)", "now(), 3)")
    refused(books, "says it has 3 postings but has 2", three, posting("cash", 100), posting("prepaid", -100), t=uuid4())
    refused(books, "journal_transaction_legs", NEW_TXN.replace("now(), 2)", "now(), 1)"), t=uuid4())


def test_postings_cannot_be_updated(books: Books) -> None:
    refused(
        books,
        "posting is append-only: UPDATE refused",
        "UPDATE posting SET amount = amount * 2 WHERE institution_id = :i",
    )


def test_postings_cannot_be_deleted(books: Books) -> None:
    refused(books, "posting is append-only: DELETE refused", "DELETE FROM posting WHERE institution_id = :i")


def test_postings_cannot_be_truncated(books: Books) -> None:
    refused(books, "append-only: TRUNCATE refused", "TRUNCATE posting CASCADE")


def test_transactions_cannot_be_rewritten_or_deleted(books: Books) -> None:
    refused(
        books,
        "journal_transaction is append-only: UPDATE",
        "UPDATE journal_transaction SET effective_at = now() - interval '1 year' WHERE id = :txn",
    )
    refused(books, "journal_transaction is append-only: DELETE", "DELETE FROM journal_transaction WHERE id = :txn")


def test_a_non_negative_balance_cannot_be_driven_below_zero(books: Books) -> None:
    # a balanced pair that refunds 501 of the 500 held
    refused(
        books,
        "account_balance_not_negative",
        NEW_TXN,
        posting("prepaid", 501) + ", (:i, :t, :cash, 'CNY', -501)",
        t=uuid4(),
    )


def test_a_cached_balance_cannot_be_edited(books: Books) -> None:
    refused(books, "changes only through postings", "UPDATE account SET balance = 1000000 WHERE id = :cash")
    refused(
        books,
        "changes only through postings|account_balance_not_negative",
        "UPDATE account SET balance = -1 WHERE id = :cash",
    )
    refused(books, "may not change its identity", "UPDATE account SET allow_negative = true WHERE id = :cash")
    refused(books, "accounts are never deleted", "DELETE FROM account WHERE id = :cash")


def test_an_account_cannot_open_with_money_in_it(books: Books) -> None:
    refused(
        books,
        "must open with balance 0",
        "INSERT INTO account (institution_id, id, code, normal_side, currency, balance) "
        "VALUES (:i, :a, 'stash', 'debit', 'CNY', 100)",
        a=uuid4(),
    )


def test_a_posting_added_after_an_early_check_is_refused(books: Books) -> None:
    """Checking the deferred constraints early passes a balanced transaction; a posting written after that
    gives it more postings than it declares, and is refused as it is written."""
    refused(
        books,
        "says it has 2 postings but has 3",
        NEW_TXN,
        posting("cash", 100),
        posting("prepaid", -100),
        "SET CONSTRAINTS ALL IMMEDIATE",
        "SET CONSTRAINTS ALL DEFERRED",
        posting("cash", 5),
        t=uuid4(),
    )


def test_postings_cannot_be_added_to_a_recorded_transaction(books: Books) -> None:
    refused(
        books,
        "recorded by another database transaction",
        posting("cash", 7, txn=":txn"),
        posting("prepaid", -7, txn=":txn"),
    )


def test_a_transaction_cannot_span_two_institutions(books: Books, db: sessionmaker[Session]) -> None:
    with db.begin() as s:
        other = bare_institution(s)
        foreign_cash = asset(s, other, "custody_cash").id
    # the posting names our institution but the other's account: the composite key does not exist
    refused(
        books,
        "posting_account_fkey",
        NEW_TXN,
        posting("prepaid", -100),
        posting("foreign", 100),
        t=uuid4(),
        foreign=foreign_cash,
    )
    # or names the other institution against our transaction
    refused(
        books,
        "posting_transaction_fkey",
        NEW_TXN,
        posting("prepaid", -100),
        posting("foreign", 100, institution=":other"),
        t=uuid4(),
        foreign=foreign_cash,
        other=other,
    )
    assert balances(db, other) == {"custody_cash": 0}


def test_zero_amounts_and_mixed_currencies_are_refused(books: Books) -> None:
    refused(books, "posting_amount_not_zero", NEW_TXN, posting("cash", 0), t=uuid4())
    refused(
        books,
        "posting_account_fkey",
        NEW_TXN,
        posting("cash", 100, currency="USD"),
        posting("prepaid", -100, currency="USD"),
        t=uuid4(),
    )


def test_a_reversal_must_say_why(books: Books) -> None:
    refused(
        books,
        "journal_transaction_reversal_has_reason",
        "INSERT INTO journal_transaction "
        "(institution_id, id, kind, effective_at, reverses_id, reversal_reason, legs) "
        "VALUES (:i, :t, 'x', now(), :txn, '  ', 2)",
        t=uuid4(),
    )
