"""`lbscrape mixin`: dashboards, alerts and recording rules for lbscrape's series."""

from __future__ import annotations

import click

from lbscrape.cli.options import console
from lbscrape.mixin.render import FORMATS, Format


def _env(name: str) -> str:
    return f"LBSCRAPE_{name}"


@click.command()
@click.option("--output-dir", required=True, metavar="DIR", envvar=_env("MIXIN_OUTPUT_DIR"),
              show_envvar=True, help="Where to write (created if missing; files are replaced).")
@click.option("--config", "config_path", default=None, metavar="FILE",
              envvar=_env("MIXIN_CONFIG"), show_envvar=True,
              help="YAML or JSON file of thresholds, for: durations, severities, alert "
                   "labels and selectors (see README, Dashboards and alerts).")
@click.option("--owner", default=None, metavar="NAMESPACE/KIND/NAME",
              envvar=_env("MIXIN_OWNER"), show_envvar=True,
              help="Only this owner's load balancer: NAMESPACE/ingress/NAME, "
                   "NAMESPACE/service/NAME or ingress-group/NAME. Narrows every query and "
                   "alert to its labels and names the outputs after it.")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="files",
              envvar=_env("MIXIN_FORMAT"), show_envvar=True, show_default=True,
              help="files: dashboards/*.json and Prometheus rule files; kubernetes: a "
                   "PrometheusRule and a ConfigMap per dashboard for the Grafana sidecar.")
@click.option("--metrics-config", default=None, metavar="FILE",
              envvar=_env("METRICS_CONFIG"), show_envvar=True,
              help="The CronJob's --metrics-config: panels and alerts only for what it "
                   "fetches.")
def mixin(output_dir: str, config_path: str | None, owner: str | None, fmt: Format,
          metrics_config: str | None) -> int:
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

    return execute(output_dir, config_path, owner, fmt, metrics_config, console())
