"""A client-side limit on GetMetricData's rates, shared by every worker of a process.

CloudWatch allows 50 GetMetricData calls per second per account and region, and
180,000 datapoints per second for calls whose StartTime is within 3 hours (396,000
for older ones), counted from the *estimated* datapoints (queries x time range /
period), all shared with every other tool of the account. lbscrape stays under its
share of them, so that it does not cause the throttling it would then have to retry.

Each call books the earliest moment at which both rates allow it (a virtual schedule,
GCRA without burst): workers are served in order, and over any interval the calls and
datapoints stay within the rates plus one call. A throttle that happens anyway (other
tools use the quota too) halves both rates and pauses every worker for a second, not
only the one that was refused; each call that succeeds then gives back a little, up to
the configured rates.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from lbscrape.core.config import CloudWatchLimits

RECENT = 3 * 3600
"""A call whose StartTime is within this of now counts against the lower DPS quota."""
THROTTLE_PAUSE = 1.0
MIN_SCALE = 1 / 16
RECOVERY = 1.05
"""Per successful call, the rates grow back by this factor after a throttle."""
UNLIMITED = CloudWatchLimits(max_tps=float("inf"), dps_share=float("inf"))
"""No rate limit (tests, and callers that pace themselves)."""


class RateLimiter:
    def __init__(self, limits: CloudWatchLimits,
                 clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time, pause: float = THROTTLE_PAUSE) -> None:
        self.limits = limits
        self.pause = pause
        self._clock = clock
        self._wall = wall
        self._lock = threading.Lock()
        self._next_call = 0.0  # when the calls-per-second schedule is free again
        self._next_dps = 0.0  # when the datapoints-per-second schedule is free again
        self.scale = 1.0
        """The share of the configured rates used now (< 1 after a throttle)."""
        self.throttles = 0

    def acquire(self, datapoints: int, start_time: int, sleep: Callable[[float], bool]
                ) -> bool:
        """Wait (with `sleep`, which returns False to give up) until a call of
        `datapoints` estimated datapoints starting at `start_time` may be made. A worker
        that was waiting when a throttle came in books again, behind the pause."""
        while True:
            with self._lock:
                seen = self.throttles
            if not sleep(self.reserve(datapoints, start_time)):
                return False
            with self._lock:
                if self.throttles == seen:
                    return True

    def reserve(self, datapoints: int, start_time: int) -> float:
        """Book one call of `datapoints` estimated datapoints starting at `start_time`
        (epoch seconds); returns how many seconds to wait before making it."""
        recent = start_time >= self._wall() - RECENT
        with self._lock:
            dps = self.limits.max_dps(recent) * self.scale
            tps = self.limits.max_tps * self.scale
            now = self._clock()
            at = max(now, self._next_call, self._next_dps)
            self._next_call = at + 1 / tps
            self._next_dps = at + datapoints / dps
            return at - now

    def throttled(self) -> None:
        """CloudWatch refused a call as over its rate: slow every worker down."""
        with self._lock:
            self.throttles += 1
            self.scale = max(MIN_SCALE, self.scale / 2)
            resume = self._clock() + self.pause
            self._next_call = max(self._next_call, resume)
            self._next_dps = max(self._next_dps, resume)

    def succeeded(self) -> None:
        if self.scale < 1.0:
            with self._lock:
                self.scale = min(1.0, self.scale * RECOVERY)
