"""Failed sign-ins and token checks, counted per client: past the limit a client is answered 429.

One throttle per app (`app.state.throttle`), in the worker's memory: `limits` also keeps its windows in
Redis or memcached should several workers need to share them. A sign-in form counts its failures here too:
`count_failure(client)` after a wrong password, `retry_after(client)` before checking one.
"""

from __future__ import annotations

import math
import time

from limits import RateLimitItem, parse
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter

from escrow.errors import TooManyAttempts

NAMESPACE = "failed_authentication"


class Throttle:
    """A moving window of failures per client (its address)."""

    def __init__(self, limit: str) -> None:
        self.limit: RateLimitItem = parse(limit)
        self._limiter = MovingWindowRateLimiter(MemoryStorage())

    def count_failure(self, client: str) -> None:
        """One more failed attempt from `client`."""
        self._limiter.hit(self.limit, NAMESPACE, client)

    def retry_after(self, client: str) -> int | None:
        """Seconds until `client` may try again, or None while it is under the limit."""
        if self._limiter.test(self.limit, NAMESPACE, client):
            return None
        reset_at = self._limiter.get_window_stats(self.limit, NAMESPACE, client).reset_time
        return max(1, math.ceil(reset_at - time.time()))

    def check_client(self, client: str) -> None:
        """TooManyAttempts while `client` is over the limit."""
        wait = self.retry_after(client)
        if wait is not None:
            raise TooManyAttempts(wait)
