"""The ledger rules without a database: every problem is reported, not only the first."""

from __future__ import annotations

from uuid import uuid4

from escrow.ledger.model import (
    AccountState,
    Leg,
    Side,
    check_funds,
    check_legs,
    credit,
    debit,
    reversing_legs,
)

CASH = AccountState(uuid4(), "custody_cash", "CNY", Side.DEBIT, False, 1_000)
PREPAID = AccountState(uuid4(), "prepaid:c1", "CNY", Side.CREDIT, False, 1_000)
USD = AccountState(uuid4(), "fx", "USD", Side.DEBIT, True, 0)
ACCOUNTS = {a.id: a for a in (CASH, PREPAID, USD)}


def test_a_balanced_pair_passes() -> None:
    assert check_legs([debit(CASH.id, 5), credit(PREPAID.id, 5)], ACCOUNTS) == []


def test_every_problem_is_reported() -> None:
    ghost = uuid4()
    problems = check_legs([Leg(CASH.id, 0), Leg(ghost, 3), Leg(USD.id, 4), Leg(PREPAID.id, -1)], ACCOUNTS)
    assert problems == [
        "leg 1: amount may not be zero",
        f"leg 2: account {ghost} does not exist in this institution",
        "CNY legs sum to -1 fen, not zero",
        "USD legs sum to 4 fen, not zero",
    ]


def test_funds_are_read_on_each_accounts_normal_side() -> None:
    # refunding 1,001 from a liability holding 1,000 overdraws both it and the cash
    assert check_funds([debit(PREPAID.id, 1_001), credit(CASH.id, 1_001)], ACCOUNTS) == [
        "account prepaid:c1 holds 1000 fen; this would leave -1 fen",
        "account custody_cash holds 1000 fen; this would leave -1 fen",
    ]
    assert check_funds([debit(PREPAID.id, 1_000), credit(CASH.id, 1_000)], ACCOUNTS) == []


def test_a_reversal_negates_every_leg() -> None:
    from escrow.ledger.model import PostingLine

    lines = [PostingLine(1, CASH.id, 500, "CNY"), PostingLine(2, PREPAID.id, -500, "CNY")]
    assert reversing_legs(lines) == [Leg(CASH.id, -500), Leg(PREPAID.id, 500)]
