"""The command line: one module per command, the shared option sets in `options`.

A command turns its options into dataclasses and calls one function of lbscrape.flows
that does the work. The flows (and with them boto3, the kubernetes client and protobuf)
are imported only when a command runs, so `lbscrape --help` starts fast.
"""

from __future__ import annotations

import atexit
import gc
import sys
from typing import Any

import click

from lbscrape import __version__
from lbscrape.core.errors import ExitStatus


class _Cli(click.Group):
    """Prints usage errors as one line (`lbscrape: error: ...`) with exit code 2."""

    def main(self, args: Any = None, prog_name: str | None = None,
             complete_var: str | None = None, standalone_mode: bool = True,
             **extra: Any) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, False, **extra)
        try:
            rv = super().main(args, prog_name, complete_var, False, **extra)
        except click.UsageError as e:
            sub = f" {e.ctx.command.name}" if e.ctx and e.ctx.parent else ""
            hint = f" (see 'lbscrape{sub} --help')"
            click.echo(f"lbscrape: error: {e.format_message()}{hint}", err=True)
            sys.exit(ExitStatus.USAGE)
        except click.Abort:
            click.echo("lbscrape: aborted", err=True)
            sys.exit(ExitStatus.ERROR)
        sys.exit(int(rv) if isinstance(rv, int) else 0)


@click.group(cls=_Cli)
@click.version_option(__version__, prog_name="lbscrape")
def cli() -> None:
    """Copy the CloudWatch metrics of a cluster's AWS load balancers into Prometheus."""


def _register() -> None:
    from lbscrape.cli import (
        backfill,
        checkpoint,
        discover,
        estimate,
        metrics,
        mixin,
        run,
        smoke,
    )

    for command in (run.run, checkpoint.checkpoint, discover.discover, estimate.estimate,
                    smoke.smoke, backfill.backfill, metrics.metrics, mixin.mixin):
        cli.add_command(command)


_register()


def main() -> None:
    # With the clients loaded, the interpreter's last garbage collection took about a
    # second on a busy 2-core machine (SIGTERM to exit 3.3-4.1 s, 2.6 s without it). At
    # exit nothing it could free matters (atexit handlers and finalizers still run).
    atexit.register(gc.freeze)
    cli(prog_name="lbscrape")
