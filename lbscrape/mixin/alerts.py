"""Prometheus alerting rules as plain dicts (rule groups ready for YAML).

Samples are stamped minutes in the past and the newest minutes are not written yet
(Timing.lag: the settle delay, one period and the schedule interval). So an alert that
sums (a ratio, a count) sums a complete range that ends the lag back (`offset`), and one
that reads a level looks back over a range that always holds the newest sample (at least
the lag plus two periods). They group by the owner labels (README's contract), plus
MixinConfig.group_by, so each fires once per Ingress, IngressGroup or Service and
Alertmanager can route on `namespace` (or a team label).

An alert exists only when the catalog fetches what it reads; the others are named in the
notes, so dropping a metric with --metrics-config never leaves a rule that cannot fire.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from lbscrape.core.catalog import KINDS, DimensionSet
from lbscrape.core.model import LbType
from lbscrape.mixin import queries as q
from lbscrape.mixin.health import CLUSTER, cost_expr
from lbscrape.mixin.queries import (
    ANY_OWNER_LABELS,
    ANY_OWNER_TEXT,
    OWNER_LABELS,
    OWNER_TEXT,
    TARGET_LABELS,
    Fetched,
    by,
    lag_offset,
    ratio,
    sum_over,
    weighted_mean,
    window,
)
from lbscrape.mixin.settings import (
    AlertSettings,
    Matcher,
    MixinConfig,
    OwnerRef,
    format_duration,
    parse_duration,
)

Rule = dict[str, Any]
Group = dict[str, Any]
Shape = Literal["ratio", "level_above", "hosts_below", "hosts_above", "count_above"]
LB = "{{ $labels.load_balancer_name }}"
CL = "{{ $labels.cluster }}"
TG = ("target group {{ $labels.target_group }}{{ if $labels.target_service }} (Service "
      "{{ $labels.target_namespace }}/{{ $labels.target_service }}){{ end }}")


@dataclass(frozen=True)
class Ctx:
    fetched: Fetched
    cfg: MixinConfig
    owner: OwnerRef | None

    @property
    def matchers(self) -> tuple[Matcher, ...]:
        return (*self.cfg.selector, *(self.owner.matchers() if self.owner else ()))

    def group(self, *labels: str) -> tuple[str, ...]:
        return tuple(dict.fromkeys((*labels, *self.cfg.group_by)))

    @property
    def lag(self) -> str:
        """The offset that makes a range complete (queries.lag_offset)."""
        return lag_offset(self.cfg.timing)

    def rule(self, name: str, expr: str, summary: str, description: str) -> Rule:
        a = self.cfg.alert(name)
        return {"alert": name, "expr": expr, "for": a.for_,
                "labels": {"severity": a.severity, **dict(self.cfg.labels), **dict(a.labels)},
                "annotations": {"summary": summary, "description": description}}


@dataclass(frozen=True)
class AlertDef:
    name: str
    lb_type: LbType
    shape: Shape
    metric: str
    summary: str
    description: str
    """With <value>, <owner>, <lb>, <range>, <threshold> filled in."""
    per: DimensionSet = "load_balancer"
    stat: str = "Sum"
    denominator: str | None = None


def _ratio(name: str, t: LbType, metric: str, den: str, summary: str, what: str) -> AlertDef:
    of = "new flows" if den == "NewFlowCount" else "requests"
    return AlertDef(name, t, "ratio", metric, summary,
                    f"<value> of the {of} to <owner> (<lb>) over <range> {what} "
                    f"(threshold <threshold>, with at least <min_traffic> {of}).",
                    denominator=den)


def _hosts(name: str, t: LbType, metric: str, shape: Shape, per: DimensionSet,
           summary: str, what: str) -> AlertDef:
    return AlertDef(name, t, shape, metric, summary, f"<owner> (<lb>) {what}", per, "Average")


_HOSTS_NONE = "had <value> healthy hosts in its newest minute of data."
_HOSTS_BAD = "has had at least <value> unhealthy hosts all through <range>."
LB_ALERTS: tuple[AlertDef, ...] = (
    _ratio("AlbElb5xxRatioHigh", "application", "HTTPCode_ELB_5XX_Count", "RequestCount",
           "The ALB itself answers many requests with 5xx.",
           "were answered 5xx by the load balancer itself (no target, or targets failing "
           "or timing out: 502/503/504)"),
    _ratio("AlbTarget5xxRatioHigh", "application", "HTTPCode_Target_5XX_Count", "RequestCount",
           "The ALB's targets answer many requests with 5xx.",
           "were answered 5xx by the targets"),
    AlertDef("AlbTargetResponseTimeHigh", "application", "level_above", "TargetResponseTime",
             "The ALB's targets are slow.", "Targets of <owner> (<lb>) took <value> on "
             "average per request over <range> (threshold <threshold>).", stat="Average",
             denominator="RequestCount"),
    _hosts("AlbNoHealthyTargets", "application", "HealthyHostCount", "hosts_below",
           "target_group", "An ALB target group has no healthy target.", _HOSTS_NONE),
    _hosts("AlbUnhealthyTargets", "application", "UnHealthyHostCount", "hosts_above",
           "target_group", "An ALB target group has unhealthy targets.", _HOSTS_BAD),
    AlertDef("AlbRejectedConnections", "application", "count_above", "RejectedConnectionCount",
             "The ALB rejects connections.", "<owner> (<lb>) rejected <value> connections "
             "over <range> because it reached its maximum (threshold <threshold>)."),
    _ratio("NlbLoadBalancerResetsHigh", "network", "TCP_ELB_Reset_Count", "NewFlowCount",
           "The NLB itself resets many connections.",
           "saw a TCP reset sent by the load balancer itself"),
    _ratio("NlbTargetResetsHigh", "network", "TCP_Target_Reset_Count", "NewFlowCount",
           "The NLB's targets reset many connections.",
           "saw a TCP reset sent by a target"),
    _hosts("NlbNoHealthyTargets", "network", "HealthyHostCount", "hosts_below", "target_group",
           "An NLB target group has no healthy target.", _HOSTS_NONE),
    _hosts("NlbUnhealthyTargets", "network", "UnHealthyHostCount", "hosts_above",
           "target_group", "An NLB target group has unhealthy targets.", _HOSTS_BAD),
    _ratio("ClassicElb5xxRatioHigh", "classic", "HTTPCode_ELB_5XX", "RequestCount",
           "The classic ELB itself answers many requests with 5xx.",
           "were answered 5xx by the load balancer itself"),
    _ratio("ClassicElbBackend5xxRatioHigh", "classic", "HTTPCode_Backend_5XX", "RequestCount",
           "The classic ELB's backends answer many requests with 5xx.",
           "were answered 5xx by the backends"),
    AlertDef("ClassicElbLatencyHigh", "classic", "level_above", "Latency",
             "The classic ELB's backends are slow.", "Backends of <owner> (<lb>) took "
             "<value> on average per request over <range> (threshold <threshold>).",
             stat="Average", denominator="RequestCount"),
    _hosts("ClassicElbNoHealthyHosts", "classic", "HealthyHostCount", "hosts_below",
           "load_balancer", "A classic ELB has no healthy backend.", _HOSTS_NONE),
    _hosts("ClassicElbUnhealthyHosts", "classic", "UnHealthyHostCount", "hosts_above",
           "load_balancer", "A classic ELB has unhealthy backends.", _HOSTS_BAD),
    AlertDef("ClassicElbSpillover", "classic", "count_above", "SpilloverCount",
             "The classic ELB refuses requests: its surge queue is full.",
             "<owner> (<lb>) refused <value> requests over <range> because its "
             "surge queue was full (threshold <threshold>)."),
)
_VALUE = {"ratio": "{{ $value | humanizePercentage }}",
          "level_above": "{{ $value | humanizeDuration }}"}


def _threshold_text(shape: Shape, value: float) -> str:
    if shape == "ratio":
        return f"{value * 100:g}%"
    return f"{value:g}s" if shape == "level_above" else f"{value:g}"


def _expr(d: AlertDef, a: AlertSettings, name: str, den: str | None, ctx: Ctx,
          g: Sequence[str]) -> str:
    m, rng, lag, t = ctx.matchers, ctx.cfg.range_of(d.name), ctx.lag, f"{a.threshold:g}"
    if d.shape == "ratio":
        return (f"(\n{ratio(name, den or '', m, rng, g, lag)}\n) > {t}\nand\n"
                f"{sum_over(den or '', m, rng, g, lag)} >= {a.min_traffic or 0:g}")
    if d.shape == "level_above":  # a mean per request, not a mean of per-minute means
        mean = weighted_mean(name, den or "", m, rng, g, ctx.cfg.period_seconds, lag)
        return f"(\n{mean}\n) > {t}"
    if d.shape == "hosts_below":  # the newest sample: no waiting for a range to empty
        return f"max {by(g)} (last_over_time({window(name, m, rng)})) < {t}"
    if d.shape == "hosts_above":
        return f"min {by(g)} (min_over_time({window(name, m, rng)})) > {t}"
    return f"{sum_over(name, m, rng, g, lag)} > {t}"


def _range_text(d: AlertDef, rng: str, ctx: Ctx) -> str:
    """What the range covers: a sum's ends the lag back."""
    if d.shape in ("hosts_below", "hosts_above"):
        return f"the last {rng}"
    return f"the {rng} up to {format_duration(ctx.cfg.timing.lag)} ago"


