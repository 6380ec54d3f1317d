"""PromQL building blocks for lbscrape's series: selectors, owner groupings, and the only
correct ways to turn CloudWatch statistics per period into rates, ratios and gauges.

lbscrape writes one sample per CloudWatch period, stamped with the period's start, with the
period's statistic as its value: `alb_request_count_sum` at 10:00 is the number of requests
*between 10:00 and 10:01*, not a running total. Hence:

- a per-second rate over a range R is `sum_over_time(x[R]) / R-seconds` (never rate(),
  irate() or increase(), which expect a counter that only goes up). CloudWatch publishes no
  datapoint for a minute without traffic (and zero-fill adds zeros only in minutes with
  some), so only the sum is right: a mean over the samples there are would count only the
  busy minutes (600 requests in one minute of ten: 10 req/s for a true 1). A sum needs a
  complete range, and the newest minutes are not written yet, so alerts and recording
  rules sum a range that ends the data lag back (`offset`, see Timing.lag), and panels
  shift their time range by the lag (Grafana's timeShift);
- a ratio divides two sums over the same range, summed over the same labels;
- an Average, Minimum, Maximum or percentile is combined with avg/min/max_over_time:
  summing them means nothing (a percentile of a whole range cannot be had from per-minute
  percentiles; max_over_time of p99 is the worst minute's p99).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from lbscrape.core.catalog import Catalog, DimensionSet, prom_name
from lbscrape.core.model import LbType
from lbscrape.mixin.settings import Matcher, Timing, format_duration

# Labels that name a load balancer's owner, per type (README's contract): an ALB belongs to
# an Ingress or an IngressGroup (ingress_group, without namespace/ingress), an NLB or a
# classic ELB to a Service. Grouping by all of them keeps one line, one alert per owner.
OWNER_LABELS: dict[LbType, tuple[str, ...]] = {
    "application": ("cluster", "namespace", "ingress", "ingress_group", "load_balancer_name"),
    "network": ("cluster", "namespace", "service", "load_balancer_name"),
    "classic": ("cluster", "namespace", "service", "load_balancer_name"),
}
TARGET_LABELS = ("target_group", "target_namespace", "target_service")
# Every owner label any load balancer may carry: the lag series of issue 13 carries those of
# its load balancer.
ANY_OWNER_LABELS = ("cluster", "namespace", "ingress", "ingress_group", "service",
                    "load_balancer_name")

# Go-template phrases naming the owner in alert descriptions.
OWNER_TEXT: dict[LbType, str] = {
    "application": "{{ if $labels.ingress_group }}IngressGroup {{ $labels.ingress_group }}"
                   "{{ else }}Ingress {{ $labels.namespace }}/{{ $labels.ingress }}{{ end }}",
    "network": "Service {{ $labels.namespace }}/{{ $labels.service }}",
    "classic": "Service {{ $labels.namespace }}/{{ $labels.service }}",
}
ANY_OWNER_TEXT = ("{{ if $labels.ingress_group }}IngressGroup {{ $labels.ingress_group }}"
                  "{{ else if $labels.ingress }}Ingress {{ $labels.namespace }}/"
                  "{{ $labels.ingress }}{{ else }}Service {{ $labels.namespace }}/"
                  "{{ $labels.service }}{{ end }}")

# The self-telemetry series of issue 13 (README's contract), one sample per run stamped
# with the run's end time, labelled cluster, region and every --label.
RUN_SUCCESS = "lbscrape_run_success"
RUN_EXIT_CODE = "lbscrape_run_exit_code"
RUN_DURATION = "lbscrape_run_duration_seconds"
RUN_LOAD_BALANCERS = "lbscrape_run_load_balancers"  # {state}: found, written, failed
RUN_OWNERS_UNRESOLVED = "lbscrape_run_owners_unresolved"
RUN_SAMPLES_WRITTEN = "lbscrape_run_samples_written"
RUN_SAMPLES_REJECTED = "lbscrape_run_samples_rejected"  # {reason}
RUN_SAMPLES_ZERO_FILLED = "lbscrape_run_samples_zero_filled"
RUN_GMD_CALLS = "lbscrape_run_getmetricdata_calls"
RUN_METRICS_REQUESTED = "lbscrape_run_cloudwatch_metrics_requested"
LB_LAG = "lbscrape_load_balancer_lag_seconds"  # per load balancer, with its owner labels
BUILD_INFO = "lbscrape_build_info"  # {version}

_OVER_TIME = {"Average": "avg", "Minimum": "min", "Maximum": "max", "Sum": "sum",
              "SampleCount": "sum"}


def over_time(stat: str) -> str:
    """The *_over_time function that combines a statistic's per-period samples: sums add
    up, averages average, extremes and percentiles keep the extreme (the worst minute)."""
    return f"{_OVER_TIME.get(stat, 'max')}_over_time"


def is_count(stat: str) -> bool:
    """Sum and SampleCount are counts per period: they add up over a range into a rate."""
    return stat in ("Sum", "SampleCount")


def selector(metric: str, matchers: Iterable[Matcher]) -> str:
    ms = ",".join(str(m) for m in matchers)
    return f"{metric}{{{ms}}}" if ms else metric


def names_selector(names: Sequence[str], matchers: Iterable[Matcher]) -> str:
    """One metric as `name{...}`, several as `{__name__=~"a|b", ...}`."""
    if len(names) == 1:
        return selector(names[0], matchers)
    return selector("", (Matcher("__name__", "=~", "|".join(names)), *matchers))


# Every range ends 1 ms before the evaluation time. Prometheus before 3.0 includes both ends
# of a range, and lbscrape's samples sit exactly on minute boundaries, as Grafana's steps
# and promtool's evaluations do: `x[1m]` at 10:05:00 would hold the 10:04 *and* the 10:05
# sample and double every rate. Shifted by 1 ms, a range of R holds exactly R/period
# samples in Prometheus 2.x (closed ranges) and 3.x (left-open ones) alike.
OFFSET = "offset 1ms"


def lag_offset(t: Timing) -> str:
    """`offset <lag>1ms`: a range that ends where the data are complete (Timing.lag), 1 ms
    early as every range here."""
    return f"offset {format_duration(t.lag)}1ms"


def window(metric: str, matchers: Iterable[Matcher], rng: str, offset: str = OFFSET) -> str:
    """`metric{...}[rng] offset 1ms`: each period counted once, whatever the alignment."""
    return f"{selector(metric, matchers)}[{rng}] {offset}"


def by(labels: Iterable[str]) -> str:
    return f"by ({', '.join(labels)})"


def sum_over(metric: str, matchers: Iterable[Matcher], rng: str, group: Sequence[str],
             offset: str = OFFSET) -> str:
    """The count in the range, per group: sum by (G) (sum_over_time(x[R]))."""
    return f"sum {by(group)} (sum_over_time({window(metric, matchers, rng, offset)}))"


def rate(metric: str, matchers: Iterable[Matcher], rng: str, group: Sequence[str],
         seconds: str, offset: str = OFFSET) -> str:
    """Per second: the count in the range over its length. Exact over idle minutes (no
    sample is no traffic) when the range is complete: end it at the lag (`offset`), or
    shift the panel."""
    return f"{sum_over(metric, matchers, rng, group, offset)} / {seconds}"


def ratio(num: str, den: str, matchers: Sequence[Matcher], rng: str,
          group: Sequence[str], offset: str = OFFSET) -> str:
    """num / den, both summed over the same range and the same labels."""
    return (f"{sum_over(num, matchers, rng, group, offset)}\n/\n"
            f"{sum_over(den, matchers, rng, group, offset)}")


def weighted_mean(mean: str, count: str, matchers: Sequence[Matcher], rng: str,
                  group: Sequence[str], period: int, offset: str) -> str:
    """The mean over the range of a per-period average, each period weighted by its count:
    sum(avg * count) / sum(count), over the periods that have both. A subquery with one
    step per period pairs each period's two samples; its inner range, one period less
    1 ms, holds only the sample stamped at the step, so a period without one adds nothing
    instead of repeating the one before."""
    inner = f"[{period * 1000 - 1}ms]"
    a = f"last_over_time({selector(mean, matchers)}{inner})"
    n = f"last_over_time({selector(count, matchers)}{inner})"
    step = f"[{rng}:{format_duration(period)}] {offset}"
    return (f"sum {by(group)} (sum_over_time(({a} * {n}){step}))\n/\n"
            f"sum {by(group)} (sum_over_time(({n} and {a}){step}))")


def gauge(metric: str, stat: str, matchers: Iterable[Matcher], rng: str, group: Sequence[str],
          aggregate: str) -> str:
    """A statistic that is not a count, combined over the range by its own kind."""
    fn = "avg_over_time" if is_count(stat) else over_time(stat)  # a level given as a Sum
    return f"{aggregate} {by(group)} ({fn}({window(metric, matchers, rng)}))"


@dataclass(frozen=True)
class Fetched:
    """What the configured catalog fetches: a panel or an alert exists only for those, so
    a metric dropped with --metrics-config never leaves an empty panel or a silent alert."""

    catalog: Catalog

    def stats(self, lb_type: LbType, metric: str, per: DimensionSet = "load_balancer"
              ) -> tuple[str, ...]:
        return tuple(s.stat for s in self.catalog.specs(lb_type, per) if s.metric == metric)

    def name(self, lb_type: LbType, metric: str, stat: str, per: DimensionSet = "load_balancer"
             ) -> str | None:
        """The Prometheus name if the catalog fetches (metric, stat), else None."""
        return prom_name(lb_type, metric, stat, per) if stat in self.stats(
            lb_type, metric, per) else None

    def names(self, lb_type: LbType, per: DimensionSet) -> tuple[str, ...]:
        return tuple(s.prom_name for s in self.catalog.specs(lb_type, per))
