"""A per-key request rate limit (token bucket), so one misbehaving client cannot starve the others.

Kept in each process: with N app processes a key may send up to N times the rate in all. That
is enough to stop a runaway loop; an exact cluster-wide limit would need a shared store.
"""

import math
import threading
import time


class RateLimiter:
    """Allow `rate` requests per second per key on average, with bursts up to `burst`."""

    def __init__(self, rate: float, burst: float):
        self.rate, self.burst = rate, burst
        self._buckets: dict[int, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def allow(self, key: int) -> tuple[bool, int]:
        """Whether this request may go ahead, and if not, how many seconds to wait."""
        now = time.monotonic()
        with self._lock:
            tokens, last = self._buckets.get(key, (self.burst, now))
            tokens = min(self.burst, tokens + (now - last) * self.rate)
            if tokens >= 1:
                self._buckets[key] = (tokens - 1, now)
                return True, 0
            self._buckets[key] = (tokens, now)
            return False, max(1, math.ceil((1 - tokens) / self.rate))
