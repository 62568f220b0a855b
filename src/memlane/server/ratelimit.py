"""Per-key rate limits: a rate (`50/s`, `600/min`) and a token bucket per API key.

The buckets live in the server process. With `memlane serve --workers N` each worker keeps its
own, so a key may reach up to N times its rate in total; run one worker (or put a shared limiter
in front) where the exact rate matters."""

from __future__ import annotations

import math
import re
import threading
import time
from dataclasses import dataclass
from typing import Callable

from memlane.errors import InputError, RateLimitError

UNITS = {"s": 1.0, "sec": 1.0, "min": 60.0, "h": 3600.0, "hour": 3600.0}
MAX_COUNT = 1_000_000
_RATE = re.compile(r"^\s*(\d{1,7})\s*/\s*([a-z]+)\s*$")


@dataclass(frozen=True)
class Rate:
    """`count` requests per `seconds`; the bucket holds `count` (a burst) and refills evenly."""

    count: int
    seconds: float

    @classmethod
    def parse(cls, text: object, *, field: str = "rate") -> "Rate":
        """A rate from its text: a whole number of requests per s, min or h, e.g. `50/s`."""
        match = _RATE.match(text) if isinstance(text, str) else None
        if match is None or match.group(2) not in UNITS or not 1 <= int(match.group(1)) <= MAX_COUNT:
            shown = repr(text) if isinstance(text, str) else type(text).__name__
            raise InputError(f"{shown} is not a rate", field=field,
                             fix=f"write requests per unit, 1 to {MAX_COUNT:,} per {', '.join(UNITS)}: e.g. 50/s or 600/min")
        return cls(int(match.group(1)), UNITS[match.group(2)])

    @property
    def per_second(self) -> float:
        return self.count / self.seconds

    def __str__(self) -> str:
        unit = {1.0: "s", 60.0: "min", 3600.0: "h"}[self.seconds]
        return f"{self.count}/{unit}"


class RateLimiter:
    """One token bucket per key: a request takes a token; a key without tokens is refused with
    RateLimitError, whose `retry_after` says when the next token arrives. Thread-safe."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # key id -> (tokens, at)
        self._lock = threading.Lock()

    def check(self, key_id: str, rate: Rate | None) -> None:
        """Take one token from the key's bucket, or raise RateLimitError. No rate: no limit."""
        if rate is None:
            return
        now = self._clock()
        with self._lock:
            tokens, at = self._buckets.get(key_id, (float(rate.count), now))
            tokens = min(float(rate.count), tokens + (now - at) * rate.per_second)
            if tokens < 1.0:
                self._buckets[key_id] = (tokens, now)
                wait = (1.0 - tokens) / rate.per_second
                raise RateLimitError(f"this API key is limited to {rate} requests; retry in "
                                     f"{max(1, math.ceil(wait))} s", retry_after=wait)
            self._buckets[key_id] = (tokens - 1.0, now)

    def forget(self, key_id: str) -> None:
        """Drop a key's bucket (a revoked key needs none)."""
        with self._lock:
            self._buckets.pop(key_id, None)
