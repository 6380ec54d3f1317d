"""The metric catalog: which CloudWatch metrics are fetched per load balancer kind, and the
Prometheus names they are written as (the metric-name contract).

Data, not code paths. KNOWN lists, per kind, the metrics lbscrape knows from AWS's ELB
metric docs: the dimension sets CloudWatch publishes each with, and whether it is a sparse
counter. DEFAULT_CATALOG is what `run` fetches unless --metrics-config tailors it (see
metrics_config.py): what an SRE dashboard needs, with the statistics AWS documents as
useful. Every (metric, statistic) costs one GetMetricData metric per load balancer per run,
so the defaults stay lean.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from lbscrape.core.model import LbType, MetricSpec

DimensionSet = Literal["load_balancer", "target_group"]
"""Which CloudWatch dimensions a metric is fetched with: the load balancer's own (LoadBalancer,
or LoadBalancerName for a Classic ELB), or TargetGroup with LoadBalancer: one series set per
target group of an ALB or NLB, named with the kind's prefix and `_tg` (alb_tg_..., nlb_tg_...)
so that a sum over a load balancer's series never adds its target groups' on top."""
DIMENSION_SETS: tuple[DimensionSet, ...] = ("load_balancer", "target_group")


@dataclass(frozen=True)
class LbKind:
    namespace: str
    prefix: str
    """Start of every Prometheus name of this kind: alb_, nlb_, elb_ (and alb_tg_, nlb_tg_
    for the per-target-group series)."""
    dimension: str
    """The CloudWatch dimension that names one load balancer of this kind."""
    traffic: str
    """The metric whose Sum says whether the load balancer had traffic in a period; the
    zero-fill of sparse counters keys off it."""
    title: str
    """How messages name the kind."""


KINDS: dict[LbType, LbKind] = {
    "application": LbKind("AWS/ApplicationELB", "alb", "LoadBalancer", "RequestCount", "ALB"),
    "network": LbKind("AWS/NetworkELB", "nlb", "LoadBalancer", "NewFlowCount", "NLB"),
    "classic": LbKind("AWS/ELB", "elb", "LoadBalancerName", "RequestCount", "Classic ELB"),
}


@dataclass(frozen=True)
class KnownMetric:
    name: str
    dimensions: tuple[DimensionSet, ...]
    """The dimension sets CloudWatch publishes it with (of those lbscrape models)."""
    sparse: bool = False
    """A counter CloudWatch publishes only for periods in which it is non-zero, so no
    datapoint in a period with traffic means 0. Gauges, latencies and the traffic metric
    itself are never sparse: a missing datapoint there means "no value", not 0."""


_LB: tuple[DimensionSet, ...] = ("load_balancer",)
_LB_TG: tuple[DimensionSet, ...] = ("load_balancer", "target_group")
_TG: tuple[DimensionSet, ...] = ("target_group",)


def _known(*metrics: KnownMetric) -> dict[str, KnownMetric]:
    return {m.name: m for m in metrics}


def _counters(names: list[str], dims: tuple[DimensionSet, ...]) -> list[KnownMetric]:
    return [KnownMetric(n, dims, sparse=True) for n in names]


# From the AWS ELB user guides' CloudWatch metric tables (ALB, NLB, Classic), as summarised
# in the project's reference notes: "reported only when non-zero" marks a sparse counter.
KNOWN: dict[LbType, dict[str, KnownMetric]] = {
    "application": _known(
        KnownMetric("RequestCount", _LB_TG),
        *_counters([f"HTTPCode_Target_{c}XX_Count" for c in "2345"], _LB_TG),
        *_counters([f"HTTPCode_ELB_{c}_Count" for c in
                    ("3XX", "4XX", "5XX", "500", "502", "503", "504")], _LB),
        KnownMetric("TargetResponseTime", _LB_TG),
        KnownMetric("HealthyHostCount", _TG),
        KnownMetric("UnHealthyHostCount", _TG),
        KnownMetric("RequestCountPerTarget", _TG),
        *_counters(["TargetConnectionErrorCount", "TargetTLSNegotiationErrorCount"], _LB_TG),
        *_counters(["ActiveConnectionCount", "NewConnectionCount", "RejectedConnectionCount",
                    "ClientTLSNegotiationErrorCount", "ProcessedBytes", "RuleEvaluations",
                    "HTTP_Redirect_Count", "HTTP_Fixed_Response_Count"], _LB),
        KnownMetric("ConsumedLCUs", _LB),
    ),
    "network": _known(
        *[KnownMetric(f"{m}{p}", _LB) for m in ("ActiveFlowCount", "ConsumedLCUs")
          for p in ("", "_TCP", "_TLS", "_UDP")],
        KnownMetric("NewFlowCount", _LB),
        KnownMetric("ProcessedBytes", _LB),
        *_counters([f"{m}_{p}" for m in ("NewFlowCount", "ProcessedBytes")
                    for p in ("TCP", "TLS", "UDP")], _LB),
        *[KnownMetric(f"TCP_{w}_Reset_Count", _LB) for w in ("Client", "ELB", "Target")],
        *_counters(["ClientTLSNegotiationErrorCount", "TargetTLSNegotiationErrorCount",
                    "ProcessedPackets", "PortAllocationErrorCount",
                    "UnhealthyRoutingFlowCount"], _LB),
        KnownMetric("PeakPacketsPerSecond", _LB),
        KnownMetric("HealthyHostCount", _TG),
        KnownMetric("UnHealthyHostCount", _TG),
    ),
    "classic": _known(
        KnownMetric("RequestCount", _LB),
        KnownMetric("Latency", _LB),
        *_counters([f"HTTPCode_Backend_{c}XX" for c in "2345"], _LB),
        *_counters(["HTTPCode_ELB_4XX", "HTTPCode_ELB_5XX", "BackendConnectionErrors",
                    "SpilloverCount"], _LB),
        KnownMetric("SurgeQueueLength", _LB),
        KnownMetric("HealthyHostCount", _LB),
        KnownMetric("UnHealthyHostCount", _LB),
        *[KnownMetric(f"Estimated{m}", _LB) for m in (
            "ALBActiveConnectionCount", "ALBConsumedLCUs", "ALBNewConnectionCount",
            "ProcessedBytes")],
    ),
}


@dataclass(frozen=True)
class Entry:
    """One catalog line: a CloudWatch metric, its statistics, the dimensions it is fetched with."""

    metric: str
    stats: tuple[str, ...]
    dimensions: DimensionSet = "load_balancer"


def _entries(*lines: tuple[str, str], dimensions: DimensionSet = "load_balancer"
             ) -> tuple[Entry, ...]:
    return tuple(Entry(metric, tuple(stats.split()), dimensions) for metric, stats in lines)


DEFAULT_CATALOG: dict[LbType, tuple[Entry, ...]] = {
    "application": _entries(
        ("RequestCount", "Sum"),
        ("HTTPCode_ELB_4XX_Count", "Sum"),
        ("HTTPCode_ELB_5XX_Count", "Sum"),
        ("HTTPCode_Target_2XX_Count", "Sum"),
        ("HTTPCode_Target_3XX_Count", "Sum"),
        ("HTTPCode_Target_4XX_Count", "Sum"),
        ("HTTPCode_Target_5XX_Count", "Sum"),
        ("TargetResponseTime", "Average"),
        ("TargetConnectionErrorCount", "Sum"),
        ("ClientTLSNegotiationErrorCount", "Sum"),
        ("TargetTLSNegotiationErrorCount", "Sum"),
        ("RejectedConnectionCount", "Sum"),
        ("ProcessedBytes", "Sum"),
        ("ConsumedLCUs", "Average"),
    ) + _entries(
        # Per target group: what lets a team see its own Service behind a shared ALB.
        # RequestCount first: it is the zero-fill traffic metric of the TG's counters.
        ("RequestCount", "Sum"),
        ("RequestCountPerTarget", "Sum"),  # AWS: only Sum is meaningful
        ("HTTPCode_Target_2XX_Count", "Sum"),
        ("HTTPCode_Target_3XX_Count", "Sum"),
        ("HTTPCode_Target_4XX_Count", "Sum"),
        ("HTTPCode_Target_5XX_Count", "Sum"),
        ("TargetResponseTime", "Average"),
        ("TargetConnectionErrorCount", "Sum"),
        ("HealthyHostCount", "Average"),
        ("UnHealthyHostCount", "Average"),
        dimensions="target_group",
    ),
    "network": _entries(
        ("ActiveFlowCount", "Average"),
        ("NewFlowCount", "Sum"),
        ("ProcessedBytes", "Sum"),
        ("TCP_Client_Reset_Count", "Sum"),
        ("TCP_ELB_Reset_Count", "Sum"),
        ("TCP_Target_Reset_Count", "Sum"),
        ("ClientTLSNegotiationErrorCount", "Sum"),
        ("TargetTLSNegotiationErrorCount", "Sum"),
        ("ConsumedLCUs", "Average"),
    ) + _entries(
        ("HealthyHostCount", "Average"),
        ("UnHealthyHostCount", "Average"),
        dimensions="target_group",
    ),
    # Classic ELBs have no target groups: their health counts are per load balancer, the
    # only health signal there is, so they are in the defaults.
    "classic": _entries(
        ("RequestCount", "Sum"),
        ("Latency", "Average"),
        ("HTTPCode_ELB_4XX", "Sum"),
        ("HTTPCode_ELB_5XX", "Sum"),
        ("HTTPCode_Backend_2XX", "Sum"),
        ("HTTPCode_Backend_3XX", "Sum"),
        ("HTTPCode_Backend_4XX", "Sum"),
        ("HTTPCode_Backend_5XX", "Sum"),
        ("BackendConnectionErrors", "Sum"),
        ("SurgeQueueLength", "Maximum"),
        ("SpilloverCount", "Sum"),
        ("HealthyHostCount", "Average"),
        ("UnHealthyHostCount", "Average"),
    ),
}

STAT_SUFFIX = {
    "Sum": "sum",
    "Average": "average",
    "Minimum": "minimum",
    "Maximum": "maximum",
    "SampleCount": "sample_count",
}
# Statistics that are 0 over a period without datapoints, so a sparse counter may be
# zero-filled in them; Average, Minimum, Maximum and percentiles have no value there.
ZERO_OVER_NOTHING = frozenset({"Sum", "SampleCount"})
_PERCENTILE = re.compile(r"p(\d{1,3})(?:\.(\d{1,2}))?")


def parse_stat(text: str) -> str | None:
    """A statistic as CloudWatch takes it, in canonical form, or None if it is not one
    lbscrape supports: Sum, Average, Minimum, Maximum, SampleCount, or a percentile from
    p0 to p100 with up to two decimals (p99.90 -> p99.9, p050 -> p50)."""
    if text in STAT_SUFFIX:
        return text
    m = _PERCENTILE.fullmatch(text)
    if not m:
        return None
    whole, frac = int(m.group(1)), (m.group(2) or "").rstrip("0")
    if whole > 100 or (whole == 100 and frac):
        return None
    return f"p{whole}.{frac}" if frac else f"p{whole}"


def stat_suffix(stat: str) -> str:
    """sum, average, ... for the basic statistics; p99 -> p99, p99.9 -> p99_9."""
    return STAT_SUFFIX.get(stat) or stat.replace(".", "_")


# An acronym plural (LCUs), an acronym (HTTP, ELB, TCP), a capitalised word, a number
# with its unit (5XX).
_WORD = re.compile(r"[A-Z]{2,}s(?![a-z])|[A-Z]+(?=[A-Z][a-z]|$)|[A-Z]?[a-z]+|\d+[A-Za-z]*")


def snake_case(metric: str) -> str:
    """CloudWatch metric name -> snake_case: HTTPCode_ELB_5XX_Count -> http_code_elb_5xx_count."""
    words = [w for part in metric.split("_") for w in _WORD.findall(part)]
    return "_".join(words).lower()


def prom_name(lb_type: LbType, metric: str, stat: str,
              dimensions: DimensionSet = "load_balancer") -> str:
    prefix = KINDS[lb_type].prefix + ("_tg" if dimensions == "target_group" else "")
    return f"{prefix}_{snake_case(metric)}_{stat_suffix(stat)}"


@dataclass(frozen=True)
class FillPlan:
    """What zero-filling needs for one kind: the traffic spec (None if the catalog does not
    fetch it) and the sparse-counter specs that may be filled."""

    traffic: MetricSpec | None
    sparse: tuple[MetricSpec, ...]


@dataclass(frozen=True)
class Catalog:
    """The effective catalog: per kind, the entries to fetch."""

    entries: Mapping[LbType, tuple[Entry, ...]]
    source: str | None = None
    """The --metrics-config file it was tailored from; None for the defaults."""
    # specs() and fill_plan() are asked for per load balancer (and target group) of a
    # run: worked out once per kind.
    _memo: dict[tuple[str, LbType, DimensionSet], Any] = field(
        default_factory=dict, compare=False, repr=False)

    def specs(self, lb_type: LbType, dimensions: DimensionSet = "load_balancer"
              ) -> tuple[MetricSpec, ...]:
        key = ("specs", lb_type, dimensions)
        if key not in self._memo:
            ns = KINDS[lb_type].namespace
            self._memo[key] = tuple(
                MetricSpec(ns, e.metric, stat, prom_name(lb_type, e.metric, stat, dimensions))
                for e in self.entries.get(lb_type, ()) if e.dimensions == dimensions
                for stat in e.stats
            )
        return self._memo[key]  # type: ignore[no-any-return]

    def has_target_groups(self, lb_type: LbType) -> bool:
        """Whether this type fetches anything per target group (never for classic)."""
        return any(e.dimensions == "target_group" for e in self.entries.get(lb_type, ()))

    def fill_plan(self, lb_type: LbType, dimensions: DimensionSet = "load_balancer"
                  ) -> FillPlan:
        """Per series set: a target group's counters are filled from its own traffic
        metric (an ALB target group's RequestCount), never from the load balancer's, which
        says nothing of which group the requests went to. An NLB target group publishes no
        flow count, so nothing of it is filled (its defaults are gauges anyway)."""
        key = ("fill_plan", lb_type, dimensions)
        if key not in self._memo:
            specs = self.specs(lb_type, dimensions)
            traffic = KINDS[lb_type].traffic
            known = KNOWN[lb_type]
            self._memo[key] = FillPlan(
                traffic=next((s for s in specs if s.metric == traffic and s.stat == "Sum"),
                             None),
                sparse=tuple(s for s in specs if known[s.metric].sparse
                             and s.stat in ZERO_OVER_NOTHING),
            )
        return self._memo[key]  # type: ignore[no-any-return]

    def no_fill_reason(self, lb_type: LbType, dimensions: DimensionSet = "load_balancer"
                       ) -> str | None:
        """Why zero-fill cannot apply to this type although it has sparse counters: its
        traffic metric is not fetched. None when it can (or there is nothing to fill)."""
        plan = self.fill_plan(lb_type, dimensions)
        if plan.traffic is not None or not plan.sparse:
            return None
        kind = KINDS[lb_type]
        what, whose = (f"{kind.traffic} Sum per target group", f"{kind.title} target groups") \
            if dimensions == "target_group" else (f"{kind.traffic} Sum", f"{kind.title}s")
        return (f"zero-fill: {what} is not in the {lb_type} catalog (dropped by "
                f"--metrics-config), so sparse counters of {whose} are not zero-filled; "
                "keep it to have quiet periods written as 0")


DEFAULT = Catalog(DEFAULT_CATALOG)


def default_specs(lb_type: LbType) -> tuple[MetricSpec, ...]:
    return DEFAULT.specs(lb_type)
