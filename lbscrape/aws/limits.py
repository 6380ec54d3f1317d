"""A client-side limit on GetMetricData's rates, shared by every worker of a process.

CloudWatch allows 50 GetMetricData calls per second per account and region, and
180,000 datapoints per second for calls whose StartTime is within 3 hours (396,000
for older ones), counted from the *estimated* datapoints (queries x time range /
period), all shared with every other tool of the account. lbscrape stays under its
share of them, so that it does not cause the throttling it would then have to retry.

Each call books the earliest moment at which both rates allow it, in the order the
workers ask: calls are spaced by 1 / calls-per-second, and a call starts only when the
datapoints of the calls started in the second before it, with its own, stay within the
rate (CloudWatch counts a call whole when it arrives, so spacing alone would let one
large call too many into a second). A throttle that happens anyway (other tools use the
quota too) halves both rates and pauses every worker for a second, not only the one
that was refused; each call that succeeds then gives back a little, up to the
configured rates.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

from lbscrape.core.config import CloudWatchLimits

RECENT = 3 * 3600
"""A call whose StartTime is within this of now counts against the lower DPS quota."""
THROTTLE_PAUSE = 1.0
SECOND = 1.1
"""The second within which a call's datapoints count, with a margin: a request leaves a
little after its turn, and CloudWatch counts it when it arrives."""
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
        self._next_call = 0.0  # when the calls-per-second spacing allows the next call
        self._second: deque[tuple[float, float]] = deque()
        """(start, share of the datapoint rate) of the calls booked in the last second."""
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
            share = datapoints / (self.limits.max_dps(recent) * self.scale)
            now = self._clock()
            at = max(now, self._next_call)
            while True:
                while self._second and self._second[0][0] <= at - SECOND:
                    self._second.popleft()
                # A call larger than the whole rate goes alone.
                if not self._second or sum(x for _, x in self._second) + share <= 1:
                    break
                at = self._second[0][0] + SECOND
            self._second.append((at, share))
            self._next_call = at + 1 / (self.limits.max_tps * self.scale)
            return at - now

    def throttled(self) -> None:
        """CloudWatch refused a call as over its rate: slow every worker down."""
        with self._lock:
            self.throttles += 1
            self.scale = max(MIN_SCALE, self.scale / 2)
            self._next_call = max(self._next_call, self._clock() + self.pause)

    def succeeded(self) -> None:
        if self.scale < 1.0:
            with self._lock:
                self.scale = min(1.0, self.scale * RECOVERY)
