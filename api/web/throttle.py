"""Sign-in attempts per client, with the `limits` library (a moving window in this process's memory).

Kept small so that it can join the API's per-client throttle (api/throttle.py) when the two meet.
"""

from __future__ import annotations

from limits import RateLimitItemPerMinute
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter

SIGN_IN_ATTEMPTS = RateLimitItemPerMinute(10)  # a person mistyping; not a password list
_limiter = MovingWindowRateLimiter(MemoryStorage())


def allow_sign_in(client: str, name: str) -> bool:
    """Count an attempt from this client (and for this name); False when either is over the limit."""
    by_client = _limiter.hit(SIGN_IN_ATTEMPTS, "sign-in", "client", client)
    by_name = _limiter.hit(SIGN_IN_ATTEMPTS, "sign-in", "name", name.strip().lower())
    return by_client and by_name


def reset_sign_in_attempts() -> None:
    """Forget every attempt (tests)."""
    _limiter.storage.reset()
