"""What a configuration costs in GetMetricData, from the same planner `run` uses."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from lbscrape.aws.cloudwatch import fetch_targets, plan_calls
from lbscrape.core.catalog import DEFAULT, KINDS, Catalog
from lbscrape.core.console import table
from lbscrape.core.model import LoadBalancer, Window
from lbscrape.core.shard import shard_of

PRICE_PER_1000 = 0.01  # USD per 1,000 metrics requested, list price (us-east-1)
MONTH = 30 * 86400


@dataclass(frozen=True)
class ShardCost:
    """What one shard's run requests (`run --shard INDEX/COUNT`)."""

    index: int
    load_balancers: int
    calls_per_run: int
    metrics_per_run: int


@dataclass
class Estimate:
    period: int
    interval: int
    calls_per_run: int = 0
    metrics_per_run: int = 0
    fetching_runs_per_month: int = 0
    lbs: Counter[str] = field(default_factory=Counter)
    target_groups: Counter[str] = field(default_factory=Counter)
    """prefix (alb_tg, nlb_tg) -> target groups whose metrics are fetched."""
    by_metric: Counter[tuple[str, str]] = field(default_factory=Counter)
    """(prefix, prometheus name) -> metrics requested per run."""
    shards: list[ShardCost] = field(default_factory=list)
    """Per shard, when asked for (--shards): each packs its own calls."""

    @property
    def metrics_per_month(self) -> int:
        return self.metrics_per_run * self.fetching_runs_per_month

    def dollars(self, metrics: int) -> float:
        return metrics / 1000 * PRICE_PER_1000

    def as_dict(self) -> dict[str, Any]:
        runs = self.fetching_runs_per_month
        out: dict[str, Any] = {
            "assumption": f"${PRICE_PER_1000} per 1,000 metrics requested (list price), "
                          "a 30-day month",
            "interval_seconds": self.interval, "period_seconds": self.period,
            "load_balancers": dict(self.lbs),
            "target_groups": dict(self.target_groups),
            "per_run": {"get_metric_data_calls": self.calls_per_run,
                        "metrics_requested": self.metrics_per_run},
            "per_month": {"fetching_runs": runs,
                          "get_metric_data_calls": self.calls_per_run * runs,
                          "metrics_requested": self.metrics_per_month,
                          "usd": round(self.dollars(self.metrics_per_month), 2)},
            "by_metric": [{"type": prefix, "metric": name, "metrics_per_month": n * runs,
                           "usd_per_month": round(self.dollars(n * runs), 2)}
                          for (prefix, name), n in sorted(self.by_metric.items())],
        }
        if self.shards:
            out["shards"] = [{"shard": c.index, "load_balancers": c.load_balancers,
                              "per_run": {"get_metric_data_calls": c.calls_per_run,
                                          "metrics_requested": c.metrics_per_run}}
                             for c in self.shards]
        return out

    def lines(self) -> list[str]:
        d = self.as_dict()
        found = ", ".join(f"{n} {t}" for t, n in sorted(self.lbs.items())) or "none"
        tgs = ", ".join(f"{n} {t}" for t, n in sorted(self.target_groups.items())) or "none"
        out = [
            f"load balancers: {found}; target groups: {tgs}",
            f"per run (every {self.interval}s, period {self.period}s): "
            f"{self.calls_per_run} GetMetricData calls, {self.metrics_per_run} metrics requested",
            f"per month ({d['per_month']['fetching_runs']:,} runs that fetch): "
            f"{d['per_month']['metrics_requested']:,} metrics requested, "
            f"${d['per_month']['usd']:,.2f}",
            "",
        ]
        if self.shards:
            out += table([("SHARD", "LOAD BALANCERS", "CALLS/RUN", "METRICS/RUN")] + [
                (f"{c.index}/{len(self.shards)}", str(c.load_balancers), str(c.calls_per_run),
                 str(c.metrics_per_run)) for c in self.shards]) + [""]
        rows = [("TYPE", "METRIC", "METRICS/MONTH", "USD/MONTH")] + [
            (m["type"], m["metric"], f"{m['metrics_per_month']:,}", f"{m['usd_per_month']:.2f}")
            for m in d["by_metric"]]
        widths = [max(len(r[i]) for r in rows) for i in range(4)]
        out += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
                for r in rows]
        out += ["", f"assumes {d['assumption']}; check your region's price"]
        return out


def estimate(lbs: tuple[LoadBalancer, ...], period: int, interval: int,
             catalog: Catalog = DEFAULT, shards: int | None = None) -> Estimate:
    """Steady state: each fetching run asks for the periods settled since the last one.
    With `shards`, also what each of that many shards requests."""
    step = max(interval, period)
    span = -(-step // period) * period

    def calls(share: tuple[LoadBalancer, ...]) -> tuple[int, int]:
        planned = plan_calls(fetch_targets(share, catalog, {lb.key: Window(0, span, period)
                                                             for lb in share}))
        return len(planned), sum(len(c.queries) for c in planned)

    n_calls, n_metrics = calls(lbs)
    est = Estimate(period, interval, calls_per_run=n_calls, metrics_per_run=n_metrics,
                   fetching_runs_per_month=MONTH // step)
    for i in range(shards or 0):
        share = tuple(lb for lb in lbs if shard_of(lb.key, shards or 1) == i)
        est.shards.append(ShardCost(i, len(share), *calls(share)))
    for lb in lbs:
        est.lbs[KINDS[lb.type].prefix] += 1
        for spec in catalog.specs(lb.type):
            est.by_metric[(KINDS[lb.type].prefix, spec.prom_name)] += 1
        tg_specs = catalog.specs(lb.type, "target_group")
        if lb.target_groups and tg_specs:
            prefix = f"{KINDS[lb.type].prefix}_tg"
            est.target_groups[prefix] += len(lb.target_groups)
            for spec in tg_specs:
                est.by_metric[(prefix, spec.prom_name)] += len(lb.target_groups)
    return est
