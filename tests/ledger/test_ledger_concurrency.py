"""Real threads racing on real PostgreSQL: for the same money exactly the right number win."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from uuid import UUID

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session, sessionmaker

from escrow.errors import IdempotencyConflict, InsufficientFunds
from escrow.ledger import engine as ledger
from escrow.ledger.model import Leg, NewEntry, credit, debit
from tests.ledger_helpers import asset, balances, books_problems, key, liability, post

THREADS = 8
ATTEMPTS = 60
PRICE = 7


def race(attempt: Callable[[], bool], threads: int = THREADS, attempts: int = ATTEMPTS) -> int:
    """Start `threads` threads together, each calling `attempt` `attempts` times; count the wins."""
    start = threading.Barrier(threads)

    def worker() -> int:
        start.wait()
        return sum(attempt() for _ in range(attempts))

    with ThreadPoolExecutor(threads) as pool:
        return sum(pool.map(lambda _: worker(), range(threads)))


def test_eight_threads_cannot_overspend_a_thousand_fen(db: sessionmaker[Session], institution: UUID) -> None:
    with db.begin() as s:
        wallet = asset(s, institution, "custody_cash").id
        funding = liability(s, institution, "prepaid:c1").id
        sink = asset(s, institution, "spent", allow_negative=True).id
        post(s, institution, "collection", debit(wallet, 1_000), credit(funding, 1_000))

    def spend() -> bool:
        try:
            with db.begin() as s:
                post(s, institution, "spend", debit(sink, PRICE), credit(wallet, PRICE))
            return True
        except InsufficientFunds:
            return False

    wins = race(spend)
    assert wins == 142  # 142 * 7 = 994 of the 1,000
    assert balances(db, institution)["custody_cash"] == 6
    assert books_problems(db, institution) == []


def test_the_race_harness_catches_a_naive_read_then_write(engine: Engine) -> None:
    """The same race against a deliberately naive wallet (read, check, write back) overspends."""
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE IF EXISTS naive_wallet"))
        conn.execute(text("CREATE TABLE naive_wallet (id int PRIMARY KEY, balance bigint NOT NULL)"))
        conn.execute(text("INSERT INTO naive_wallet VALUES (1, 1000)"))

    def naive_spend() -> bool:
        with engine.begin() as conn:
            balance = conn.execute(text("SELECT balance FROM naive_wallet WHERE id = 1")).scalar_one()
            if balance < PRICE:
                return False
            conn.execute(text("UPDATE naive_wallet SET balance = :b WHERE id = 1"), {"b": balance - PRICE})
            return True

    try:
        wins = race(naive_spend)
    finally:
        with engine.begin() as conn:
            conn.execute(text("DROP TABLE naive_wallet"))
    assert wins > 142, f"expected lost updates to let more than 142 spends through, got {wins}"


def _transfers(db: sessionmaker[Session], institution: UUID, routes: list[list[UUID]], rounds: int) -> None:
    """Each thread posts `rounds` transactions whose legs run along its route, in route order."""

    def worker(route: list[UUID]) -> None:
        for _ in range(rounds):
            legs = [Leg(account, 1) for account in route[1:]] + [Leg(route[0], -(len(route) - 1))]
            with db.begin() as s:
                post(s, institution, "transfer", *legs)

    with ThreadPoolExecutor(len(routes)) as pool:
        list(pool.map(worker, routes))  # re-raises any error, a deadlock included


def _accounts(db: sessionmaker[Session], institution: UUID, count: int) -> list[UUID]:
    with db.begin() as s:
        return [asset(s, institution, f"a{i}", allow_negative=True).id for i in range(count)]


def test_opposite_transfers_between_two_accounts_never_deadlock(db: sessionmaker[Session], institution: UUID) -> None:
    a, b = _accounts(db, institution, 2)
    _transfers(db, institution, [[a, b], [b, a]], rounds=500)
    assert balances(db, institution) == {"a0": 0, "a1": 0}
    assert books_problems(db, institution) == []


def test_deposits_locked_by_the_write_and_spends_locked_first_never_deadlock(
    db: sessionmaker[Session], institution: UUID
) -> None:
    """Entries that only add to accounts lock them inside the statement that writes them; entries that take
    from a floored account lock them first and check funds. Both lock in id order, whichever order the
    legs are listed in, so mixing them on the same two accounts neither deadlocks nor loses a fen."""
    with db.begin() as s:
        cash = asset(s, institution, "custody_cash").id
        owed = liability(s, institution, "prepaid:c1").id
        post(s, institution, "collection", debit(cash, 1_000), credit(owed, 1_000))
    routes = {
        "deposit": [debit(cash, 1), credit(owed, 1)],
        "deposit_listed_the_other_way": [credit(owed, 1), debit(cash, 1)],
        "refund": [credit(cash, 1), debit(owed, 1)],
        "refund_listed_the_other_way": [debit(owed, 1), credit(cash, 1)],
    }

    def worker(legs: list[Leg]) -> None:
        for _ in range(150):
            with db.begin() as s:
                post(s, institution, "transfer", *legs)

    with ThreadPoolExecutor(len(routes)) as pool:
        list(pool.map(worker, routes.values()))  # re-raises any error, a deadlock included
    assert balances(db, institution) == {"custody_cash": 1_000, "prepaid:c1": 1_000}
    assert books_problems(db, institution) == []


@pytest.mark.parametrize("size", [3, 4, 5])
def test_rings_of_transfers_never_deadlock(db: sessionmaker[Session], institution: UUID, size: int) -> None:
    accounts = _accounts(db, institution, size)
    # one thread per starting point, each touching every account in its own rotation of the ring
    routes = [accounts[i:] + accounts[:i] for i in range(size)]
    pairs = [[accounts[i], accounts[(i + 1) % size]] for i in range(size)]
    _transfers(db, institution, routes + pairs, rounds=60)
    assert sum(balances(db, institution).values()) == 0
    assert books_problems(db, institution) == []


def test_fifty_keys_sent_eight_times_at_once_take_effect_fifty_times(
    db: sessionmaker[Session], institution: UUID
) -> None:
    with db.begin() as s:
        cash = asset(s, institution, "custody_cash").id
        prepaid = liability(s, institution, "prepaid:c1").id
    keys = [f"collection-{n}" for n in range(50)]
    together = {k: threading.Barrier(THREADS) for k in keys}

    def send_all() -> list[UUID]:
        ids = []
        for k in keys:
            together[k].wait()
            with db.begin() as s:
                ids.append(post(s, institution, "collection", debit(cash, 100), credit(prepaid, 100), idempotency=k).id)
        return ids

    with ThreadPoolExecutor(THREADS) as pool:
        results = list(pool.map(lambda _: send_all(), range(THREADS)))
    # every thread saw the same transaction for each key
    assert all(r == results[0] for r in results)
    assert len(set(results[0])) == 50
    with db.begin() as s:
        effects = s.scalar(
            text("SELECT count(*) FROM journal_transaction WHERE institution_id = :i"), {"i": institution}
        )
    assert effects == 50
    assert balances(db, institution) == {"custody_cash": 5_000, "prepaid:c1": 5_000}

    # the same key with a different body: refused, saying which key and why; nothing moves
    with (
        db.begin() as s,
        pytest.raises(IdempotencyConflict, match=r"'collection-0' was first used at .* for a different request"),
    ):
        post(s, institution, "collection", debit(cash, 999), credit(prepaid, 999), idempotency="collection-0")
    assert balances(db, institution) == {"custody_cash": 5_000, "prepaid:c1": 5_000}


def test_a_replay_returns_the_first_result_and_keys_are_per_caller(
    db: sessionmaker[Session], institution: UUID
) -> None:
    with db.begin() as s:
        cash = asset(s, institution, "custody_cash").id
        prepaid = liability(s, institution, "prepaid:c1").id
    legs = [debit(cash, 250), credit(prepaid, 250)]
    with db.begin() as s:
        first = ledger.post_transaction(
            s,
            institution_id=institution,
            idempotency=key("k1", caller="school-a"),
            entry=NewEntry(kind="collection", legs=legs),
        )
    with db.begin() as s:
        again = ledger.post_transaction(
            s,
            institution_id=institution,
            idempotency=key("k1", caller="school-a"),
            entry=NewEntry(kind="collection", legs=legs),
        )
        other_caller = ledger.post_transaction(
            s,
            institution_id=institution,
            idempotency=key("k1", caller="bank"),
            entry=NewEntry(kind="collection", legs=legs),
        )
    assert (again.value.id, again.replayed, first.replayed) == (first.value.id, True, False)
    assert again.value.postings == first.value.postings
    assert other_caller.value.id != first.value.id
    assert balances(db, institution)["custody_cash"] == 500
