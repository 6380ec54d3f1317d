"""How long a run may still take.

A CronJob run must end before the next slot (and before the Job's activeDeadlineSeconds
kills it). The budget ends at --deadline. Fetching stops a reserve earlier (a quarter of
the deadline, at most 10 s), so what was fetched can still be written and checkpointed;
SIGTERM stops fetching at once and pulls the end in to a short grace period.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class Budget:
    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._end = clock() + seconds
        self._fetch_end = self._end - min(10.0, seconds / 4)
        self._stop = threading.Event()
        self.reason = "the run deadline (--deadline) was reached"

    def remaining(self) -> float:
        return max(0.0, self._end - self._clock())

    @property
    def expired(self) -> bool:
        return self.remaining() <= 0

    @property
    def stopping(self) -> bool:
        """No new fetches: a stop was requested or the time for fetching is up."""
        return self._stop.is_set() or self._clock() >= self._fetch_end

    def wait(self, seconds: float) -> bool:
        """Sleep `seconds`, or less if fetching stops first; True if fetching may go on."""
        if seconds > 0:
            self._stop.wait(min(seconds, max(0.0, self._fetch_end - self._clock())))
        return not self.stopping

    def stop(self, reason: str, grace: float) -> None:
        """Stop fetching now; allow `grace` more seconds to write and checkpoint."""
        self.reason = reason
        self._stop.set()
        self._end = min(self._end, self._clock() + grace)


def unlimited() -> Budget:
    return Budget(float("inf"))
