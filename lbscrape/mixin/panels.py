"""Which panels the load-balancer dashboards hold, as data: what on-call asks first (request
rate, 4xx/5xx as rates and ratios, latency, healthy hosts, rejected connections, TLS
errors, LCUs; NLB flows, bytes, resets by origin), each naming the catalog metrics it
plots. dashboards.py keeps a panel only when the configured catalog fetches what it plots,
and puts every other fetched metric into an "Other metrics" row, so a metric added with
--metrics-config gets a panel and a dropped one leaves none empty.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from lbscrape.core.catalog import DimensionSet
from lbscrape.core.model import LbType

Shape = Literal["rate", "ratio", "gauge", "latency"]
"""rate: counts per period summed over the interval, per second. ratio: the lines' sums
over the denominator's, same range and labels. gauge: a level (hosts, flows, LCUs) combined
over the interval by its statistic. latency: every statistic the catalog holds of it."""

RATE_TEXT = ("CloudWatch counts per minute, summed over each interval and divided by its "
             "length: a per-second rate, exact over minutes without traffic (CloudWatch "
             "writes nothing for those). These series are statistics per period, not "
             "counters, so rate() and increase() would be wrong on them. The panel is shifted "
             "by the data lag, so its newest interval is complete.")
RATIO_TEXT = ("Counts summed over the same interval and labels, divided: a dip to no "
              "data means no traffic in it.")
GAUGE_TEXT = "CloudWatch's per-minute statistic, averaged over each interval."
LATENCY_TEXT = ("Average: the per-minute averages averaged over each interval. A "
                "percentile (added with --metrics-config) shows its worst minute in the "
                "interval: percentiles of a longer range cannot be rebuilt from them.")
HOSTS_TEXT = ("Hosts the load balancer's health checks pass or fail, CloudWatch's average "
              "over each minute, summed over the owner's target groups.")


@dataclass(frozen=True)
class Line:
    metric: str
    label: str = ""
    stats: tuple[str, ...] | None = ("Sum",)
    """The first of these the catalog fetches is plotted; None: every one it fetches."""


@dataclass(frozen=True)
class PanelDef:
    title: str
    shape: Shape
    lines: tuple[Line, ...]
    unit: str
    description: str
    per: DimensionSet = "load_balancer"
    denominator: Line | None = None
    aggregate: str = "sum"
    """How a gauge's series of one owner combine: sum (hosts, LCUs) or max (latency)."""


@dataclass(frozen=True)
class RowDef:
    title: str
    lb_type: LbType
    panels: tuple[PanelDef, ...]


_LEVEL = ("Average", "Maximum", "Minimum")
_HOSTS = (Line("HealthyHostCount", "healthy", _LEVEL), Line("UnHealthyHostCount", "unhealthy",
                                                               _LEVEL))


def _rate(title: str, lines: tuple[Line, ...], unit: str = "reqps", text: str = "",
          per: DimensionSet = "load_balancer") -> PanelDef:
    return PanelDef(title, "rate", lines, unit, f"{text} {RATE_TEXT}".strip(), per)


def _ratio(title: str, lines: tuple[Line, ...], den: str, text: str = "",
           per: DimensionSet = "load_balancer") -> PanelDef:
    return PanelDef(title, "ratio", lines, "percentunit", f"{text} {RATIO_TEXT}".strip(), per,
                    Line(den))


def _gauge(title: str, lines: tuple[Line, ...], text: str = GAUGE_TEXT, unit: str = "short",
           per: DimensionSet = "load_balancer", aggregate: str = "sum") -> PanelDef:
    return PanelDef(title, "gauge", lines, unit, text, per, aggregate=aggregate)


def _latency(title: str, metric: str, per: DimensionSet = "load_balancer") -> PanelDef:
    return PanelDef(title, "latency", (Line(metric, stats=None),), "s", LATENCY_TEXT, per,
                    aggregate="max")


def _codes(fmt: str, codes: str, label: str = "{}") -> tuple[Line, ...]:
    return tuple(Line(fmt.format(c), label.format(c.lower())) for c in codes.split())


