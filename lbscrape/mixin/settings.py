"""The mixin's settings as frozen dataclasses, with the defaults of every alert, and
the --owner and selector syntax. Read from a --config file by lbscrape.mixin.config."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Literal

from lbscrape.core.errors import ConfigError
from lbscrape.core.model import LbType

OPTION = "--config"
LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
# One PromQL label matcher: name, operator, double-quoted value with escapes.
_MATCHER = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"\s*')
_DURATION = re.compile(r"(?:(\d+)y)?(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")
_DURATION_UNITS = (365 * 86400, 7 * 86400, 86400, 3600, 60, 1)
# DNS-1123: a namespace is a label, object and IngressGroup names are subdomains.
DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?")


@dataclass(frozen=True)
class Matcher:
    name: str
    op: str
    value: str

    def __str__(self) -> str:
        value = self.value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        return f'{self.name}{self.op}"{value}"'


def parse_selector(text: str, where: str = "selector") -> tuple[Matcher, ...]:
    """'cluster="prod", env=~"eu-.*"' (with or without braces) -> matchers. Raises
    ValueError naming the part that is not a matcher."""
    body = text.strip()
    if body.startswith("{") and body.endswith("}"):
        body = body[1:-1]
    out: list[Matcher] = []
    pos = 0
    while pos < len(body):
        m = _MATCHER.match(body, pos)
        if not m:
            raise ValueError(f"{where}: cannot read a label matcher at {body[pos:]!r}; "
                             'write name="value", name=~"regex", name!="value" or '
                             'name!~"regex", separated by commas')
        raw = m.group(3)
        out.append(Matcher(m.group(1), m.group(2), json.loads(f'"{raw}"')))
        pos = m.end()
        if pos < len(body):
            if body[pos] != ",":
                raise ValueError(f"{where}: expected ',' between matchers at {body[pos:]!r}")
            pos += 1
    return tuple(out)


def parse_duration(text: str) -> int:
    """A Prometheus duration without milliseconds ('10m', '1h30m', '1d') -> seconds > 0.
    Raises ValueError."""
    m = _DURATION.fullmatch(text) if isinstance(text, str) else None
    if not text or not m or not any(m.groups()):
        raise ValueError(f"{text!r} is not a Prometheus duration (e.g. 5m, 1h30m, 1d)")
    return sum(int(g or 0) * unit for g, unit in zip(m.groups(), _DURATION_UNITS, strict=True))


def format_duration(seconds: int) -> str:
    """Seconds -> the shortest Prometheus duration: 240 -> '4m', 5400 -> '1h30m'."""
    out = ""
    for suffix, unit in zip("ywdhms", _DURATION_UNITS, strict=True):
        if seconds >= unit:
            out += f"{seconds // unit}{suffix}"
            seconds %= unit
    return out or "0s"


def _round_up(seconds: int, step: int) -> int:
    return -(-seconds // step) * step


@dataclass(frozen=True)
class Timing:
    """When lbscrape's samples arrive, from the CronJob's settings, in seconds. Every range
    of the mixin derives from it, so a slower period or schedule gets ranges that still hold
    data instead of alerts that flap between a value and nothing."""

    period: int = 60
    settle_delay: int = 120
    interval: int = 60
    """How often the CronJob runs (its schedule; `lbscrape estimate --interval`)."""

    @property
    def lag(self) -> int:
        """How far back data is complete at any time: the settle delay, one period (the run
        itself, from its start to its write), and the schedule interval (the minutes the
        next run will bring), rounded up to whole periods. A range that ends this far back
        holds every sample it ever will."""
        return _round_up(self.settle_delay + self.period + self.interval, self.period)

    @property
    def min_data_range(self) -> int:
        """The shortest range a data alert may look back: the lag plus two periods, so that
        the newest sample is always inside and a sum holds more than one period."""
        return self.lag + 2 * self.period

    @property
    def data_range(self) -> int:
        """The default range of data alerts and recording rules: 10m, or the minimum when
        that is longer; always whole periods, so a sum over it counts whole periods."""
        return _round_up(max(600, self.min_data_range), self.period)

    @property
    def min_self_range(self) -> int:
        """lbscrape's own series come once per run: a range of two schedule intervals
        always holds a run of a CronJob that runs."""
        return 2 * self.interval


OwnerKind = Literal["ingress", "service", "ingress-group"]


@dataclass(frozen=True)
class OwnerRef:
    """--owner: the one Kubernetes object a team's mixin is about."""

    kind: OwnerKind
    name: str
    namespace: str | None
    """None for an IngressGroup: its ALB's series carry `ingress_group` and never
    `namespace` (a group may span namespaces), so a namespace cannot select it."""

    @property
    def slug(self) -> str:
        """File-name and uid friendly: shop-ingress-web, ingress-group-shared."""
        parts = [self.namespace, self.kind, self.name] if self.namespace else [
            self.kind, self.name]
        return "-".join(p.replace(".", "-") for p in parts)

    def __str__(self) -> str:
        return f"{self.namespace}/{self.kind}/{self.name}" if self.namespace else \
            f"{self.kind}/{self.name}"

    @property
    def lb_types(self) -> tuple[LbType, ...]:
        """What its load balancer can be: an Ingress gets an ALB; a Service an NLB or a
        classic ELB, which one the mixin cannot tell without the cluster."""
        return ("network", "classic") if self.kind == "service" else ("application",)

    def matchers(self) -> tuple[Matcher, ...]:
        """The labels lbscrape writes on its load balancer's series (README contract)."""
        if self.kind == "ingress-group":
            return (Matcher("ingress_group", "=", self.name),)
        label = "ingress" if self.kind == "ingress" else "service"
        return (Matcher("namespace", "=", self.namespace or ""), Matcher(label, "=", self.name))


