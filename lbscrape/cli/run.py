"""`lbscrape run`: one scrape cycle, as the CronJob runs it."""

from __future__ import annotations

import os
from typing import Any

import click

from lbscrape.cli.options import (
    LABEL_FROM_HELP,
    checkpoint_options,
    cloudwatch_options,
    console,
    kube_options,
    log_format_option,
    now_option,
    opt,
    region_option,
    remote_write_options,
    selection_options,
)
from lbscrape.core.options import RunOptions
from lbscrape.core.shard import INDEX_ENV


@click.command()
@opt("--cluster", required=True,
     help="Cluster name, written as the `cluster` label. When an owner's controller tags "
          "match several load balancers, the one tagged elbv2.k8s.aws/cluster=<it> wins.")
@region_option
@opt("--remote-write-url", default=None,
     help="Prometheus remote-write endpoint (required unless --dry-run).")
@checkpoint_options()
@opt("--settle-delay", default="2m", help="Write a period only this long after it ended.")
@opt("--period", default="60s", help="CloudWatch period; a multiple of 60s.")
@opt("--initial-lookback", default="10m", help="Where a load balancer with no checkpoint starts.")
@opt("--max-catchup", default="50m",
     help="Oldest window start; an older checkpoint is clamped, leaving a logged gap.")
@opt("--checkpoint-retention", default="7d",
     help="Forget checkpoints of load balancers not seen for this long.")
@opt("--label", "labels", multiple=True, metavar="KEY=VALUE",
     help="Static label on every sample (repeatable; in the env var, separate by spaces).")
@opt("--label-from", "label_from", multiple=True, metavar="SOURCE=LABEL", help=LABEL_FROM_HELP)
@selection_options
@opt("--events/--no-events", default=True,
     help="Record a Warning Event on an Ingress or Service whose load balancer is not found "
          "or whose lbscrape annotations are invalid (needs `create` on events).")
@opt("--self-metrics/--no-self-metrics", default=True,
     help="After each run, write lbscrape's own series (lbscrape_run_*, "
          "lbscrape_load_balancer_lag_seconds, lbscrape_build_info) to the same endpoint; "
          "a dry run prints them.")
@remote_write_options
@cloudwatch_options("50%", "Half, so other tools keep the rest.")
@opt("--deadline", default="50s",
     help="The run ends by then: no new fetches, no new writes, a request in flight "
          "abandoned (storing checkpoints may take 2s more). Keep it under the schedule "
          "interval and a few seconds under the Job's activeDeadlineSeconds.")
@opt("--metrics-config", default=None, metavar="FILE",
     help="YAML or JSON file that adds metrics, statistics and percentiles to the default "
          "catalog or drops them (see 'lbscrape metrics').")
@opt("--zero-fill/--no-zero-fill", default=True,
     help="Write 0 for a sparse counter (HTTPCode_*, errors) that has no datapoint in a "
          "period in which the load balancer had traffic.")
@opt("--dry-run", is_flag=True, default=False,
     help="Discover, resolve and fetch, print the samples; write nothing, move no checkpoint.")
@opt("--shard", default=None, metavar="INDEX/COUNT",
     help="Scrape only shard INDEX (0 to COUNT-1) of the load balancers, split by a stable "
          "hash of their key; COUNT runs, one per INDEX, together scrape them all once. "
          "Shards may share one checkpoint ConfigMap.")
@opt("--shards", default=None, metavar="COUNT",
     help=f"As --shard, with INDEX from {INDEX_ENV}, which Kubernetes sets in each pod of an "
          "Indexed Job (see cronjob/overlays/sharded).")
@kube_options
@log_format_option
@now_option
def run(**options: Any) -> int:
    """Run one scrape cycle: discover, resolve, fetch the settled window, write, checkpoint.

    \b
    Example:
        lbscrape run --cluster prod-eu \\
          --remote-write-url http://prometheus.monitoring:9090/api/v1/write \\
          --label env=prod --label-from app.kubernetes.io/name=job
    """
    from lbscrape.flows.run import execute

    return execute(RunOptions(**options, completion_index=os.environ.get(INDEX_ENV)), console())
