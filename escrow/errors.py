"""The one error hierarchy of the core. `api/problems.py` maps each class to an HTTP status.

Every error carries a stable machine-readable `code` and a sentence a person can act on.
"""

from __future__ import annotations

from typing import Any, ClassVar


class EscrowError(Exception):
    """Base of every expected failure; never a 500."""

    code: ClassVar[str] = "escrow_error"
    title: ClassVar[str] = "Request refused"

    def __init__(self, detail: str, **context: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.context = context


class NotFound(EscrowError):
    code = "not_found"
    title = "Not found"


class InvalidRequest(EscrowError):
    """The request itself is wrong; nothing was changed."""

    code = "invalid_request"
    title = "Invalid request"


class UnbalancedTransaction(InvalidRequest):
    code = "unbalanced_transaction"
    title = "Transaction does not balance"

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems), problems=problems)
        self.problems = problems


class Conflict(EscrowError):
    """The request is well formed but clashes with the state of the books."""

    code = "conflict"
    title = "Conflict with current state"


class InsufficientFunds(Conflict):
    code = "insufficient_funds"
    title = "Insufficient funds"


class IdempotencyConflict(Conflict):
    code = "idempotency_key_reused"
    title = "Idempotency key reused with a different request"


class AlreadyReversed(Conflict):
    code = "already_reversed"
    title = "Transaction already reversed"


class AccountConflict(Conflict):
    code = "account_conflict"
    title = "Account exists with other attributes"


class Unauthenticated(EscrowError):
    code = "unauthenticated"
    title = "Authentication required"


class Forbidden(EscrowError):
    """The caller's role may not do this at all (objects outside one's scope are NotFound instead)."""

    code = "forbidden"
    title = "Not allowed for this role"


class PolicyViolation(InvalidRequest):
    """A rule of the jurisdiction's policy refuses the request (a cap, a price ceiling)."""

    code = "policy_violation"
    title = "Refused by policy"

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems), problems=problems)


class InstitutionOnHold(Conflict):
    code = "institution_on_hold"
    title = "Institution on hold"


class CalendarYearMissing(Conflict):
    """Working days were to be counted through a year with no official calendar data."""

    code = "calendar_year_missing"
    title = "No official calendar for that year"


class TooManyAttempts(EscrowError):
    """Too many failed sign-ins or token checks from one client; it may try again after a while."""

    code = "too_many_failed_attempts"
    title = "Too many failed attempts"

    def __init__(self, retry_after_s: int) -> None:
        super().__init__(
            f"too many failed sign-ins or token checks from this client; try again in {retry_after_s} s",
            retry_after_s=retry_after_s,
        )
        self.retry_after_s = retry_after_s


class PayloadTooLarge(InvalidRequest):
    code = "payload_too_large"
    title = "Request body too large"


class CodeRequestsExhausted(TooManyAttempts):
    """Sign-in codes are asked for this phone (or from this client) faster than one may be sent."""

    code = "too_many_code_requests"
    title = "Too many sign-in codes asked for"

    def __init__(self, retry_after_s: int) -> None:
        EscrowError.__init__(
            self,
            f"a sign-in code was sent a moment ago, or too many this hour; ask again in {retry_after_s} s",
            retry_after_s=retry_after_s,
        )
        self.retry_after_s = retry_after_s