_OWNER_KINDS: dict[str, OwnerKind] = {
    "ingress": "ingress", "ing": "ingress", "service": "service", "svc": "service",
    "ingress-group": "ingress-group", "ingressgroup": "ingress-group",
}


def parse_owner(text: str) -> OwnerRef:
    """NAMESPACE/ingress/NAME, NAMESPACE/service/NAME, ingress-group/NAME (or
    NAMESPACE/ingress-group/NAME: the namespace is then only a reminder, as a group's
    series carry no namespace). Raises ConfigError naming --owner."""
    parts = text.strip().split("/")
    usage = ("use NAMESPACE/ingress/NAME, NAMESPACE/service/NAME or ingress-group/NAME "
             "(e.g. shop/ingress/web)")
    if len(parts) == 2 and _OWNER_KINDS.get(parts[0].lower()) == "ingress-group":
        parts = ["", *parts]
    if len(parts) != 3:
        raise ConfigError(f"--owner: cannot read {text!r}; {usage}")
    namespace, kind_text, name = parts
    kind = _OWNER_KINDS.get(kind_text.lower())
    if kind is None:
        raise ConfigError(f"--owner: {kind_text!r} is not a kind lbscrape labels series by; "
                          f"{usage}")
    if not _DNS_SUBDOMAIN.fullmatch(name):
        raise ConfigError(f"--owner: {name!r} is not a Kubernetes object name (lowercase "
                          "letters, digits, '-' and '.')")
    if kind == "ingress-group":
        return OwnerRef(kind, name, None)
    if not DNS_LABEL.fullmatch(namespace):
        raise ConfigError(f"--owner: {namespace!r} is not a Kubernetes namespace; {usage}")
    return OwnerRef(kind, name, namespace)


@dataclass(frozen=True)
class AlertSettings:
    threshold: float
    """What the expression is compared with; its unit is the alert's (see ALERT_DEFAULTS)."""
    for_: str
    """Prometheus `for:`: how long the condition must hold before the alert fires."""
    severity: str
    range: str | None = None
    """How far back the expression looks; None: derived from the Timing (Timing.data_range,
    or for lbscrape's own alerts SELF_RANGES and two schedule intervals, the longer)."""
    min_traffic: float | None = None
    """Ratio alerts only: the denominator (requests, new flows) the range must hold at least,
    so that 1 error in 2 requests at 3 a.m. does not page anyone."""
    enabled: bool = True
    labels: tuple[tuple[str, str], ...] = ()
    """Extra labels on this alert, after MixinConfig.labels."""


def _a(threshold: float, for_: str, severity: str, range_: str | None = None,
       min_traffic: float | None = None) -> AlertSettings:
    return AlertSettings(threshold, for_, severity, range_, min_traffic)