def lb_alert(d: AlertDef, ctx: Ctx) -> Rule | str:
    """The rule, or a note saying why it is left out."""
    a = ctx.cfg.alert(d.name)
    if not a.enabled:
        return f"{d.name}: disabled in --config"
    name = ctx.fetched.name(d.lb_type, d.metric, d.stat, d.per)
    den = ctx.fetched.name(d.lb_type, d.denominator, "Sum", d.per) if d.denominator else None
    missing = [f"{m} {d.stat if m == d.metric else 'Sum'}" for m, n in
               ((d.metric, name), (d.denominator, den)) if m and not n]
    if missing:
        return (f"{d.name}: left out, the {d.lb_type} catalog does not fetch "
                f"{' and '.join(missing)}" + (" per target group" if d.per == "target_group"
                                              else ""))
    extra = TARGET_LABELS if d.per == "target_group" else ()
    g = ctx.group(*OWNER_LABELS[d.lb_type], *extra)
    owner = OWNER_TEXT[d.lb_type] + (f", {TG}" if d.per == "target_group" else "")
    text = d.description
    for token, value in (("<value>", _VALUE.get(d.shape, "{{ $value | humanize }}")),
                         ("<owner>", owner), ("<lb>", f"{KINDS[d.lb_type].title} {LB}, "
                                                      f"cluster {CL}"),
                         ("<range>", _range_text(d, ctx.cfg.range_of(d.name), ctx)),
                         ("<threshold>", _threshold_text(d.shape, a.threshold)),
                         ("<min_traffic>", f"{a.min_traffic or 0:g}")):
        text = text.replace(token, value)
    return ctx.rule(d.name, _expr(d, a, name or "", den, ctx, g), d.summary, text)


