"""The backfill loop: calls fetched concurrently, written and recorded one at a time."""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from lbscrape.aws import cloudwatch, fetcher
from lbscrape.core.config import CloudWatchLimits
from lbscrape.core.model import (
    MetricSpec,
    Sample,
    Series,
)
from lbscrape.flows.backfill.plan import Plan, Target
from lbscrape.flows.backfill.sinks import Sink
from lbscrape.flows.backfill.state import State, StateFile
from lbscrape.prom.series import build_series, zero_fill

log = logging.getLogger(__name__)


@dataclass
class Outcome:
    calls_done: int = 0
    failed: dict[int, str] = field(default_factory=dict)
    """call -> why its data could not be fetched (retry with --resume)."""
    gmd_calls: int = 0
    metrics_requested: int = 0
    samples_zero_filled: int = 0


Progress = Callable[[int, int, State], Any]


def run(plan: Plan, state: State, store: StateFile, cw: cloudwatch.CloudWatchClient,
        sink: Sink, progress: Progress | None = None,
        limits: CloudWatchLimits | None = None) -> Outcome:
    """Fetch and write every call not done yet, in order, saving progress after each
    request. The calls are fetched concurrently (lbscrape.aws.fetcher) and written in
    plan order as they come in, so a series' pieces reach the sink in time order. A
    call whose fetch failed stops the backfill there, for --resume: writing later calls
    first would put a series' pieces out of time order (promtool drops such samples; a
    TSDB without an out-of-order window refuses them). An endpoint that stops accepting
    stops it too (BackfillStopped)."""
    out = Outcome()
    by_key = {t.key: t for t in plan.targets}
    total = len(plan.calls)
    todo = [i for i in range(total) if i not in state.done]
    results = fetcher.fetch_ordered(cw, [plan.calls[i] for i in todo],
                                    limits or CloudWatchLimits())
    try:
        for i, fetched in zip(todo, results, strict=False):
            out.gmd_calls += fetched.requests
            out.metrics_requested += fetched.metrics_requested
            if fetched.failed:
                # All or nothing per call: a partly written call could not be resumed
                # exactly.
                out.failed[i] = "; ".join(sorted(set(fetched.failed.values())))
                log.warning("call %d/%d not written: %s; --resume retries it", i + 1, total,
                            out.failed[i])
                break
            series, filled = _series(fetched, by_key)
            out.samples_zero_filled += filled
            sink.write(i, series, state, lambda: store.save(state))
            state.done.add(i)
            state.partial = None
            store.save(state)
            out.calls_done += 1
            if progress:
                progress(len(state.done), total, state)
    finally:
        results.close()  # start no more calls
    if len(state.done) == total:
        sink.finish(state)
    return out


def _series(fetched: cloudwatch.CallResult, by_key: dict[str, Target]
            ) -> tuple[list[Series], int]:
    """The call's series in a fixed order (a resumed call skips requests by position),
    with each target's sparse counters zero-filled; and how many zeros that added."""
    by_target: dict[str, dict[MetricSpec, list[Sample]]] = defaultdict(dict)
    for q, samples in zip(fetched.call.queries, fetched.samples, strict=True):
        by_target[q.lb_key].setdefault(q.spec, []).extend(samples)
    out, filled = [], 0
    for key in sorted(by_target):
        data, fill = by_target[key], by_key[key].fill
        if fill is not None:
            data, n = zero_fill(data, fill)
            filled += n
        out += build_series(data, dict(by_key[key].labels))
    return out, filled
