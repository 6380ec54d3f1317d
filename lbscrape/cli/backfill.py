"""`lbscrape backfill`: fill a past range once, resumably."""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

import click

from lbscrape.cli.options import (
    console,
    kube_options,
    log_format_option,
    now_option,
    opt,
    remote_write_options,
    selection_options,
)
from lbscrape.core.options import BackfillOptions

log = logging.getLogger("lbscrape")


@click.command()
@opt("--start", required=True, metavar="TIME",
     help="First period: RFC 3339, a date (midnight UTC), epoch seconds or a time ago (-6h).")
@opt("--end", default="now", metavar="TIME",
     help="End of the range (exclusive), clamped to now minus the settle delay.")
@opt("--cluster", required=True, help="Cluster name, written as the `cluster` label.")
@opt("--region", default=None, help="AWS region (default: the profile's).")
@opt("--profile", default=None, help="AWS profile (default: the AWS config chain).")
@opt("--label", "labels", multiple=True, metavar="KEY=VALUE",
     help="Static labels, as for run (use the CronJob's, so the series are the same).")
@opt("--label-from", "label_from", multiple=True, metavar="SOURCE=LABEL",
     help="Labels copied from the owner, as for run (use the CronJob's).")
@opt("--load-balancer", "names", multiple=True, metavar="NAME",
     help="Only this load balancer (AWS name); repeatable. Default: all discovered.")
@selection_options
@opt("--period", default="60s",
     help="CloudWatch period; 1-minute data is kept 15 days, 5-minute 63 days, 1-hour 455.")
@opt("--settle-delay", default="2m", help="Write a period only this long after it ended.")
@opt("--remote-write-url", default=None, help="Prometheus remote-write endpoint.")
@remote_write_options
@opt("--output", default=None, metavar="FILE",
     help="Write OpenMetrics text for 'promtool tsdb create-blocks-from openmetrics' "
          "instead of remote writing.")
@opt("--metrics-config", default=None, metavar="FILE",
     help="The metrics config `run` uses, so the same series are written. With --resume, "
          "the metrics and zero-fill the backfill started with apply.")
@opt("--zero-fill/--no-zero-fill", default=True,
     help="As for run: 0 for a sparse counter's missing datapoint in a period with traffic.")
@opt("--state-file", default="lbscrape-backfill.json", metavar="PATH",
     help="Where progress is kept, for --resume; removed when the backfill is complete.")
@opt("--checkpoint-file", default=None, metavar="PATH",
     help="When complete, move this local checkpoint (of 'run --checkpoint-file') to the "
          "end of the range, so run carries on from there. Never the ConfigMap.")
@click.option("--resume", is_flag=True, help="Carry on an interrupted backfill from its "
              "state file, without re-sending what it wrote.")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation (never asked "
              "when stdin is not a terminal).")
@kube_options
@log_format_option
@now_option
def backfill(**options: Any) -> int:
    """Fill a past range once, e.g. a gap the CronJob left or the history of a new setup.

    Prints what it will request from CloudWatch and what that costs, then fetches one
    GetMetricData call at a time and writes it, keeping progress in --state-file: after
    Ctrl-C or a failure, the same command with --resume carries on (range, load balancers,
    labels and metrics then come from the state file). It never moves the CronJob's
    checkpoint.

    A live Prometheus takes samples older than about 1h only within its
    storage.tsdb.out_of_order_time_window; for older ranges use --output and promtool.

    \b
    Example:
        lbscrape backfill --cluster prod-eu --start -6h --label env=prod \\
          --remote-write-url https://prometheus.example/api/v1/write
        lbscrape backfill --cluster prod-eu --start 2026-11-01 --end 2026-11-08 \\
          --period 5m --output nov.om
    """
    from lbscrape.flows.backfill.command import execute

    return execute(BackfillOptions(**options), console(), _Progress)


class _Progress:
    """click's progress bar with ETA on a terminal, else a log line per call."""

    def __init__(self, total: int, done: int) -> None:
        self.total, self.done = total, done
        self.started = time.monotonic()
        self.bar: Any = None

    def __enter__(self) -> _Progress:
        if sys.stderr.isatty():
            self.bar = click.progressbar(length=self.total, label="backfill", show_eta=True,
                                         show_pos=True, file=sys.stderr)
            self.bar.__enter__()
            self.bar.update(self.done)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.__exit__(*exc)

    def __call__(self, done: int, total: int, state: Any) -> None:
        if self.bar is not None:
            self.bar.update(done - self.bar.pos)
            return
        elapsed = time.monotonic() - self.started
        rate = (done - self.done) / elapsed if elapsed > 0 else 0
        eta = f"{(total - done) / rate:.0f}s" if rate else "?"
        log.info("backfill: %d/%d calls written (%d%%), %d samples, eta %s", done, total,
                 100 * done // total, state.samples_written, eta)
