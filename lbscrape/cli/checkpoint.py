"""`lbscrape checkpoint show` and `lbscrape checkpoint reset`."""

from __future__ import annotations

from typing import Any

import click

from lbscrape.cli.options import checkpoint_options, console, kube_options, output_option
from lbscrape.core.options import DEFAULT_CHECKPOINT_NAME

_checkpoint_options = checkpoint_options(
    help_configmap=f"ConfigMap holding checkpoints (default: {DEFAULT_CHECKPOINT_NAME} in the "
                   "kubeconfig context's namespace, or the pod's).",
    help_file="A local JSON checkpoint file instead of the ConfigMap.")


@click.group()
def checkpoint() -> None:
    """Show or reset the per-load-balancer checkpoints of `lbscrape run`.

    \b
    Example:
        lbscrape checkpoint show --context prod
    """


@checkpoint.command("show")
@_checkpoint_options
@kube_options
@output_option
def show(**options: Any) -> int:
    """Per load balancer: where the next run starts, and how far behind that is.

    \b
    Example:
        lbscrape checkpoint show -o json
    """
    from lbscrape.flows import checkpoint as flow

    return flow.show(console=console(), **options)


@checkpoint.command("reset")
@_checkpoint_options
@kube_options
@click.option("--load-balancer", "names", multiple=True, metavar="NAME",
              help="Only this load balancer (its AWS name or CloudWatch dimension); "
                   "repeatable. Default: all.")
@click.option("--to", "to", default=None, metavar="TIME",
              help="Move the checkpoint to this time (RFC 3339, epoch seconds, or -30m); "
                   "default: forget it, so the next run starts from --initial-lookback.")
def reset(**options: Any) -> int:
    """Move checkpoints back (to re-fetch a range) or forget them.

    Samples Prometheus already holds are refused when re-sent and only counted, so a reset
    never changes a stored value; it costs requests.

    \b
    Example:
        lbscrape checkpoint reset --load-balancer k8s-shop-web-0123456789 --to -30m
    """
    from lbscrape.flows import checkpoint as flow

    return flow.reset_checkpoints(console=console(), **options)
