"""A backfill's plan, pure: the range CloudWatch still holds at the period, and the
GetMetricData calls that request every (load balancer, metric, statistic) once.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from lbscrape.aws import cloudwatch
from lbscrape.aws.cost import PRICE_PER_1000
from lbscrape.core.catalog import KINDS, Catalog, FillPlan
from lbscrape.core.config import parse_duration
from lbscrape.core.errors import ConfigError
from lbscrape.core.model import (
    Labels,
    LoadBalancer,
    MetricSpec,
    Window,
    isotime,
    parse_isotime,
)
from lbscrape.prom.series import tg_labels

log = logging.getLogger(__name__)


DAY = 86400
# GetMetricData's rule: a start less than 15 days ago takes any multiple of 60 s, up to
# 63 days ago a multiple of 300 s, up to 455 days ago a multiple of 3600 s.
RETENTION = ((60, 15 * DAY), (300, 63 * DAY), (3600, 455 * DAY))
TG_KEY_SEPARATOR = "|"  # a target group's target key: "<load balancer key>|<TargetGroup>"


_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def parse_when(text: str, now: int, option: str) -> int:
    """'2026-11-01T06:00:00Z', '2026-11-01' (UTC midnight), epoch seconds, 'now' or a
    time ago ('-6h', '-2d12h') -> seconds since the epoch."""
    t = text.strip()
    try:
        if t == "now":
            return now
        if t.startswith("-"):
            return now - parse_duration(t[1:], option)
        if t.isdigit():
            return int(t)
        if _DATE.fullmatch(t):
            return int(datetime.fromisoformat(t).replace(tzinfo=UTC).timestamp())
        return parse_isotime(t)
    except (ConfigError, ValueError):
        raise ConfigError(
            f"{option}: cannot read time {text!r}; use RFC 3339 (2026-11-01T06:00:00Z), a "
            "date (2026-11-01, midnight UTC), epoch seconds, or a time ago (-6h, -2d)"
        ) from None


def kept_for(period: int) -> int:
    """How far back GetMetricData serves data at this period."""
    return max(k for p, k in RETENTION if period % p == 0)


def plan_range(start: int, end: int, period: int, settle_delay: int, now: int) -> Window:
    """The whole periods to backfill: from start (rounded down to a period) to end,
    clamped so that every period ended at least settle_delay ago. Raises ConfigError
    for an empty range or one older than CloudWatch keeps at this period."""
    settled = (now - settle_delay) // period * period
    s = start // period * period
    e = min(end, settled) // period * period
    if e <= s:
        raise ConfigError(
            f"--start/--end: {isotime(start)}..{isotime(end)} holds no settled {period}s "
            f"period (nothing ends before {isotime(settled)}, now minus the settle delay)")
    kept = kept_for(period)
    if s < now - kept:
        better = [p for p, k in RETENTION if p > period and s >= now - k]
        where = f"CloudWatch keeps {period}s-period data for {kept // DAY} days"
        if better:
            p = better[0]
            unit = f"{p // 3600}h" if p % 3600 == 0 else f"{p // 60}m"
            raise ConfigError(
                f"--start: {isotime(s)} is older than {where}; use --period {unit} "
                f"({_span(p)} data is kept for {kept_for(p) // DAY} days)")
        raise ConfigError(f"--start: {isotime(s)} is older than {where}, and no ELB data "
                          f"is kept longer than {RETENTION[-1][1] // DAY} days")
    return Window(s, e, period)


def _span(period: int) -> str:
    return f"{period // 3600}-hour" if period % 3600 == 0 else f"{period // 60}-minute"


# --- plan -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Target:
    """One load balancer, or one of its target groups, to backfill, with everything needed
    to write it. A target group's key is `<lb key>|<TargetGroup>`; its name is its load
    balancer's (the state file format is the same: a target group is a Target with one
    more dimension and label)."""

    key: str
    name: str
    dimensions: tuple[tuple[str, str], ...]
    labels: Labels
    """Every label but __name__."""
    specs: tuple[MetricSpec, ...]
    fill: FillPlan | None = None
    """Zero-fill of its sparse counters (specs among `specs`); None with --no-zero-fill."""


def targets_of(lb: LoadBalancer, catalog: Catalog, labels: dict[str, str],
               zero_fill: bool) -> list[Target]:
    """The load balancer's Target and one per target group, labelled as `run` labels them."""
    out = [Target(lb.key, lb.name, ((KINDS[lb.type].dimension, lb.dimension),),
                  tuple(sorted(labels.items())), catalog.specs(lb.type),
                  catalog.fill_plan(lb.type) if zero_fill else None)]
    tg_specs = catalog.specs(lb.type, "target_group")
    if tg_specs:
        out += [Target(f"{lb.key}{TG_KEY_SEPARATOR}{tg.dimension}", lb.name,
                       cloudwatch.target_dimensions(lb, tg),
                       tuple(sorted(tg_labels(labels, tg).items())),
                       tg_specs,
                       catalog.fill_plan(lb.type, "target_group") if zero_fill else None)
                for tg in lb.target_groups]
    return out


