"""`lbscrape metrics`: the metric catalog, and a check of a --metrics-config file."""

from __future__ import annotations

import click

from lbscrape.cli.options import console, opt, output_option


@click.command()
@opt("--metrics-config", default=None, metavar="FILE",
     help="Check this metrics config and show the catalog it gives.")
@click.option("--known", is_flag=True, default=False,
              help="List every metric lbscrape knows, fetched or not.")
@output_option
def metrics(metrics_config: str | None, known: bool, output: str) -> int:
    """The metric catalog: what `run` fetches per load balancer type and how it is named.

    Reads no cluster and no AWS account, so CI can check a --metrics-config file with it
    (exit 2 when the file is wrong). ZERO-FILL says which series get 0 for a period in
    which the type's traffic metric is > 0 and they have no datapoint (--zero-fill).

    \b
    A metrics config file (YAML or JSON):
        application:
          add:
            - metric: TargetResponseTime
              stats: [p99, p99.9]
          drop:
            - metric: ConsumedLCUs
            - metric: ProcessedBytes
              stats: [Sum]

    \b
    Example:
        lbscrape metrics --metrics-config metrics.yaml
    """
    from lbscrape.flows import metrics as flow

    return flow.execute(metrics_config, known, output, console())
