"""The metric catalog: which CloudWatch metrics are fetched per load balancer type.

Data, not code paths: each entry is (CloudWatch metric, statistics). Statistics follow
the "useful statistic" column of AWS's ELB metric docs. The default set is what an SRE
dashboard needs; every entry costs one GetMetricData metric per load balancer per run,
so it stays lean.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from lbscrape.model import LbType, MetricSpec


@dataclass(frozen=True)
class LbKind:
    namespace: str
    prefix: str
    dimension: str = "LoadBalancer"  # the CloudWatch dimension that names one load balancer


KINDS: dict[LbType, LbKind] = {
    "application": LbKind("AWS/ApplicationELB", "alb"),
    "network": LbKind("AWS/NetworkELB", "nlb"),
    # Classic ELBs (in-tree Services): a separate namespace keyed by the plain name.
    "classic": LbKind("AWS/ELB", "elb", "LoadBalancerName"),
}

STAT_SUFFIX = {
    "Sum": "sum",
    "Average": "average",
    "Minimum": "minimum",
    "Maximum": "maximum",
    "SampleCount": "sample_count",
}

DEFAULT_METRICS: dict[LbType, tuple[tuple[str, tuple[str, ...]], ...]] = {
    "application": (
        ("RequestCount", ("Sum",)),
        ("HTTPCode_ELB_4XX_Count", ("Sum",)),
        ("HTTPCode_ELB_5XX_Count", ("Sum",)),
        ("HTTPCode_Target_2XX_Count", ("Sum",)),
        ("HTTPCode_Target_3XX_Count", ("Sum",)),
        ("HTTPCode_Target_4XX_Count", ("Sum",)),
        ("HTTPCode_Target_5XX_Count", ("Sum",)),
        ("TargetResponseTime", ("Average",)),
        ("TargetConnectionErrorCount", ("Sum",)),
        ("ClientTLSNegotiationErrorCount", ("Sum",)),
        ("TargetTLSNegotiationErrorCount", ("Sum",)),
        ("RejectedConnectionCount", ("Sum",)),
        ("ProcessedBytes", ("Sum",)),
        ("ConsumedLCUs", ("Average",)),
    ),
    "network": (
        ("ActiveFlowCount", ("Average",)),
        ("NewFlowCount", ("Sum",)),
        ("ProcessedBytes", ("Sum",)),
        ("TCP_Client_Reset_Count", ("Sum",)),
        ("TCP_ELB_Reset_Count", ("Sum",)),
        ("TCP_Target_Reset_Count", ("Sum",)),
        ("ClientTLSNegotiationErrorCount", ("Sum",)),
        ("TargetTLSNegotiationErrorCount", ("Sum",)),
        ("ConsumedLCUs", ("Average",)),
    ),
    "classic": (
        ("RequestCount", ("Sum",)),
        ("Latency", ("Average",)),
        ("HTTPCode_ELB_4XX", ("Sum",)),
        ("HTTPCode_ELB_5XX", ("Sum",)),
        ("HTTPCode_Backend_2XX", ("Sum",)),
        ("HTTPCode_Backend_3XX", ("Sum",)),
        ("HTTPCode_Backend_4XX", ("Sum",)),
        ("HTTPCode_Backend_5XX", ("Sum",)),
        ("BackendConnectionErrors", ("Sum",)),
        ("SurgeQueueLength", ("Maximum",)),
        ("SpilloverCount", ("Sum",)),
    ),
}

# An acronym plural (LCUs), an acronym (HTTP, ELB, TCP), a capitalised word, a number
# with its unit (5XX).
_WORD = re.compile(r"[A-Z]{2,}s(?![a-z])|[A-Z]+(?=[A-Z][a-z]|$)|[A-Z]?[a-z]+|\d+[A-Za-z]*")


def snake_case(metric: str) -> str:
    """CloudWatch metric name -> snake_case: HTTPCode_ELB_5XX_Count -> http_code_elb_5xx_count."""
    words = [w for part in metric.split("_") for w in _WORD.findall(part)]
    return "_".join(words).lower()


def prom_name(lb_type: LbType, metric: str, stat: str) -> str:
    return f"{KINDS[lb_type].prefix}_{snake_case(metric)}_{STAT_SUFFIX[stat]}"


def default_specs(lb_type: LbType) -> tuple[MetricSpec, ...]:
    ns = KINDS[lb_type].namespace
    return tuple(
        MetricSpec(ns, metric, stat, prom_name(lb_type, metric, stat))
        for metric, stats in DEFAULT_METRICS[lb_type]
        for stat in stats
    )
