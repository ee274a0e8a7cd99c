"""Time-ordered UUIDs (version 7, RFC 9562): keyset pages come out in creation order, indexes stay local."""

from __future__ import annotations

import os
import time
from uuid import UUID


def new_id() -> UUID:
    millis = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    value = (millis & (2**48 - 1)) << 80 | 0x7 << 76 | (rand >> 66 & 0xFFF) << 64 | 0b10 << 62 | rand & (2**62 - 1)
    return UUID(int=value)