_ALB_5XX = (Line("HTTPCode_ELB_5XX_Count", "load balancer"),
            Line("HTTPCode_Target_5XX_Count", "targets"))
_ALB_4XX = (Line("HTTPCode_ELB_4XX_Count", "load balancer"),
            Line("HTTPCode_Target_4XX_Count", "targets"))

ALB: tuple[RowDef, ...] = (
    RowDef("Traffic", "application", (
        _rate("Requests per second", (Line("RequestCount"),)),
        _rate("Processed bytes per second", (Line("ProcessedBytes"),), "Bps"),
        _rate("New connections per second", (Line("NewConnectionCount"),), "cps"),
        _gauge("Active connections", (Line("ActiveConnectionCount", stats=("Sum",)),),
               "Concurrent connections, CloudWatch's per-minute Sum averaged over each "
               "interval."),
        _gauge("Consumed LCUs", (Line("ConsumedLCUs", stats=(*_LEVEL, "Sum")),),
               "Load balancer capacity units: what the ALB is billed by per hour."),
    )),
    RowDef("Errors", "application", (
        _rate("Load balancer 4xx and 5xx per second",
              _codes("HTTPCode_ELB_{}_Count", "4XX 5XX 500 502 503 504 3XX"),
              text="Responses the ALB generated itself: 502, 503 and 504 mean targets that "
                   "failed, were missing or timed out."),
        _rate("Target responses per second by class",
              _codes("HTTPCode_Target_{}_Count", "2XX 3XX 4XX 5XX")),
        _ratio("5xx ratio", _ALB_5XX, "RequestCount",
               "5xx generated by the load balancer and by the targets, over all requests."),
        _ratio("4xx ratio", _ALB_4XX, "RequestCount"),
        _rate("Redirects and fixed responses per second",
              (Line("HTTP_Redirect_Count", "redirects"),
               Line("HTTP_Fixed_Response_Count", "fixed responses"))),
    )),
    RowDef("Latency", "application", (_latency("Target response time", "TargetResponseTime"),)),
    RowDef("Connections and TLS", "application", (
        _rate("Rejected connections per second", (Line("RejectedConnectionCount"),), "cps",
              "Connections refused because the ALB reached its maximum."),
        _rate("Target connection errors per second", (Line("TargetConnectionErrorCount"),),
              "cps"),
        _rate("TLS negotiation errors per second",
              (Line("ClientTLSNegotiationErrorCount", "client"),
               Line("TargetTLSNegotiationErrorCount", "target")), "cps"),
    )),
    RowDef("Target health", "application", (
        _gauge("Healthy and unhealthy targets", _HOSTS, HOSTS_TEXT, per="target_group"),)),
)

_PROTOCOLS = ("", "_TCP", "_TLS", "_UDP")


def _by_protocol(metric: str, stats: tuple[str, ...] | None = ("Sum",)) -> tuple[Line, ...]:
    return tuple(Line(f"{metric}{p}", p.strip("_") or "all", stats) for p in _PROTOCOLS)


