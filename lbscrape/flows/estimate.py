"""What `lbscrape estimate` does: find the load balancers `run` would, then price them."""

from __future__ import annotations

import json

from botocore.exceptions import BotoCoreError
from kubernetes import client as k8s

from lbscrape.aws import cost
from lbscrape.aws import session as aws
from lbscrape.aws.resolve import ElbClient, find, find_target_groups
from lbscrape.core.catalog import DEFAULT, Catalog
from lbscrape.core.console import Console, fail
from lbscrape.core.errors import ExitStatus, LbscrapeError
from lbscrape.core.model import LoadBalancer
from lbscrape.core.options import EstimateOptions, estimate_settings
from lbscrape.kube import owner_labels
from lbscrape.kube.client import make_api_client
from lbscrape.kube.discovery import discover, target_group_bindings


def discover_lbs(kube: k8s.ApiClient, elbv2: ElbClient, elb: ElbClient,
                 catalog: Catalog = DEFAULT, cluster: str = "") -> tuple[LoadBalancer, ...]:
    """The load balancers, with their target groups when the catalog fetches those."""
    return find_target_groups(find(discover(kube), elbv2, elb, cluster).load_balancers, elbv2,
                              lambda: target_group_bindings(kube), catalog.has_target_groups)


def execute(o: EstimateOptions, console: Console) -> int:
    try:
        want = estimate_settings(o)
        selection = owner_labels.Selection.of(want.namespaces, want.exclude_namespaces)
        kube, _ = make_api_client(o.kube.kubeconfig, o.kube.context)
        s = aws.session(o.region)
        lbs = owner_labels.scraped(
            discover_lbs(kube, aws.client(s, "elbv2"), aws.client(s, "elb"), want.catalog,
                         o.cluster.strip()),
            selection)
    except (LbscrapeError, BotoCoreError) as e:
        return fail(console, e)
    est = cost.estimate(lbs, want.period, want.interval, want.catalog, want.shards)
    if o.output == "json":
        console.out(json.dumps(est.as_dict(), indent=2))
    else:
        for line in est.lines():
            console.out(line)
    return ExitStatus.OK
