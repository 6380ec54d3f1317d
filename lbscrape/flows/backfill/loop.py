"""The backfill loop: one call at a time, fetched, written and recorded."""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from lbscrape.aws import cloudwatch
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
        sink: Sink, progress: Progress | None = None) -> Outcome:
    """Fetch and write every call not done yet, in order, saving progress after each
    request. A call whose fetch failed stops the backfill there, for --resume: writing
    later calls first would put a series' pieces out of time order (promtool drops such
    samples; a TSDB without an out-of-order window refuses them). An endpoint that stops
    accepting stops it too (BackfillStopped)."""
    out = Outcome()
    by_key = {t.key: t for t in plan.targets}
    total = len(plan.calls)
    for i, call in enumerate(plan.calls):
        if i in state.done:
            continue
        fetched = cloudwatch.fetch(cw, [call])
        out.gmd_calls += fetched.calls
        out.metrics_requested += fetched.metrics_requested
        if fetched.failed:
            # All or nothing per call: a partly written call could not be resumed exactly.
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
    if len(state.done) == total:
        sink.finish(state)
    return out


def _series(fetched: cloudwatch.FetchResult, by_key: dict[str, Target]
            ) -> tuple[list[Series], int]:
    """The call's series in a fixed order (a resumed call skips requests by position),
    with each target's sparse counters zero-filled; and how many zeros that added."""
    by_target: dict[str, dict[MetricSpec, list[Sample]]] = defaultdict(dict)
    for (key, spec), samples in fetched.samples.items():
        by_target[key][spec] = samples
    out, filled = [], 0
    for key in sorted(by_target):
        data, fill = by_target[key], by_key[key].fill
        if fill is not None:
            data, n = zero_fill(data, fill)
            filled += n
        out += build_series(data, dict(by_key[key].labels))
    return out, filled
