"""Every status moves through one table per kind of object; anything else is refused as a conflict."""

from __future__ import annotations

from collections.abc import Mapping

from escrow.errors import Conflict

CLASS = {
    ("pending", "confirm"): "confirmed",
    ("pending", "deem"): "confirmed",
    ("pending", "dispute"): "disputed",
    ("disputed", "uphold"): "upheld",
    ("disputed", "reject"): "confirmed",
    ("pending", "void"): "void",
    ("disputed", "void"): "void",
}
REFUND = {
    ("open", "approve"): "approved",
    ("open", "deem"): "deemed_approved",
    ("open", "reject"): "rejected",
    ("open", "close"): "closure",
}
PAYOUT = {
    ("instructed", "execute"): "executed",
    ("instructed", "fail"): "failed",
    ("instructed", "recall"): "recalled",  # a hold stops money leaving to the institution
}
INSTITUTION = {
    ("active", "hold"): "on_hold",
    ("on_hold", "lift"): "active",
    ("active", "close"): "closed",
    ("on_hold", "close"): "closed",
}
CONTRACT = {
    ("active", "refund"): "refunded",
    ("active", "close"): "closed",
    ("refunded", "close"): "closed",
}


def move(what: str, table: Mapping[tuple[str, str], str], current: str, event: str) -> str:
    """The status after `event`, or a Conflict that says why it cannot happen now."""
    after = table.get((current, event))
    if after is None:
        allowed = sorted(e for (s, e) in table if s == current)
        raise Conflict(
            f"a {what} that is {current} cannot take '{event}'"
            + (f"; it can take: {', '.join(allowed)}" if allowed else "; it is final")
        )
    return after
