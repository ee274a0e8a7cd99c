"""Worked examples, narrated like accounting, on real PostgreSQL.

A training school (one institution) keeps a custody cash account (an asset, debit side) and a
prepaid liability per contract (credit side). Every number is exact to the fen.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import UUID

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from escrow.errors import AccountConflict, AlreadyReversed, InsufficientFunds, NotFound, UnbalancedTransaction
from escrow.ledger import engine
from escrow.ledger.model import AccountKind, NewEntry, Side, credit, debit
from escrow.ledger.records import JournalTransaction
from escrow.rules.money import allocate
from tests.factories import bare_institution
from tests.ledger_helpers import asset, balances, books_problems, key, liability, post


def test_a_family_prepays_and_two_classes_are_released(db: sessionmaker[Session], institution: UUID) -> None:
    with db.begin() as s:
        cash = asset(s, institution, "custody_cash")
        prepaid = liability(s, institution, "prepaid:contract-1")
        releasable = liability(s, institution, "releasable")

        # A parent pays 4,800.00 yuan for 60 class hours: cash up, and the school owes the family.
        post(s, institution, "collection", debit(cash.id, 480_000), credit(prepaid.id, 480_000))

        # Two classes of 2 hours are confirmed: 480000 / 60 * 2 = 16000 fen each moves to releasable.
        for _ in range(2):
            post(s, institution, "class_confirmed", debit(prepaid.id, 16_000), credit(releasable.id, 16_000))

    assert balances(db, institution) == {
        "custody_cash": 480_000,
        "prepaid:contract-1": 448_000,
        "releasable": 32_000,
    }
    # the custody identity: cash equals everything owed
    b = balances(db, institution)
    assert b["custody_cash"] == b["prepaid:contract-1"] + b["releasable"]
    assert books_problems(db, institution) == []


def test_a_mistaken_collection_is_reversed_not_erased(db: sessionmaker[Session], institution: UUID) -> None:
    with db.begin() as s:
        cash = asset(s, institution, "custody_cash")
        prepaid = liability(s, institution, "prepaid:c1")
        # The clerk keys 1,234.56 yuan instead of 123.45.
        wrong = post(s, institution, "collection", debit(cash.id, 123_456), credit(prepaid.id, 123_456))
        right = post(s, institution, "collection", debit(cash.id, 12_345), credit(prepaid.id, 12_345))

    with db.begin() as s:
        reversal = engine.reverse_transaction(
            s,
            institution_id=institution,
            transaction_id=wrong.id,
            reason="keyed 1234.56 for 123.45",
            idempotency=key(),
        ).value
    assert reversal.reverses_id == wrong.id
    assert reversal.reversal_reason == "keyed 1234.56 for 123.45"
    assert sorted(p.amount for p in reversal.postings) == [-123_456, 123_456]
    assert balances(db, institution) == {"custody_cash": 12_345, "prepaid:c1": 12_345}

    # The mistake stays on the books, with its reversal beside it; it cannot be reversed twice.
    with db.begin() as s:
        assert engine.get_entry(s, institution_id=institution, transaction_id=wrong.id).id == wrong.id
        with pytest.raises(AlreadyReversed, match=str(reversal.id)):
            engine.reverse_transaction(
                s, institution_id=institution, transaction_id=wrong.id, reason="again", idempotency=key()
            )
    assert right.id != wrong.id
    assert books_problems(db, institution) == []


def test_balances_as_of_past_instants(db: sessionmaker[Session], institution: UUID) -> None:
    jan = datetime(2026, 1, 15, 8, 0, tzinfo=UTC)
    feb = datetime(2026, 2, 15, 8, 0, tzinfo=UTC)
    with db.begin() as s:
        cash = asset(s, institution, "custody_cash")
        prepaid = liability(s, institution, "prepaid:c1")
        post(
            s,
            institution,
            "collection",
            debit(cash.id, 300_000),
            credit(prepaid.id, 300_000),
            effective_at=jan,
        )
        post(
            s,
            institution,
            "collection",
            debit(cash.id, 150_050),
            credit(prepaid.id, 150_050),
            effective_at=feb,
        )

    with db.begin() as s:

        def at(instant: datetime, account: UUID) -> int:
            return engine.balance_of(s, institution_id=institution, account_id=account, as_of=instant)

        assert at(jan - timedelta(microseconds=1), cash.id) == 0
        assert at(jan, cash.id) == 300_000  # as of an instant includes what took effect at it
        assert at(feb - timedelta(seconds=1), prepaid.id) == 300_000
        assert at(feb, prepaid.id) == 450_050
        assert engine.balance_of(s, institution_id=institution, account_id=prepaid.id) == 450_050
        recorded = s.scalars(
            select(JournalTransaction.created_at).where(JournalTransaction.institution_id == institution)
        ).first()
        assert recorded is not None
        # as the books stood before anything was recorded, nothing was there
        assert (
            engine.balance_of(
                s,
                institution_id=institution,
                account_id=cash.id,
                as_of=feb,
                known_at=recorded - timedelta(days=365),
            )
            == 0
        )


def test_amounts_are_exact_and_a_split_sums_to_the_whole(db: sessionmaker[Session], institution: UUID) -> None:
    # 1,000.00 yuan released in tranches 30/30/40, and 100.00 yuan split three ways.
    assert allocate(100_000, [30, 30, 40]) == [30_000, 30_000, 40_000]
    thirds = allocate(10_000, [1, 1, 1])
    assert thirds == [3_334, 3_333, 3_333] and sum(thirds) == 10_000
    with db.begin() as s:
        cash = asset(s, institution, "custody_cash")
        families = [liability(s, institution, f"prepaid:c{i}") for i in range(3)]
        post(
            s,
            institution,
            "collection",
            debit(cash.id, 10_000),
            *(credit(f.id, part) for f, part in zip(families, thirds, strict=True)),
        )
    assert balances(db, institution) == {
        "custody_cash": 10_000,
        "prepaid:c0": 3_334,
        "prepaid:c1": 3_333,
        "prepaid:c2": 3_333,
    }


def test_refused_postings_say_why_and_change_nothing(db: sessionmaker[Session], institution: UUID) -> None:
    with db.begin() as s:
        cash = asset(s, institution, "custody_cash")
        prepaid = liability(s, institution, "prepaid:c1")
        post(s, institution, "collection", debit(cash.id, 500), credit(prepaid.id, 500))

    with db.begin() as s, pytest.raises(UnbalancedTransaction) as unbalanced:
        post(s, institution, "collection", debit(cash.id, 500), credit(prepaid.id, 499))
    assert "CNY legs sum to 1 fen, not zero" in unbalanced.value.problems

    # a refund larger than what is held: both the liability and the cash would go below zero
    with db.begin() as s, pytest.raises(InsufficientFunds) as short:
        post(s, institution, "refund_paid", debit(prepaid.id, 501), credit(cash.id, 501))
    assert len(short.value.context["problems"]) == 2
    assert "prepaid:c1 holds 500 fen; this would leave -1 fen" in short.value.detail

    with db.begin() as s, pytest.raises(UnbalancedTransaction) as one_leg:
        post(s, institution, "collection", debit(cash.id, 0))
    assert one_leg.value.problems == [
        "a transaction needs at least two legs, got 1",
        "leg 1: amount may not be zero",
    ]
    assert balances(db, institution) == {"custody_cash": 500, "prepaid:c1": 500}


def test_an_account_of_another_institution_is_not_found(db: sessionmaker[Session], institution: UUID) -> None:
    with db.begin() as s:
        other = bare_institution(s)
        mine = asset(s, institution, "custody_cash")
        theirs = liability(s, other, "prepaid:c1")
    with db.begin() as s, pytest.raises(UnbalancedTransaction, match="does not exist in this institution"):
        post(s, institution, "collection", debit(mine.id, 100), credit(theirs.id, 100))
    with db.begin() as s, pytest.raises(NotFound):
        engine.balance_of(s, institution_id=institution, account_id=theirs.id)
    assert balances(db, other) == {"prepaid:c1": 0}


def test_an_account_whose_opening_rolled_back_is_not_posted_to(db: sessionmaker[Session], institution: UUID) -> None:
    """The engine keeps what it read of accounts for every connection to the database; an account opened
    by a transaction that rolled back is refused to the next one, whichever way it posts."""
    with db.begin() as s:
        cash = asset(s, institution, "custody_cash")
    with db.kw["bind"].connect() as conn:
        for n, lowers_ghost in enumerate((False, True)):
            with Session(bind=conn) as s:  # opened, posted to (so known to the connection), rolled back
                ghost = liability(s, institution, f"prepaid:ghost-{n}")
                post(s, institution, "collection", debit(cash.id, 100), credit(ghost.id, 100))
            conn.rollback()
            legs = (
                (debit(ghost.id, 100), credit(cash.id, 100))
                if lowers_ghost
                else (debit(cash.id, 100), credit(ghost.id, 100))
            )
            with Session(bind=conn) as s, pytest.raises(UnbalancedTransaction) as refused:
                post(s, institution, "collection", *legs)
            conn.rollback()
            assert f"account {ghost.id} does not exist in this institution" in refused.value.detail
    assert balances(db, institution) == {"custody_cash": 0}


def test_opening_an_account_twice_returns_it_and_refuses_a_different_one(
    db: sessionmaker[Session], institution: UUID
) -> None:
    with db.begin() as s:
        first = asset(s, institution, "custody_cash")
        again = asset(s, institution, "custody_cash")
        assert again.id == first.id
        with pytest.raises(AccountConflict, match="already open as debit-side CNY"):
            engine.open_account(
                s, institution_id=institution, code="custody_cash", kind=AccountKind.OTHER, normal_side=Side.CREDIT
            )


def test_postings_are_paged_by_cursor(db: sessionmaker[Session], institution: UUID) -> None:
    with db.begin() as s:
        cash = asset(s, institution, "custody_cash")
        prepaid = liability(s, institution, "prepaid:c1")
        for fen in range(1, 8):
            post(s, institution, "collection", debit(cash.id, fen), credit(prepaid.id, fen))
    seen: list[int] = []
    after = None
    with db.begin() as s:
        while True:
            page = engine.list_postings(s, institution_id=institution, account_id=cash.id, after=after, limit=3)
            seen += [p.amount for p in page.items]
            if page.next_after is None:
                break
            after = page.next_after
    assert seen == [1, 2, 3, 4, 5, 6, 7]


def test_legs_are_judged_by_their_net_not_their_order(db: sessionmaker[Session], institution: UUID) -> None:
    # Money passes through an empty account within one transaction: out first, then in.
    with db.begin() as s:
        cash = asset(s, institution, "custody_cash")
        prepaid = liability(s, institution, "prepaid:c1")
        passthrough = asset(s, institution, "clearing")
        post(
            s,
            institution,
            "collection",
            credit(passthrough.id, 300),
            debit(passthrough.id, 300),
            debit(cash.id, 300),
            credit(prepaid.id, 300),
        )
    assert balances(db, institution) == {"custody_cash": 300, "prepaid:c1": 300, "clearing": 0}


def test_a_refused_posting_leaves_its_key_unused_even_when_the_caller_commits(
    db: sessionmaker[Session], institution: UUID
) -> None:
    """The school tries to pay out 300.00 yuan it does not hold, and its caller commits anyway: no key is
    kept for it, so the same request with the same key goes through once the money is there."""
    with db.begin() as s:
        cash = asset(s, institution, "custody_cash")
        prepaid = liability(s, institution, "prepaid:c1")
        releasable = liability(s, institution, "releasable")
    with db.begin() as s, pytest.raises(InsufficientFunds):
        post(s, institution, "payout", debit(releasable.id, 30_000), credit(cash.id, 30_000), idempotency="pay-1")
    with db.begin() as s:  # a family pays, and their classes release it all
        post(s, institution, "collection", debit(cash.id, 30_000), credit(prepaid.id, 30_000))
        post(s, institution, "class_released", debit(prepaid.id, 30_000), credit(releasable.id, 30_000))
        paid = engine.post_transaction(
            s,
            institution_id=institution,
            idempotency=key("pay-1"),
            entry=NewEntry(kind="payout", legs=[debit(releasable.id, 30_000), credit(cash.id, 30_000)]),
        )
    assert not paid.replayed
    assert balances(db, institution) == {"custody_cash": 0, "prepaid:c1": 0, "releasable": 0}
    assert books_problems(db, institution) == []
