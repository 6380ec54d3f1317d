"""`lbscrape smoke`: would `run` be allowed everything it does? For CI."""

from __future__ import annotations

from typing import Any

import click

from lbscrape.cli.options import (
    checkpoint_options,
    console,
    kube_options,
    opt,
    output_option,
    region_option,
    remote_write_options,
)
from lbscrape.core.options import SmokeOptions


@click.command()
@opt("--cluster", default=None,
     help="Cluster name, the `cluster` label of the smoke sample (required unless --no-write).")
@region_option
@opt("--label", "labels", multiple=True, metavar="KEY=VALUE",
     help="Static labels of the smoke sample, as for run.")
@opt("--remote-write-url", default=None,
     help="Prometheus remote-write endpoint (required unless --no-write).")
@remote_write_options
@checkpoint_options(help_file="A local JSON checkpoint file instead of the ConfigMap.")
@kube_options
@opt("--no-write", is_flag=True, default=False,
     help="Skip the remote-write check, so nothing at all is written.")
@opt("--events/--no-events", default=True,
     help="As for run: --no-events skips the check of `create` on events.")
@output_option
def smoke(**options: Any) -> int:
    """Check that lbscrape run would be allowed everything it does, writing no metric data.

    \b
    - Kubernetes: a SelfSubjectAccessReview per verb and resource run uses
      (the checkpoint ConfigMap's are skipped with --checkpoint-file);
      the checkpoint itself is never read or written.
    - AWS: one cheap call per API run uses: DescribeLoadBalancers (ELBv2 and
      classic, a page of one), DescribeTags, DescribeTargetGroups and GetMetricData
      (one metric over one period: $0.00001).
    - Remote write: one sample lbscrape_smoke{cluster,region,labels} = 1.

    Every check runs even when another fails. Exit 0 when all pass, 1 when any fails,
    2 on bad input. Give it the options and LBSCRAPE_* variables of the CronJob, and the
    identity it runs as.

    \b
    Example:
        lbscrape smoke --cluster prod-eu \\
          --remote-write-url https://prometheus.example.com/api/v1/write -o json
    """
    from lbscrape.flows import smoke as flow

    return flow.execute(SmokeOptions(**options), console())
