"""`lbscrape estimate`: what `run` costs in GetMetricData."""

from __future__ import annotations

from typing import Any

import click

from lbscrape.cli.options import (
    console,
    kube_options,
    opt,
    output_option,
    region_option,
    selection_options,
)
from lbscrape.core.options import EstimateOptions


@click.command()
@opt("--cluster", default="", help="Cluster name, as for run: it settles which load balancer "
     "an object's tags point at when clusters share an account.")
@region_option
@opt("--period", default="60s", help="CloudWatch period; a multiple of 60s.")
@opt("--interval", default="1m", help="How often the CronJob runs (its schedule).")
@opt("--metrics-config", default=None, metavar="FILE",
     help="The metrics config `run` uses (default: the default catalog).")
@opt("--shards", default=None, metavar="COUNT",
     help="Also show what each of COUNT shards (run --shard, --shards) requests per run.")
@selection_options
@kube_options
@output_option
def estimate(**options: Any) -> int:
    """What `lbscrape run` costs in GetMetricData for the load balancers it finds now.

    GetMetricData is billed per metric requested; each run requests every (load balancer,
    metric, statistic) once, so the schedule is the big lever.

    \b
    Example:
        lbscrape estimate --context prod --interval 5m
    """
    from lbscrape.flows import estimate as flow

    return flow.execute(EstimateOptions(**options), console())
