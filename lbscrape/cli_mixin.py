"""`lbscrape mixin`: write the dashboards, alerts and recording rules (issue 14).

It reads only local files (--config, --metrics-config) and writes only under --output-dir:
no cluster, no AWS, so CI can generate a team's alerts before its load balancer exists.
"""

from __future__ import annotations

import os
from pathlib import Path

import click

from lbscrape.catalog import DEFAULT
from lbscrape.errors import ConfigError, ExitStatus
from lbscrape.metrics_config import load as load_catalog
from lbscrape.mixin import build
from lbscrape.mixin.config import DEFAULT_CONFIG, parse_owner
from lbscrape.mixin.config import load as load_config
from lbscrape.mixin.render import FORMATS, Format, render


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
    try:
        catalog = load_catalog(metrics_config) if metrics_config else DEFAULT
        cfg = load_config(config_path) if config_path else DEFAULT_CONFIG
        ref = parse_owner(owner) if owner else None
    except ConfigError as e:
        click.echo(f"lbscrape: error: {e}", err=True)
        return ExitStatus.USAGE
    bundle = build(catalog, cfg, ref)
    written = render(bundle, fmt)
    try:
        for rel, text in written.items():
            path = Path(output_dir, rel)
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.tmp")
            tmp.write_text(text, encoding="utf-8")
            os.replace(tmp, path)  # a reader (the sidecar, git) never sees half a file
    except OSError as e:
        click.echo(f"lbscrape: error: --output-dir: cannot write {e.filename}: "
                   f"{e.strerror or e}", err=True)
        return ExitStatus.ERROR
    for rel in written:
        click.echo(os.path.join(output_dir, rel))
    for note in bundle.notes:
        click.echo(f"note: {note}", err=True)
    panels = sum(len(d.panels) for d in bundle.dashboards)
    click.echo(f"mixin: {len(bundle.dashboards)} dashboards ({panels} panels), "
               f"{len(bundle.alerts)} alerts, {len(bundle.records)} recording rules"
               + (f" for {ref}" if ref else ""), err=True)
    return ExitStatus.OK
