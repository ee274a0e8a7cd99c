"""How the console writes amounts and instants: yuan with two decimals, Beijing time."""

from __future__ import annotations

from datetime import datetime

from escrow.rules.calendar import BUSINESS_TZ
from escrow.rules.money import FEN_PER_YUAN


def yuan(fen: int | None) -> str:
    """123456789 fen -> '1,234,567.89' (two decimals, thousands separators; no floats)."""
    if fen is None:
        return ""
    whole, cents = divmod(abs(int(fen)), FEN_PER_YUAN)
    return f"{'-' if fen < 0 else ''}{whole:,}.{cents:02d}"


def beijing(instant: datetime | None, fmt: str = "%Y-%m-%d %H:%M") -> str:
    """An instant shown in Beijing time."""
    return "" if instant is None else instant.astimezone(BUSINESS_TZ).strftime(fmt)
