"""Which time range each load balancer fetches this run. Pure functions, no clock.

The rule that keeps Prometheus correct: a datapoint stamped t covers [t, t + period);
it is written only when t + period <= now - settle_delay, because CloudWatch revises
ELB datapoints for about two minutes and a Prometheus sample can never be corrected.
Windows are half-open and start where the last accepted one ended, so consecutive runs
leave no gap and no overlap.
"""

from __future__ import annotations

from dataclasses import dataclass

from lbscrape.core.config import WindowSettings
from lbscrape.core.model import Window


@dataclass(frozen=True)
class WindowPlan:
    window: Window
    skipped: Window | None = None
    """The range given up because the checkpoint was older than max_catchup."""
    realigned_from: int | None = None
    """A checkpoint not on a period boundary (the period changed), moved up to one."""


def settled_end(now: int, w: WindowSettings) -> int:
    """The end of the newest period that is settled: floor((now - settle) / period) * period."""
    return (now - w.settle_delay) // w.period * w.period


def plan_window(now: int, checkpoint: int | None, w: WindowSettings) -> WindowPlan:
    end = settled_end(now, w)
    realigned_from = None
    if checkpoint is None:
        start = end - w.initial_lookback // w.period * w.period
    elif checkpoint % w.period:
        # Rounding up leaves a gap shorter than one period; rounding down would rewrite
        # an already written timestamp with a value of another period length.
        start = -(-checkpoint // w.period) * w.period
        realigned_from = checkpoint
    else:
        start = checkpoint
    skipped = None
    oldest = end - w.max_catchup // w.period * w.period
    if start < oldest:
        skipped = Window(start, oldest, w.period)
        start = oldest
    return WindowPlan(Window(start, max(start, end), w.period), skipped, realigned_from)
