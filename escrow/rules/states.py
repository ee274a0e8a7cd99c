"""Every status moves through one table per kind of object; anything else is refused as a conflict.

Each lifecycle is a StrEnum whose values are the strings stored in PostgreSQL (a CHECK on each status
column allows exactly these; tests/db/test_states_match_database.py holds the two together) and shown
over HTTP. A hold has no status of its own: it is the institution's active -> on_hold -> active. A closure
moves it to closing (every family's refund instructed) and the bank's execution of the last refund to
closed (nothing owed to families; what the institution earned is then settled to it).
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import TypeVar

from escrow.errors import Conflict

S = TypeVar("S", bound=StrEnum)


class ClassStatus(StrEnum):
    PENDING = "pending"  # recorded; the parent may confirm or dispute until confirm_by
    CONFIRMED = "confirmed"
    DISPUTED = "disputed"
    UPHELD = "upheld"  # the dispute was upheld: the hours were not given
    VOID = "void"  # closed with the institution before anyone decided


class ConfirmedHow(StrEnum):
    PARENT = "parent"
    DEEMED = "deemed"
    DISPUTE_REJECTED = "dispute_rejected"


class RefundStatus(StrEnum):
    OPEN = "open"
    APPROVED = "approved"
    DEEMED_APPROVED = "deemed_approved"
    REJECTED = "rejected"
    CLOSURE = "closure"  # settled by the institution's closure


class PayoutStatus(StrEnum):
    INSTRUCTED = "instructed"
    EXECUTED = "executed"
    FAILED = "failed"
    RECALLED = "recalled"  # a hold took it back before the bank executed it


class PayoutKind(StrEnum):
    RELEASE = "release"  # to the institution, of what its classes earned
    REFUND = "refund"  # to a family, of one contract's refund


class InstitutionStatus(StrEnum):
    ACTIVE = "active"
    ON_HOLD = "on_hold"
    CLOSING = "closing"  # closure began: every family's refund instructed, not yet all executed
    CLOSED = "closed"


class ContractStatus(StrEnum):
    ACTIVE = "active"
    COMPLETED = "completed"  # allowed by the database; no event leads here yet
    REFUNDED = "refunded"
    CLOSED = "closed"


class AlertState(StrEnum):
    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"


class JobOutcome(StrEnum):
    RUNNING = "running"
    OK = "ok"
    FAILED = "failed"
    SKIPPED = "skipped"


# recorded, not yet confirmed: the hours are not refundable and not yet released
HELD_CLASS_STATUSES = (ClassStatus.PENDING, ClassStatus.DISPUTED)

CLASS: Mapping[tuple[ClassStatus, str], ClassStatus] = {
    (ClassStatus.PENDING, "confirm"): ClassStatus.CONFIRMED,
    (ClassStatus.PENDING, "deem"): ClassStatus.CONFIRMED,
    (ClassStatus.PENDING, "dispute"): ClassStatus.DISPUTED,
    (ClassStatus.DISPUTED, "uphold"): ClassStatus.UPHELD,
    (ClassStatus.DISPUTED, "reject"): ClassStatus.CONFIRMED,
    (ClassStatus.PENDING, "void"): ClassStatus.VOID,
    (ClassStatus.DISPUTED, "void"): ClassStatus.VOID,
}
REFUND: Mapping[tuple[RefundStatus, str], RefundStatus] = {
    (RefundStatus.OPEN, "approve"): RefundStatus.APPROVED,
    (RefundStatus.OPEN, "deem"): RefundStatus.DEEMED_APPROVED,
    (RefundStatus.OPEN, "reject"): RefundStatus.REJECTED,
    (RefundStatus.OPEN, "close"): RefundStatus.CLOSURE,
}
PAYOUT: Mapping[tuple[PayoutStatus, str], PayoutStatus] = {
    (PayoutStatus.INSTRUCTED, "execute"): PayoutStatus.EXECUTED,
    (PayoutStatus.INSTRUCTED, "fail"): PayoutStatus.FAILED,
    (PayoutStatus.INSTRUCTED, "recall"): PayoutStatus.RECALLED,  # a hold stops money leaving to the institution
}
INSTITUTION: Mapping[tuple[InstitutionStatus, str], InstitutionStatus] = {
    (InstitutionStatus.ACTIVE, "hold"): InstitutionStatus.ON_HOLD,
    (InstitutionStatus.ON_HOLD, "lift"): InstitutionStatus.ACTIVE,
    (InstitutionStatus.ACTIVE, "close"): InstitutionStatus.CLOSING,
    (InstitutionStatus.ON_HOLD, "close"): InstitutionStatus.CLOSING,
    (InstitutionStatus.CLOSING, "refunds_paid"): InstitutionStatus.CLOSED,
}
CONTRACT: Mapping[tuple[ContractStatus, str], ContractStatus] = {
    (ContractStatus.ACTIVE, "refund"): ContractStatus.REFUNDED,
    (ContractStatus.ACTIVE, "close"): ContractStatus.CLOSED,
    (ContractStatus.REFUNDED, "close"): ContractStatus.CLOSED,
}
ALERT: Mapping[tuple[AlertState, str], AlertState] = {
    (AlertState.OPEN, "acknowledge"): AlertState.ACKNOWLEDGED,
    (AlertState.OPEN, "resolve"): AlertState.RESOLVED,
    (AlertState.ACKNOWLEDGED, "resolve"): AlertState.RESOLVED,
}


def move(what: str, table: Mapping[tuple[S, str], S], current: S, event: str) -> S:
    """The status after `event`, or a Conflict that says why it cannot happen now."""
    after = table.get((current, event))
    if after is None:
        allowed = sorted(e for (s, e) in table if s == current)
        raise Conflict(
            f"a {what} that is {current} cannot take '{event}'"
            + (f"; it can take: {', '.join(allowed)}" if allowed else "; it is final")
        )
    return after


class ComplaintStatus(StrEnum):
    SUBMITTED = "submitted"  # with the regulator, not yet taken up by anyone
    ASSIGNED = "assigned"  # a regulator handles it
    ANSWERED = "answered"  # the institution or the regulator answered; the family reads it
    CLOSED = "closed"  # the regulator closed it with a note the family sees


# a message from the family keeps a complaint where it is; an answer moves it to answered
COMPLAINT: Mapping[tuple[ComplaintStatus, str], ComplaintStatus] = {
    (ComplaintStatus.SUBMITTED, "assign"): ComplaintStatus.ASSIGNED,
    (ComplaintStatus.ASSIGNED, "assign"): ComplaintStatus.ASSIGNED,
    (ComplaintStatus.ANSWERED, "assign"): ComplaintStatus.ASSIGNED,
    (ComplaintStatus.SUBMITTED, "answer"): ComplaintStatus.ANSWERED,
    (ComplaintStatus.ASSIGNED, "answer"): ComplaintStatus.ANSWERED,
    (ComplaintStatus.ANSWERED, "answer"): ComplaintStatus.ANSWERED,
    (ComplaintStatus.SUBMITTED, "follow_up"): ComplaintStatus.SUBMITTED,
    (ComplaintStatus.ASSIGNED, "follow_up"): ComplaintStatus.ASSIGNED,
    (ComplaintStatus.ANSWERED, "follow_up"): ComplaintStatus.ANSWERED,
    (ComplaintStatus.SUBMITTED, "close"): ComplaintStatus.CLOSED,
    (ComplaintStatus.ASSIGNED, "close"): ComplaintStatus.CLOSED,
    (ComplaintStatus.ANSWERED, "close"): ComplaintStatus.CLOSED,
}
