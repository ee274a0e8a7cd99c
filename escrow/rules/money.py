"""Money as integer fen plus a currency code; never floats.

Splits use the largest-remainder method, so the parts always add up to the whole.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

FEN_PER_YUAN = 100
_CURRENCY = re.compile(r"^[A-Z]{3}$")
_YUAN = re.compile(r"^-?\d+(\.\d{1,2})?$")


def check_currency(code: str) -> str:
    """Return an ISO 4217-shaped currency code, or raise ValueError."""
    if not _CURRENCY.match(code):
        raise ValueError(f"currency must be three capital letters like 'CNY', got {code!r}")
    return code


@dataclass(frozen=True, slots=True)
class Money:
    """An exact amount: whole fen (1/100 yuan) in one currency."""

    fen: int
    currency: str = "CNY"

    def __post_init__(self) -> None:
        if isinstance(self.fen, bool) or not isinstance(self.fen, int):
            raise TypeError(f"money is counted in whole fen (int), got {type(self.fen).__name__}")
        check_currency(self.currency)

    def __add__(self, other: Money) -> Money:
        return Money(self.fen + self._same(other).fen, self.currency)

    def __sub__(self, other: Money) -> Money:
        return Money(self.fen - self._same(other).fen, self.currency)

    def __neg__(self) -> Money:
        return Money(-self.fen, self.currency)

    def _same(self, other: Money) -> Money:
        if other.currency != self.currency:
            raise ValueError(f"cannot mix {self.currency} and {other.currency}")
        return other

    def __str__(self) -> str:
        return f"{format_yuan(self.fen)} {self.currency}"


def parse_yuan(text: str) -> int:
    """'1234.5' yuan -> 123450 fen; refuses more than two decimals or anything not a number."""
    cleaned = text.strip().replace(",", "")
    if not _YUAN.match(cleaned):
        raise ValueError(f"{text!r} is not an amount in yuan with at most two decimals")
    try:
        return int(Decimal(cleaned) * FEN_PER_YUAN)
    except InvalidOperation as exc:  # pragma: no cover - the regex already rules this out
        raise ValueError(f"{text!r} is not an amount") from exc


def format_yuan(fen: int) -> str:
    """123450 fen -> '1234.50'."""
    sign = "-" if fen < 0 else ""
    whole, cents = divmod(abs(fen), FEN_PER_YUAN)
    return f"{sign}{whole}.{cents:02d}"


def allocate(total: int, weights: Sequence[int]) -> list[int]:
    """Split `total` fen in proportion to `weights` by largest remainder; the parts sum to `total`.

    Ties in the remainder go to the earlier part, so the split is deterministic.
    """
    if not weights:
        raise ValueError("allocate needs at least one weight")
    if any(w < 0 for w in weights):
        raise ValueError("weights may not be negative")
    weight_sum = sum(weights)
    if weight_sum == 0:
        raise ValueError("weights may not all be zero")
    sign = -1 if total < 0 else 1
    magnitude = abs(total)
    floors = [magnitude * w // weight_sum for w in weights]
    remainders = [magnitude * w % weight_sum for w in weights]
    short = magnitude - sum(floors)
    for index in sorted(range(len(weights)), key=lambda i: (-remainders[i], i))[:short]:
        floors[index] += 1
    return [sign * part for part in floors]


def prorate(total: int, *, part: int, whole: int) -> int:
    """The share of `total` fen for `part` of `whole` units, rounded down; the last share takes the rest."""
    if whole <= 0 or not 0 <= part <= whole:
        raise ValueError(f"need 0 <= part <= whole and whole > 0, got part={part}, whole={whole}")
    return total * part // whole
