"""`lbscrape discover`: what run would find, resolve and label."""

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
    selection_options,
)
from lbscrape.core.options import DiscoverOptions


@click.command()
@opt("--cluster", default="", help="Cluster name, for the labels shown and to choose "
     "among load balancers tagged for several clusters, as for run.")
@region_option
@opt("--label", "labels", multiple=True, metavar="KEY=VALUE", help="Static labels, as for run.")
@opt("--label-from", "label_from", multiple=True, metavar="SOURCE=LABEL",
     help="Labels copied from the owner, as for run.")
@selection_options
@checkpoint_options(help_file="A local JSON checkpoint file instead of the ConfigMap.")
@opt("--shards", default=None, metavar="COUNT",
     help="Also show which of COUNT shards (run --shard, --shards) scrapes each load "
          "balancer: a SHARD column, `shard` in JSON.")
@kube_options
@output_option
def discover(**options: Any) -> int:
    """Every load-balancer-owning object, what it resolved to, its labels and lag.

    Also every object skipped and why (no hostname yet, filtered out, opted out,
    unresolved), and every invalid lbscrape annotation or copied label value. Exits 3
    when a selected object that has a load balancer hostname could not be resolved, so
    CI can gate on it.

    \b
    Example:
        lbscrape discover --cluster prod-eu -o json
    """
    from lbscrape.flows import discover as flow

    return flow.execute(DiscoverOptions(**options), console())
