"""Sign-in attempts (and parents' sign-in codes) per client, with the `limits` library (a moving window in
this process's memory).

Kept small so that it can join the API's per-client throttle (api/throttle.py) when the two meet.
"""

from __future__ import annotations

from limits import RateLimitItemPerHour, RateLimitItemPerMinute
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter

SIGN_IN_ATTEMPTS = RateLimitItemPerMinute(10)  # a person mistyping; not a password list
# sign-in codes asked for by one client, whatever the phones: a family's few, not a sweep of numbers
CODE_REQUESTS = RateLimitItemPerHour(20)
_limiter = MovingWindowRateLimiter(MemoryStorage())


def allow_sign_in(client: str, name: str) -> bool:
    """Count an attempt from this client (and for this name); False when either is over the limit."""
    by_client = _limiter.hit(SIGN_IN_ATTEMPTS, "sign-in", "client", client)
    by_name = _limiter.hit(SIGN_IN_ATTEMPTS, "sign-in", "name", name.strip().lower())
    return by_client and by_name


def allow_code_request(client: str) -> bool:
    """Count a sign-in code asked for from this client; False when it is over the limit."""
    return _limiter.hit(CODE_REQUESTS, "sign-in-code", "client", client)


def reset_sign_in_attempts() -> None:
    """Forget every attempt (tests)."""
    _limiter.storage.reset()
