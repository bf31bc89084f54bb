"""In-memory token buckets, one per key (a client IP or an email address).

A bucket holds up to `burst` tokens and refills at `rate` tokens per second. Time comes from the
caller (seconds, e.g. `clock.now().timestamp()`), so tests move it by hand. The number of buckets is
bounded: past `max_keys`, the least recently used are forgotten (a forgotten key starts full again,
which only ever errs towards letting a real person through). Safe to call from several threads.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict


class RateLimiter:
    def __init__(self, rate: float, burst: int, max_keys: int = 50_000) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be positive and burst at least 1")
        self.rate = rate
        self.burst = float(burst)
        self.max_keys = max_keys
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._lock = threading.Lock()

    def _level(self, key: str, now: float) -> float:
        tokens, stamp = self._buckets.get(key, (self.burst, now))
        # A clock that went backwards refills nothing rather than draining the bucket.
        return min(self.burst, tokens + max(0.0, now - stamp) * self.rate)

    def wait(self, key: str, now: float) -> int:
        """Seconds (rounded up, at least 1) until `key` may act again; 0 when it may act now."""
        with self._lock:
            level = self._level(key, now)
        return 0 if level >= 1 else max(1, math.ceil((1 - level) / self.rate))

    def take(self, key: str, now: float) -> int:
        """Spend one token for `key` when there is one (then 0); else the seconds to wait."""
        with self._lock:
            level = self._level(key, now)
            if level < 1:
                self._buckets[key] = (level, now)
                self._buckets.move_to_end(key)
                return max(1, math.ceil((1 - level) / self.rate))
            self._buckets[key] = (level - 1, now)
            self._buckets.move_to_end(key)
            while len(self._buckets) > self.max_keys:
                self._buckets.popitem(last=False)
            return 0
