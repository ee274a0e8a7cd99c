"""Money without a database: exact fen, and splits that always add up."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from escrow.rules.money import Money, allocate, format_yuan, parse_yuan, prorate


def test_yuan_text_becomes_exact_fen_and_back() -> None:
    assert parse_yuan("4800") == 480_000
    assert parse_yuan("1,234.5") == 123_450
    assert parse_yuan("0.01") == 1
    assert format_yuan(123_450) == "1234.50"
    assert format_yuan(-5) == "-0.05"
    for bad in ["1.234", "12e3", "", "abc", "1.2.3", "NaN"]:
        with pytest.raises(ValueError, match="at most two decimals"):
            parse_yuan(bad)


def test_money_refuses_floats_and_mixed_currencies() -> None:
    with pytest.raises(TypeError, match="whole fen"):
        Money(1.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="cannot mix CNY and USD"):
        Money(100) + Money(100, "USD")
    assert str(Money(480_000) - Money(16_000)) == "4640.00 CNY"


def test_largest_remainder_examples() -> None:
    assert allocate(100, [1, 1, 1]) == [34, 33, 33]
    assert allocate(10, [3, 3, 4]) == [3, 3, 4]
    assert allocate(-100, [1, 1, 1]) == [-34, -33, -33]
    assert allocate(7, [0, 1]) == [0, 7]
    # a class's share: 4,800.00 yuan for 60 hours, 7 hours given, rounded down
    assert prorate(480_000, part=7, whole=60) == 56_000
    assert prorate(100, part=1, whole=3) == 33


@given(
    total=st.integers(-(10**12), 10**12),
    weights=st.lists(st.integers(0, 10**6), min_size=1, max_size=30).filter(any),
)
def test_a_split_always_sums_to_the_whole_and_each_part_is_within_a_fen(total: int, weights: list[int]) -> None:
    parts = allocate(total, weights)
    assert sum(parts) == total
    for part, weight in zip(parts, weights, strict=True):
        exact = total * weight / sum(weights)
        assert abs(part - exact) < 1 + 1e-9 * abs(total)


def test_allocate_refuses_nonsense_weights() -> None:
    for weights in ([], [0, 0], [1, -1]):
        with pytest.raises(ValueError, match="weight"):
            allocate(100, weights)