def _is_tg(t: Target) -> bool:
    return any(name == "TargetGroup" for name, _ in t.dimensions)


@dataclass(frozen=True)
class Plan:
    window: Window
    targets: tuple[Target, ...]
    calls: tuple[cloudwatch.Call, ...]

    @property
    def metrics_requested(self) -> int:
        return sum(len(c.queries) for c in self.calls)

    @property
    def datapoints(self) -> int:
        """At most this many: CloudWatch has no datapoint for a quiet sparse counter."""
        return sum(c.datapoints for c in self.calls)

    @property
    def dollars(self) -> float:
        return self.metrics_requested * PRICE_PER_1000 / 1000


def make_plan(window: Window, targets: Sequence[Target],
              max_queries: int = cloudwatch.MAX_QUERIES_PER_CALL) -> Plan:
    """Each (target, metric, statistic) is requested once when the range fits one call's
    100,800 datapoints (any range CloudWatch keeps does), packed up to 500 per call."""
    if any(_fills(t) for t in targets):
        return Plan(window, tuple(targets), tuple(_whole_target_calls(window, targets,
                                                                      max_queries)))
    calls = cloudwatch.plan_calls(
        (cloudwatch.FetchTarget(t.key, t.dimensions, window, t.specs) for t in targets),
        max_queries)
    return Plan(window, tuple(targets), tuple(calls))


def _fills(t: Target) -> bool:
    return t.fill is not None and t.fill.traffic is not None and bool(t.fill.sparse)


def _whole_target_calls(window: Window, targets: Sequence[Target], max_queries: int
                        ) -> list[cloudwatch.Call]:
    """Calls that each carry all of a target's metrics, for zero-fill: it needs the traffic
    metric's datapoints in the same call as the sparse counters, since calls are written
    one at a time. When a target's metrics over the whole range exceed one call's
    datapoints (an ALB's 14 at 1 minute: past 5 days), the range is cut in time and each
    piece requested on its own, which costs one request of each metric per piece."""
    targets = [t for t in targets if t.specs]
    if not targets or window.empty:
        return []
    biggest = max(len(t.specs) for t in targets)
    if biggest > max_queries:
        raise ConfigError(f"--zero-fill: a load balancer has {biggest} metrics, more than the "
                          f"{max_queries} one GetMetricData call holds; pass --no-zero-fill")
    calls = []
    for piece in cloudwatch.split_window(window, cloudwatch.MAX_DATAPOINTS_PER_CALL // biggest):
        per_call = min(max_queries, cloudwatch.MAX_DATAPOINTS_PER_CALL // piece.periods)
        chunk: list[tuple[Target, MetricSpec]] = []
        for t in targets:
            if len(chunk) + len(t.specs) > per_call:
                calls.append(_call(piece, chunk))
                chunk = []
            chunk += [(t, s) for s in t.specs]
        calls.append(_call(piece, chunk))
    return calls


def _call(window: Window, pairs: Sequence[tuple[Target, MetricSpec]]) -> cloudwatch.Call:
    return cloudwatch.Call(window, tuple(cloudwatch.Query(f"q{n}", t.key, t.dimensions, s)
                                         for n, (t, s) in enumerate(pairs)))


def describe(plan: Plan) -> list[str]:
    w = plan.window
    lbs = [t for t in plan.targets if not _is_tg(t)]
    tgs = len(plan.targets) - len(lbs)
    filled = sum(1 for t in lbs if _fills(t))
    return [
        f"backfill {isotime(w.start)}..{isotime(w.end)} ({w.periods} periods of {w.period}s) "
        f"for {len(lbs)} load balancers{f' and {tgs} of their target groups' if tgs else ''}: "
        + ", ".join(sorted(t.name for t in lbs)),
        f"GetMetricData: {len(plan.calls)} calls, {plan.metrics_requested} metrics requested, "
        f"up to {plan.datapoints:,} datapoints",
        f"estimated cost: ${plan.dollars:.4f} (assuming the list price of "
        f"${PRICE_PER_1000} per 1,000 metrics requested; check your region's price)",
        f"zero-fill: sparse counters of {filled} of {len(lbs)} load balancers get 0 "
        "in periods with traffic" if filled else "zero-fill: off",
    ]


def check_still_kept(plan: Plan, done: set[int], now: int) -> None:
    """A resumed backfill may have waited past CloudWatch's retention for its period; the
    calls left would come back empty and be marked done."""
    left = [c.window.start for i, c in enumerate(plan.calls) if i not in done]
    period = plan.window.period
    if left and min(left) < now - kept_for(period):
        raise ConfigError(
            f"--resume: the calls left start at {isotime(min(left))}, older than CloudWatch "
            f"keeps {period}s-period data ({kept_for(period) // DAY} days); delete the state "
            "file and backfill what is missing with a longer --period")