# --- lbscrape's own alerts, from the self-telemetry series (issue 13) --------------------------

def _not_running(ctx: Ctx, a: AlertSettings) -> Rule:
    # A run that cannot reach the endpoint writes nothing: absence is the only signal. Per
    # cluster, seen in the last day but not in the range, so a Prometheus that never got a
    # run (lbscrape writes elsewhere, or not yet) stays quiet; absent_over_time only for
    # the clusters --config says must run. A day after its last run a cluster is forgotten.
    m, g, rng = ctx.matchers, ctx.group(*CLUSTER), ctx.cfg.range_of("LbscrapeNotRunning")
    day, recent = window(q.RUN_SUCCESS, m, "1d"), window(q.RUN_SUCCESS, m, rng)
    expr = (f"group {by(g)} (max_over_time({day}))\nunless\n"
            f"group {by(g)} (max_over_time({recent}))")
    for cluster in ctx.cfg.clusters:
        must = window(q.RUN_SUCCESS, (*m, Matcher("cluster", "=", cluster)), rng)
        expr += f"\nor on (cluster)\nabsent_over_time({must})"  # once per cluster
    return ctx.rule("LbscrapeNotRunning", expr, "lbscrape has not written a run.",
                    "No lbscrape run{{ if $labels.cluster }} of cluster "
                    f"{CL}{{{{ end }}}} reached Prometheus in the last {rng}: the "
                    "CronJob is not running, or cannot reach the remote-write endpoint "
                    "(it writes nothing then).")


def _failing(ctx: Ctx, a: AlertSettings) -> Rule:
    rng = ctx.cfg.range_of("LbscrapeRunFailing")
    sel = window(q.RUN_SUCCESS, ctx.matchers, rng)
    expr = f"max {by(ctx.group(*CLUSTER))} (avg_over_time({sel})) <= {a.threshold:g}"
    return ctx.rule("LbscrapeRunFailing", expr, "lbscrape runs are failing.",
                    "{{ $value | humanizePercentage }} of the lbscrape runs of cluster "
                    f"{CL} exited 0 over the last {rng} (threshold "
                    f"{a.threshold * 100:g}%); see the run summary lines in the CronJob's "
                    "logs.")


