"""Plain value types passed between the pipeline stages.

Times are whole seconds since the epoch (UTC) inside the pipeline; conversion to
datetimes and milliseconds happens at the edges that need them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal, NamedTuple

OwnerKind = Literal["Ingress", "Service"]
LbType = Literal["application", "network", "classic"]


@dataclass(frozen=True)
class Owner:
    """A Kubernetes object that owns a load balancer, as discovery found it."""

    kind: OwnerKind
    namespace: str
    name: str
    hostnames: tuple[str, ...]
    lb_type: LbType | None = None
    """What the controller that serves it makes (None: not known, an ELBv2 one)."""
    group: str | None = None
    """IngressGroup name (alb.ingress.kubernetes.io/group.name); None for implicit groups."""
    lb_name: str | None = None
    """The load balancer name it asks for (annotation), or the in-tree controller's default."""
    # The object's own metadata, for --label-from, lbscrape.io/* annotations and Events.
    # Not part of its identity (equality, hashing).
    uid: str = field(default="", compare=False)
    labels: Mapping[str, str] = field(default_factory=dict, compare=False, repr=False)
    annotations: Mapping[str, str] = field(default_factory=dict, compare=False, repr=False)

    def __str__(self) -> str:
        return f"{self.kind} {self.namespace}/{self.name}"


@dataclass(frozen=True)
class Binding:
    """The Service a TargetGroupBinding (elbv2.k8s.aws) sends a target group's targets to."""

    namespace: str
    service: str
    port: str
    """spec.serviceRef.port as text: a number or a named port."""


@dataclass(frozen=True)
class TargetGroup:
    """A target group of an ALB or NLB, and the Service bound to it, if any."""

    name: str
    dimension: str
    """CloudWatch's TargetGroup value: the ARN from "targetgroup/" on."""
    binding: Binding | None = None


@dataclass(frozen=True)
class LoadBalancer:
    """An ELBv2 or classic load balancer and the objects that own it."""

    arn: str | None  # None for a classic ELB: its description carries no ARN
    name: str
    type: LbType
    dimension: str
    """CloudWatch dimension value: the ARN after "loadbalancer/" (`LoadBalancer`), or a
    classic ELB's name (`LoadBalancerName`)."""
    owners: tuple[Owner, ...]
    target_groups: tuple[TargetGroup, ...] = ()
    """Listed only when something needs them (see resolve.find_target_groups)."""

    @property
    def key(self) -> str:
        """Identity used for checkpoints and logs. A classic name gets a prefix so it can
        never equal an ELBv2 dimension (those always have three parts: app/NAME/ID)."""
        return f"{CLASSIC_KEY_PREFIX}{self.dimension}" if self.type == "classic" \
            else self.dimension


CLASSIC_KEY_PREFIX = "elb/"


@dataclass(frozen=True)
class Unresolved:
    """An owner hostname that matched no load balancer."""

    owner: Owner
    hostname: str
    ambiguous: tuple[str, ...] = ()
    """Names of the load balancers its tags matched, when more than one did."""


@dataclass(frozen=True)
class MetricSpec:
    """One CloudWatch (metric, statistic) and the Prometheus name it is written as."""

    namespace: str
    metric: str
    stat: str
    prom_name: str


@dataclass(frozen=True)
class Window:
    """Half-open time range [start, end) aligned to `period` seconds."""

    start: int
    end: int
    period: int

    @property
    def periods(self) -> int:
        return max(0, (self.end - self.start) // self.period)

    @property
    def empty(self) -> bool:
        return self.end <= self.start


class Sample(NamedTuple):
    """A tuple, as there are millions: it is made and read faster than a dataclass."""

    timestamp_ms: int
    value: float


Labels = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Series:
    """One time series: labels sorted by name (including __name__), samples in time order."""

    labels: Labels
    samples: tuple[Sample, ...]

    @property
    def name(self) -> str:
        return dict(self.labels).get("__name__", "")


def isotime(ts: int) -> str:
    """Seconds since the epoch -> '2026-11-23T11:05:00Z'."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_isotime(text: str) -> int:
    """'2026-11-23T11:05:00Z' (or any ISO 8601 with an offset) -> seconds since the epoch."""
    dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if dt.tzinfo is None:
        raise ValueError(f"{text!r} has no time zone")
    return int(dt.timestamp())
