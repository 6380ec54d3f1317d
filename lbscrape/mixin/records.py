"""Prometheus recording rules as plain dicts: per-second rates and ratios per owner and per
backend Service, and lbscrape's own cost and success.

Each sums the range of complete data that ends the lag back (Timing.lag), so a recorded
rate is exact over idle minutes and does not dip at the edge; what is recorded at t is
about the range up to t - lag. The range is the data alerts' default (Timing.data_range,
10m unless the period or schedule need more) and names the rule: `owner:...:rate10m`
holds a rate over 10m, `owner:...:rate25m` one over 25m.
"""

from __future__ import annotations

from dataclasses import dataclass

from lbscrape.core.catalog import KINDS, DimensionSet
from lbscrape.core.model import LbType
from lbscrape.mixin import queries as q
from lbscrape.mixin.alerts import Ctx, Group, Rule, owner_types
from lbscrape.mixin.health import CLUSTER, cost_expr
from lbscrape.mixin.queries import OWNER_LABELS, by, ratio, window
from lbscrape.mixin.settings import format_duration


@dataclass(frozen=True)
class RecordDef:
    lb_type: LbType
    metric: str
    denominator: str | None = None
    """None: a per-second rate; else the ratio of metric to it."""
    per: DimensionSet = "load_balancer"


RECORDS: tuple[RecordDef, ...] = (
    RecordDef("application", "RequestCount"),
    RecordDef("application", "HTTPCode_ELB_5XX_Count", "RequestCount"),
    RecordDef("application", "HTTPCode_Target_5XX_Count", "RequestCount"),
    RecordDef("application", "RequestCount", per="target_group"),
    RecordDef("application", "HTTPCode_Target_5XX_Count", "RequestCount", "target_group"),
    RecordDef("network", "NewFlowCount"),
    RecordDef("network", "ProcessedBytes"),
    RecordDef("network", "TCP_ELB_Reset_Count", "NewFlowCount"),
    RecordDef("network", "TCP_Target_Reset_Count", "NewFlowCount"),
    RecordDef("classic", "RequestCount"),
    RecordDef("classic", "HTTPCode_ELB_5XX", "RequestCount"),
    RecordDef("classic", "HTTPCode_Backend_5XX", "RequestCount"),
)
TARGET_SERVICE = ("cluster", "target_namespace", "target_service")


def record(d: RecordDef, ctx: Ctx) -> Rule | None:
    """`owner:<series>:rate<R>` (per second) or `owner:<series>:ratio<R>`, per owner;
    `target_service:...` per backend Service for target groups."""
    num = ctx.fetched.name(d.lb_type, d.metric, "Sum", d.per)
    den = ctx.fetched.name(d.lb_type, d.denominator, "Sum", d.per) if d.denominator else None
    if num is None or (d.denominator and den is None):
        return None
    level, labels = ("target_service", TARGET_SERVICE) if d.per == "target_group" else (
        "owner", OWNER_LABELS[d.lb_type])
    seconds = ctx.cfg.timing.data_range
    g, m, r = ctx.group(*labels), ctx.matchers, format_duration(seconds)
    base = num.removesuffix("_sum")
    if den:
        return {"record": f"{level}:{base}:ratio{r}", "expr": ratio(num, den, m, r, g, ctx.lag)}
    return {"record": f"{level}:{base}:rate{r}",
            "expr": q.rate(num, m, r, g, str(seconds), ctx.lag)}


def recording_groups(ctx: Ctx) -> list[Group]:
    groups = []
    for t in owner_types(ctx.owner):
        rules = [r for d in RECORDS if d.lb_type == t and (r := record(d, ctx)) is not None]
        if rules:
            groups.append({"name": f"lbscrape-{KINDS[t].prefix}.rules", "rules": rules})
    price, m = ctx.cfg.price_per_1000_metrics, ctx.matchers
    g = ctx.group(*CLUSTER)
    groups.append({"name": "lbscrape-self.rules", "rules": [
        {"record": "cluster:lbscrape_cloudwatch_cost_usd:projected_month",
         "expr": cost_expr(price, m, "1h", " * 720", g)},
        {"record": "cluster:lbscrape_run_success:avg1h",
         "expr": f"avg {by(g)} (avg_over_time({window(q.RUN_SUCCESS, m, '1h')}))"},
    ]})
    return groups
