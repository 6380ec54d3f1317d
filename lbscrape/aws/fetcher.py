"""GetMetricData calls run concurrently, and their results come back in plan order.

Threads (daemon ones: lbscrape.core.background), because the work is waiting on
CloudWatch and a boto3 client is thread-safe:
at most `concurrency` calls are in flight, all under one RateLimiter, and results are
handed over in the order of the plan as soon as each one and those before it are done,
so the caller writes while later calls are still in flight. Only a few results more
than the calls in flight, and a few hundred thousand datapoints at most, wait to be
taken: memory is bounded by the concurrency, not by the size of the plan.

`by_load_balancer` turns the results into one complete set of data per load balancer,
released as soon as the last call that carries its queries is in, which is what lets a
run write (and checkpoint) a load balancer while the rest is still being fetched.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Generator, Iterable, Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field

from lbscrape.aws.cloudwatch import Call, CallResult, CloudWatchClient, fetch_call
from lbscrape.aws.limits import RateLimiter
from lbscrape.core.background import Workers
from lbscrape.core.budget import Budget, unlimited
from lbscrape.core.config import CloudWatchLimits
from lbscrape.core.model import MetricSpec, Sample

AHEAD = 2
"""Results fetched ahead of the one being taken, beyond the calls in flight."""
AHEAD_DATAPOINTS = 400_000
"""And at most this many datapoints (a few of a backfill's large calls) fetched ahead."""


def fetch_ordered(client: CloudWatchClient, calls: Sequence[Call], limits: CloudWatchLimits,
                  budget: Budget | None = None, limiter: RateLimiter | None = None
                  ) -> Generator[CallResult, None, None]:
    """Every call's result, in the order of `calls`. A call that fails yields a result
    that says so; an error every call would hit (credentials) is raised when its result
    is taken, and what was not started yet is never sent."""
    budget = budget or unlimited()
    limiter = limiter or RateLimiter(limits)
    if not calls:
        return
    pool = Workers(min(limits.concurrency, len(calls)), "getmetricdata")
    pending: deque[tuple[Future[CallResult], int]] = deque()
    todo = deque(calls)

    def submit() -> None:
        ahead = sum(n for _, n in pending)
        while todo and len(pending) < limits.concurrency + AHEAD and (
                not pending or ahead + todo[0].datapoints <= AHEAD_DATAPOINTS):
            call = todo.popleft()
            pending.append((pool.submit(fetch_call, client, call, budget, limiter),
                            call.datapoints))
            ahead += call.datapoints

    try:
        submit()
        while pending:
            result = pending.popleft()[0].result()
            submit()
            yield result
    finally:
        # Taken no further (an error, the deadline, or the caller stopped): start nothing
        # more; a call in flight ends by its own timeout, on a daemon thread that does
        # not hold the process's exit.
        pool.stop()


@dataclass
class LbData:
    """Everything this run fetched for one load balancer."""

    lb_key: str
    samples: dict[MetricSpec, list[Sample]] = field(default_factory=dict)
    tg_samples: dict[str, dict[MetricSpec, list[Sample]]] = field(default_factory=dict)
    """Target group dimension -> its samples."""
    failed: str | None = None
    """Why its data is incomplete (the first reason)."""


def by_load_balancer(keys: Sequence[str], calls: Sequence[Call],
                     results: Iterable[CallResult]) -> Iterator[LbData]:
    """One LbData per key: first those with nothing to fetch, then each as soon as the
    last call that carries its queries is among `results` (in the order of `calls`)."""
    last: dict[str, int] = {}
    for i, call in enumerate(calls):
        for q in call.queries:
            last[q.lb_key] = i
    complete_at: dict[int, list[str]] = {}
    for key, i in last.items():
        complete_at.setdefault(i, []).append(key)
    for key in keys:
        if key not in last:
            yield LbData(key)
    open_: dict[str, LbData] = {}
    for i, r in enumerate(results):
        for q, samples in zip(r.call.queries, r.samples, strict=True):
            data = open_.get(q.lb_key) or open_.setdefault(q.lb_key, LbData(q.lb_key))
            into = data.tg_samples.setdefault(q.target_group, {}) if q.target_group \
                else data.samples
            into.setdefault(q.spec, []).extend(samples)
        for key, why in r.failed.items():
            data = open_.setdefault(key, LbData(key))
            data.failed = data.failed or why
        for key in complete_at.get(i, ()):
            yield open_.pop(key) if key in open_ else LbData(key)
