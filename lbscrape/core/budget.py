"""How long a run may still take.

A CronJob run must end before the next slot (and before the Job's activeDeadlineSeconds
kills it). The budget ends at --deadline. Fetching stops a reserve earlier (a quarter of
the deadline, at most 10 s), so what was fetched can still be written and checkpointed;
SIGTERM stops fetching at once and pulls the end in to a short grace period.

Stopping new work is cooperative (`stopping`, `expired`); a request already in flight is
abandoned by the run's timer (lbscrape.flows.run), which raises Abandoned at `abandon_at`:
- while fetching (discovery included): halfway from the end of fetching to the end, so
  what was fetched can still be written;
- while writing: at the end;
- while storing checkpoints: at the end, but never less than FINISH_SECONDS after the
  checkpoints were started, so what was written is not repeated for want of a second.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from typing import Literal

Phase = Literal["fetch", "write", "finish"]
FINISH_SECONDS = 2.0


class Abandoned(BaseException):  # noqa: N818 - like KeyboardInterrupt, not an error
    """Raised by the run's timer into a request still in flight at `abandon_at`. A
    BaseException, so the client libraries' `except Exception` do not swallow it; each
    stage catches it where it can keep what it finished."""


class Budget:
    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._end = clock() + seconds
        self._fetch_end = self._end - min(10.0, seconds / 4)
        self._stop = threading.Event()
        self._phase: Phase = "fetch"
        self._finish_from = 0.0
        self.reason = "the run deadline (--deadline) was reached"
        self.watcher: Callable[[float], None] | None = None
        """Called with the seconds to abandon_at whenever it changes: the run arms its
        timer with them."""

    def remaining(self) -> float:
        return max(0.0, self._end - self._clock())

    @property
    def expired(self) -> bool:
        return self.remaining() <= 0

    @property
    def stopping(self) -> bool:
        """No new fetches: a stop was requested or the time for fetching is up."""
        return self._stop.is_set() or self._clock() >= self._fetch_end

    def stop(self, reason: str, grace: float) -> None:
        """Stop fetching now; allow `grace` more seconds to write and checkpoint."""
        self.reason = reason
        self._stop.set()
        now = self._clock()
        self._end = min(self._end, now + grace)
        self._fetch_end = min(self._fetch_end, now)
        self._notify()

    def enter(self, phase: Phase) -> None:
        """The run moves on to `phase`; a request in flight is abandoned accordingly."""
        self._phase = phase
        if phase == "finish":
            self._finish_from = self._clock()
        self._notify()

    @property
    def abandon_at(self) -> float:
        """When (on the budget's clock) a request still in flight is abandoned."""
        if math.isinf(self._end):
            return self._end
        if self._phase == "fetch":
            return self._fetch_end + (self._end - self._fetch_end) / 2
        if self._phase == "write":
            return self._end
        return max(self._end, self._finish_from + FINISH_SECONDS)

    def _notify(self) -> None:
        if self.watcher is not None:
            self.watcher(self.abandon_at - self._clock())


def unlimited() -> Budget:
    return Budget(float("inf"))