NLB: tuple[RowDef, ...] = (
    RowDef("Traffic", "network", (
        _rate("New flows per second", _by_protocol("NewFlowCount"), "cps"),
        _gauge("Active flows", _by_protocol("ActiveFlowCount", _LEVEL)),
        _rate("Processed bytes per second", _by_protocol("ProcessedBytes"), "Bps"),
        _rate("Processed packets per second", (Line("ProcessedPackets"),), "pps"),
        _gauge("Peak packets per second", (Line("PeakPacketsPerSecond", stats=(
            "Maximum", "Average")),), unit="pps", aggregate="max"),
        _gauge("Consumed LCUs", _by_protocol("ConsumedLCUs", (*_LEVEL, "Sum")),
               "Load balancer capacity units: what the NLB is billed by per hour."),
    )),
    RowDef("Errors", "network", (
        _rate("TCP resets per second by origin",
              (Line("TCP_Client_Reset_Count", "client"),
               Line("TCP_ELB_Reset_Count", "load balancer"),
               Line("TCP_Target_Reset_Count", "target")), "cps",
              "RST packets sent by clients, by the NLB itself (idle timeout, no target) and "
              "by targets."),
        _ratio("TCP resets per new flow",
               (Line("TCP_ELB_Reset_Count", "load balancer"),
                Line("TCP_Target_Reset_Count", "target")), "NewFlowCount"),
        _rate("TLS negotiation errors per second",
              (Line("ClientTLSNegotiationErrorCount", "client"),
               Line("TargetTLSNegotiationErrorCount", "target")), "cps"),
        _rate("Port allocation and unhealthy routing per second",
              (Line("PortAllocationErrorCount", "port allocation errors"),
               Line("UnhealthyRoutingFlowCount", "flows routed fail-open")), "cps"),
    )),
    RowDef("Target health", "network", (
        _gauge("Healthy and unhealthy targets", _HOSTS, HOSTS_TEXT, per="target_group"),)),
)

_CLB_5XX = (Line("HTTPCode_ELB_5XX", "load balancer"), Line("HTTPCode_Backend_5XX", "backends"))
_CLB_4XX = (Line("HTTPCode_ELB_4XX", "load balancer"), Line("HTTPCode_Backend_4XX", "backends"))

CLASSIC: tuple[RowDef, ...] = (
    RowDef("Traffic", "classic", (_rate("Requests per second", (Line("RequestCount"),)),)),
    RowDef("Errors", "classic", (
        _rate("Load balancer 4xx and 5xx per second", _codes("HTTPCode_ELB_{}", "4XX 5XX")),
        _rate("Backend responses per second by class",
              _codes("HTTPCode_Backend_{}", "2XX 3XX 4XX 5XX")),
        _ratio("5xx ratio", _CLB_5XX, "RequestCount"),
        _ratio("4xx ratio", _CLB_4XX, "RequestCount"),
        _rate("Backend connection errors per second", (Line("BackendConnectionErrors"),),
              "cps"),
        _rate("Spillover (rejected requests) per second", (Line("SpilloverCount"),),
              text="Requests refused because the surge queue was full."),
    )),
    RowDef("Latency", "classic", (_latency("Latency", "Latency"),)),
    RowDef("Capacity and health", "classic", (
        _gauge("Surge queue length", (Line("SurgeQueueLength", stats=("Maximum", "Average")),),
               "Requests queued for a backend; over 1,024 they spill over.", aggregate="max"),
        _gauge("Healthy and unhealthy hosts", _HOSTS, "Backend instances passing and failing "
               "the health check, CloudWatch's per-minute average."),
    )),
)

_TG: DimensionSet = "target_group"
TARGET_GROUPS: tuple[RowDef, ...] = (
    RowDef("ALB target groups", "application", (
        _rate("Requests per second", (Line("RequestCount"),), per=_TG),
        _rate("Target responses per second by class",
              _codes("HTTPCode_Target_{}_Count", "2XX 3XX 4XX 5XX"), per=_TG),
        _ratio("5xx ratio", (Line("HTTPCode_Target_5XX_Count", "targets"),), "RequestCount",
               per=_TG),
        _ratio("4xx ratio", (Line("HTTPCode_Target_4XX_Count", "targets"),), "RequestCount",
               per=_TG),
        _latency("Target response time", "TargetResponseTime", per=_TG),
        _rate("Requests per target per second", (Line("RequestCountPerTarget"),), per=_TG),
        _rate("Target connection and TLS errors per second",
              (Line("TargetConnectionErrorCount", "connection"),
               Line("TargetTLSNegotiationErrorCount", "TLS")), "cps", per=_TG),
        _gauge("Healthy and unhealthy targets", _HOSTS, HOSTS_TEXT, per=_TG),
    )),
    RowDef("NLB target groups", "network", (
        _gauge("Healthy and unhealthy targets", _HOSTS, HOSTS_TEXT, per=_TG),)),
)