# Thresholds, with their units. Ratios are fractions (0.05 = 5%), latencies seconds, host
# counts hosts, resets a fraction of new flows, lag seconds, cost US dollars per month.
ALERT_DEFAULTS: dict[str, AlertSettings] = {
    "AlbElb5xxRatioHigh": _a(0.05, "5m", "critical", min_traffic=100),
    "AlbTarget5xxRatioHigh": _a(0.05, "5m", "critical", min_traffic=100),
    "AlbTargetResponseTimeHigh": _a(1.0, "10m", "warning"),
    "AlbNoHealthyTargets": _a(1, "1m", "critical"),
    "AlbUnhealthyTargets": _a(0, "10m", "warning"),
    "AlbRejectedConnections": _a(0, "5m", "warning"),
    "NlbLoadBalancerResetsHigh": _a(0.05, "10m", "warning", min_traffic=100),
    "NlbTargetResetsHigh": _a(0.05, "10m", "warning", min_traffic=100),
    "NlbNoHealthyTargets": _a(1, "1m", "critical"),
    "NlbUnhealthyTargets": _a(0, "10m", "warning"),
    "ClassicElb5xxRatioHigh": _a(0.05, "5m", "critical", min_traffic=100),
    "ClassicElbBackend5xxRatioHigh": _a(0.05, "5m", "critical", min_traffic=100),
    "ClassicElbLatencyHigh": _a(1.0, "10m", "warning"),
    "ClassicElbNoHealthyHosts": _a(1, "1m", "critical"),
    "ClassicElbUnhealthyHosts": _a(0, "10m", "warning"),
    "ClassicElbSpillover": _a(0, "5m", "warning"),
    "LbscrapeNotRunning": _a(0, "5m", "critical"),
    "LbscrapeRunFailing": _a(0, "5m", "critical"),
    "LbscrapeDataLagging": _a(900, "5m", "warning"),
    "LbscrapeSamplesRejected": _a(0, "15m", "warning"),
    "LbscrapeCloudWatchCostOverBudget": _a(100, "30m", "warning"),
}
SELF_ALERTS = frozenset(n for n in ALERT_DEFAULTS if n.startswith("Lbscrape"))
# The default ranges of lbscrape's own alerts, in seconds, when two schedule intervals are
# shorter: its series are written at the run's end, with no settle delay.
SELF_RANGES = {"LbscrapeNotRunning": 600, "LbscrapeRunFailing": 900, "LbscrapeDataLagging": 600,
               "LbscrapeSamplesRejected": 600, "LbscrapeCloudWatchCostOverBudget": 3600}
# LbscrapeNotRunning answers by absence; its threshold is not used.
NO_THRESHOLD = frozenset({"LbscrapeNotRunning"})


@dataclass(frozen=True)
class DashboardSettings:
    refresh: str = "1m"
    time_from: str = "now-3h"
    tags: tuple[str, ...] = ("lbscrape",)
    """The first tag also links the lbscrape dashboards to each other."""
    timezone: str = "utc"
    """CloudWatch and lbscrape speak UTC; "browser" shows local time."""


@dataclass(frozen=True)
class KubernetesSettings:
    namespace: str = "monitoring"
    labels: tuple[tuple[str, str], ...] = ()
    """On every object: kube-prometheus-stack's Prometheus selects PrometheusRules by
    `release: <its release name>` unless ruleSelectorNilUsesHelmValues is false."""
    folder: str = "lbscrape"
    """The `grafana_folder` annotation the Grafana sidecar can sort dashboards by."""


@dataclass(frozen=True)
class MixinConfig:
    selector: tuple[Matcher, ...] = ()
    """Extra matchers on every query, data and self-telemetry alike."""
    labels: tuple[tuple[str, str], ...] = ()
    """Added to every alert (a team label for routing)."""
    group_by: tuple[str, ...] = ()
    """Series labels every alert and recording rule keeps besides the owner's (e.g. a
    --label-from `team`), so Alertmanager can route on them."""
    price_per_1000_metrics: float = 0.01
    """GetMetricData list price, US dollars per 1,000 metrics requested."""
    period: str = "1m"
    """lbscrape's --period: what one sample covers; the panels' smallest step (CloudWatch
    has nothing finer)."""
    settle_delay: str = "2m"
    """lbscrape's --settle-delay."""
    interval: str = "1m"
    """How often the CronJob runs (its schedule)."""
    clusters: tuple[str, ...] = ()
    """Clusters that must run lbscrape: LbscrapeNotRunning also fires for one of these that
    never wrote a run at all (absent_over_time), which it cannot tell from a cluster
    without lbscrape otherwise."""
    alerts: Mapping[str, AlertSettings] = field(default_factory=lambda: dict(ALERT_DEFAULTS))
    dashboards: DashboardSettings = DashboardSettings()
    kubernetes: KubernetesSettings = KubernetesSettings()
    source: str | None = None

    def alert(self, name: str) -> AlertSettings:
        """The alert's settings, its range resolved."""
        return replace(self.alerts[name], range=self.range_of(name))

    def range_of(self, name: str) -> str:
        """The alert's range: as configured, else its default."""
        return self.alerts[name].range or format_duration(self.default_range(name))

    def default_range(self, name: str) -> int:
        t = self.timing
        if name in SELF_ALERTS:
            return max(SELF_RANGES[name], t.min_self_range)
        return t.data_range

    @property
    def timing(self) -> Timing:
        return Timing(parse_duration(self.period), parse_duration(self.settle_delay),
                      parse_duration(self.interval))

    @property
    def period_seconds(self) -> int:
        return parse_duration(self.period)


DEFAULT_CONFIG = MixinConfig()
