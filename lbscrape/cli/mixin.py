"""`lbscrape mixin`: dashboards, alerts and recording rules for lbscrape's series."""

from __future__ import annotations

from typing import Any

import click

from lbscrape.cli.options import console, opt
from lbscrape.core.options import MIXIN_FORMATS, MIXIN_MANIFEST, MixinOptions


@click.command()
@opt("--output-dir", required=True, metavar="DIR", envvar="LBSCRAPE_MIXIN_OUTPUT_DIR",
     help="Where to write (created if missing). Files are replaced; files an earlier run "
          f"wrote there and this one does not (listed in DIR/{MIXIN_MANIFEST}) are removed, unless "
          "changed since; no other file is touched.")
@opt("--config", default=None, metavar="FILE", envvar="LBSCRAPE_MIXIN_CONFIG",
     help="YAML or JSON file of thresholds, for: durations, severities, alert labels, "
          "selectors and the CronJob's period, settle delay and schedule (see README, "
          "Dashboards and alerts). Default: the built-in defaults.")
@opt("--owner", default=None, metavar="NAMESPACE/KIND/NAME", envvar="LBSCRAPE_MIXIN_OWNER",
     help="Only this owner's load balancer: NAMESPACE/ingress/NAME, NAMESPACE/service/NAME "
          "or ingress-group/NAME. Narrows every query and alert to its labels and names the "
          "outputs after it. Default: the whole fleet.")
@opt("--format", "fmt", type=click.Choice(MIXIN_FORMATS), default="files",
     envvar="LBSCRAPE_MIXIN_FORMAT",
     help="files: dashboards/*.json and Prometheus rule files; kubernetes: a PrometheusRule "
          "and a ConfigMap per dashboard for the Grafana sidecar.")
@opt("--metrics-config", default=None, metavar="FILE",
     help="The CronJob's --metrics-config: panels and alerts only for what it fetches. "
          "Default: the default catalog.")
def mixin(**options: Any) -> int:
    """Write Grafana dashboards, Prometheus alerts and recording rules for lbscrape's series.

    One dashboard per load-balancer type the catalog fetches (ALB, NLB, Classic), one for
    target groups by backend Service and one for lbscrape's own health; alerts per owner
    (5xx ratios, latency, healthy hosts, rejected connections, NLB resets) and for
    lbscrape itself (not running, failing, lagging, rejected samples, cost). Contacts no
    cluster and no AWS account.

    \b
    Example:
        lbscrape mixin --output-dir mixin/
        lbscrape mixin --output-dir k8s/ --format kubernetes --config mixin.yaml
        lbscrape mixin --output-dir shop/ --owner shop/ingress/web
    """
    from lbscrape.flows.mixin import execute

    return execute(MixinOptions(**options), console())
