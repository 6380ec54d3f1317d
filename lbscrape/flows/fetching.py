"""The run's fetch as a stream of complete load balancers, and what ends it early.

The calls run concurrently (lbscrape.aws.fetcher) while the pipeline writes what came
in; this is what the pipeline iterates, and what it asks afterwards about the load
balancers the stream never delivered.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Generator, Iterator, Sequence

from lbscrape.aws import cloudwatch, fetcher
from lbscrape.core.budget import Abandoned, Budget
from lbscrape.core.config import CloudWatchLimits
from lbscrape.core.errors import LbscrapeError
from lbscrape.core.model import LoadBalancer

log = logging.getLogger(__name__)


class Fetching:
    """The fetch, as each load balancer's data comes in (fetcher.by_load_balancer), its
    calls counted in `counters`. It ends early, instead of raising, when fetching must
    stop: at an error every call would hit (credentials: raise_error raises it once what
    was written is checkpointed), or when a call in flight is abandoned (the deadline or
    SIGTERM's grace: what was fetched is still written). The run is then in its write
    phase."""

    def __init__(self, client: cloudwatch.CloudWatchClient, lbs: Sequence[LoadBalancer],
                 calls: Sequence[cloudwatch.Call], limits: CloudWatchLimits,
                 budget: Budget | None, counters: Counter[str], failed: dict[str, str]
                 ) -> None:
        self._budget, self._counters, self._failed = budget, counters, failed
        self._calls = fetcher.fetch_ordered(client, calls, limits, budget)
        self._data = fetcher.by_load_balancer([lb.key for lb in lbs], calls, self._counted())
        self._it = self._iterate()
        self.seen: set[str] = set()
        self.stopped: str | None = None
        """Why the load balancers not seen were not fetched."""
        self.error: LbscrapeError | None = None

    def __iter__(self) -> Iterator[fetcher.LbData]:
        return self._it

    def _counted(self) -> Iterator[cloudwatch.CallResult]:
        for r in self._calls:
            self._counters.update(gmd_calls=r.requests, metrics_requested=r.metrics_requested)
            yield r

    def _iterate(self) -> Generator[fetcher.LbData, None, None]:
        try:
            for data in self._data:
                self.seen.add(data.lb_key)
                yield data
        except LbscrapeError as e:
            self.error, self.stopped = e, f"not fetched: {e}"
        except Abandoned:  # the call in flight ran out of time: keep what came before it
            reason = self._budget.reason if self._budget else "abandoned"
            log.warning("GetMetricData abandoned in flight: %s", reason)
            self.stopped = f"not fetched: {reason} (a call in flight was abandoned)"
        finally:
            self._calls.close()
            if self._budget is not None:
                self._budget.enter("write")

    def close(self) -> None:
        """Fetch no more (delivery may have stopped before the end)."""
        self._it.close()

    def fail_the_rest(self, lbs: Sequence[LoadBalancer],
                      done: Callable[[LoadBalancer], bool]) -> None:
        """Every load balancer neither done nor failed yet: not fetched (why), or fetched
        but not handed to the endpoint before delivery ended."""
        reason = self._budget.reason if self._budget else "the run ended"
        for lb in lbs:
            if not done(lb) and lb.name not in self._failed:
                self._failed[lb.name] = self.stopped if lb.key not in self.seen \
                    and self.stopped else f"not written: {reason}"

    def raise_error(self) -> None:
        if self.error is not None:
            raise self.error