def _lagging(ctx: Ctx, a: AlertSettings) -> Rule:
    g = ctx.group(*CLUSTER, *ANY_OWNER_LABELS)
    rng = ctx.cfg.range_of("LbscrapeDataLagging")
    expr = (f"max {by(g)} (last_over_time({window(q.LB_LAG, ctx.matchers, rng)}))"
            f" > {a.threshold:g}")
    return ctx.rule("LbscrapeDataLagging", expr, "A load balancer's data is late.",
                    f"The data of {ANY_OWNER_TEXT} (load balancer {LB}, cluster {CL}) is "
                    "{{ $value | humanizeDuration }} behind (threshold "
                    f"{a.threshold:g}s): its fetch or write keeps failing. Past "
                    "--max-catchup (50m by default) the gap needs `lbscrape backfill`.")


def _rejected(ctx: Ctx, a: AlertSettings) -> Rule:
    g = ctx.group(*CLUSTER, "reason")
    rng = ctx.cfg.range_of("LbscrapeSamplesRejected")
    expr = f"{sum_over(q.RUN_SAMPLES_REJECTED, ctx.matchers, rng, g)} > {a.threshold:g}"
    return ctx.rule("LbscrapeSamplesRejected", expr, "The endpoint refuses lbscrape samples.",
                    "{{ $value | humanize }} samples of cluster " + CL + " were refused as "
                    "{{ $labels.reason }} over the last " + rng + ". out_of_order once "
                    "after a repeated window is harmless; lasting, or out_of_bounds/too_old, "
                    "means data is lost.")


def _cost(ctx: Ctx, a: AlertSettings) -> Rule:
    price = ctx.cfg.price_per_1000_metrics
    rng = ctx.cfg.range_of("LbscrapeCloudWatchCostOverBudget")
    month = f" * {30 * 86400 / parse_duration(rng):g}"  # the range's pace for 30 days
    expr = f"{cost_expr(price, ctx.matchers, rng, month, ctx.group(*CLUSTER))} > " \
           f"{a.threshold:g}"
    return ctx.rule("LbscrapeCloudWatchCostOverBudget", expr,
                    "lbscrape's CloudWatch bill is above budget.",
                    "At the rate of the last " + rng + ", cluster " + CL + " requests "
                    "GetMetricData metrics for {{ $value | humanize }} US dollars a month at "
                    f"list price (${price:g} per 1,000), over the budget of "
                    f"${a.threshold:g}. `lbscrape estimate` breaks it down by metric; "
                    "--metrics-config and a slower schedule bring it down.")


SELF_RULES = {"LbscrapeNotRunning": _not_running, "LbscrapeRunFailing": _failing,
              "LbscrapeDataLagging": _lagging, "LbscrapeSamplesRejected": _rejected,
              "LbscrapeCloudWatchCostOverBudget": _cost}
# A team's own mixin keeps only the freshness of its own load balancer: the others are
# about the CronJob, whose owners load the fleet mixin.
OWNER_SELF_RULES = ("LbscrapeDataLagging",)


def self_alerts(ctx: Ctx) -> tuple[list[Rule], list[str]]:
    names = OWNER_SELF_RULES if ctx.owner else tuple(SELF_RULES)
    rules, notes = [], []
    for name in names:
        a = ctx.cfg.alert(name)
        if a.enabled:
            rules.append(SELF_RULES[name](ctx, a))
        else:
            notes.append(f"{name}: disabled in --config")
    return rules, notes


def owner_types(owner: OwnerRef | None) -> tuple[LbType, ...]:
    """The load-balancer types an owner's load balancer can be."""
    return owner.lb_types if owner else ("application", "network", "classic")


def alert_groups(ctx: Ctx) -> tuple[list[Group], list[str]]:
    """One group per load-balancer type with alerts, then lbscrape's own."""
    suffix = f"-{ctx.owner.slug}" if ctx.owner else ""
    groups, notes = [], []
    for t in owner_types(ctx.owner):
        rules = []
        for d in (d for d in LB_ALERTS if d.lb_type == t):
            got = lb_alert(d, ctx)
            if isinstance(got, str):
                notes.append(got)
            else:
                rules.append(got)
        if rules:
            groups.append({"name": f"lbscrape-{KINDS[t].prefix}{suffix}", "rules": rules})
    rules, more = self_alerts(ctx)
    notes += more
    if rules:
        groups.append({"name": f"lbscrape-self{suffix}", "rules": rules})
    return groups, notes
