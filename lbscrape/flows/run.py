"""`lbscrape run`: validate the options, build the real clients, run one cycle.

The cycle itself (the order of the stages) is lbscrape.flows.pipeline; this module is
what the CronJob's command does around it: the start-up line, SIGTERM, exit codes.
"""

from __future__ import annotations

import logging
import signal
from collections.abc import Callable
from typing import Any

from botocore.exceptions import BotoCoreError

from lbscrape import __version__
from lbscrape.aws import session as aws
from lbscrape.core import logs
from lbscrape.core.budget import Abandoned, Budget
from lbscrape.core.catalog import KINDS
from lbscrape.core.checkpoint import FileStore
from lbscrape.core.config import RunConfig, redact_url
from lbscrape.core.console import Console
from lbscrape.core.errors import ConfigError, ExitStatus, LbscrapeError
from lbscrape.core.options import RunOptions, RunSettings, run_settings
from lbscrape.flows import endpoint, pipeline
from lbscrape.kube import events
from lbscrape.kube.checkpoint_store import ConfigMapStore
from lbscrape.kube.client import make_api_client
from lbscrape.prom import remote_write

log = logging.getLogger("lbscrape")

SIGTERM_GRACE = 5


def execute(o: RunOptions, console: Console) -> int:
    """One run as the CronJob does it; returns the exit code. A dry run prints its
    samples on console.out."""
    logs.setup(o.log_format)
    made: dict[str, Any] = {}

    def own_namespace() -> str:
        made["kube"], ns = make_api_client(o.kube.kubeconfig, o.kube.context)
        return ns

    def region() -> str:
        made["session"] = aws.session(o.region)
        return str(made["session"].region_name)

    try:
        settings = run_settings(o, region, own_namespace)
        rw = settings.config.remote_write
        # Read the secret and certificate files now (also in a dry run), so a missing
        # Secret is a usage error before anything is fetched.
        credentials = remote_write.load_credentials(rw) if rw else None
    except ConfigError as e:
        console.err(f"lbscrape: error: {e}")
        return ExitStatus.USAGE
    cfg = settings.config
    log.info("lbscrape %s starting%s: %s deadline=%ds", __version__,
             " (DRY-RUN)" if cfg.dry_run else "", describe(cfg), settings.deadline)
    _warn_old_samples(cfg)
    budget = Budget(settings.deadline)
    try:
        clients = _clients(cfg, made["kube"], made["session"], credentials, budget)
    except (LbscrapeError, BotoCoreError) as e:
        log.error("run failed: %s", e)
        return ExitStatus.ERROR
    return _run_with_sigterm(settings, clients, console.out, budget)


def _clients(cfg: RunConfig, kube: Any, session: Any,
             credentials: remote_write.Credentials | None, budget: Budget) -> pipeline.Clients:
    rw = cfg.remote_write
    return pipeline.Clients(
        kube=kube,
        elbv2=aws.client(session, "elbv2"),
        elb=aws.client(session, "elb"),
        cloudwatch=aws.cloudwatch_client(session, cfg.cloudwatch.concurrency),
        store=FileStore(cfg.checkpoint_file) if cfg.checkpoint_file
        else ConfigMapStore(kube, cfg.checkpoint),
        writer=(endpoint.client(rw, session, credentials, budget)
                if rw and credentials and not cfg.dry_run else None),
        events=events.Recorder(kube) if cfg.events and not cfg.dry_run else None,
    )


def _run_with_sigterm(settings: RunSettings, clients: pipeline.Clients,
                      emit: Callable[[str], Any], budget: Budget) -> int:
    """The cycle under a timer: a request still in flight when the budget says so
    (budget.abandon_at: the deadline, or SIGTERM's grace) is interrupted by Abandoned,
    raised from SIGALRM. A handler that raises ends a blocking socket read (PEP 475)."""
    active = True

    def on_sigterm(signum: int, frame: object) -> None:
        log.warning("SIGTERM: no more fetching; writing what was fetched and storing "
                    "checkpoints within %ds; a request still in flight then is abandoned",
                    SIGTERM_GRACE)
        budget.stop("stopped by SIGTERM", SIGTERM_GRACE)

    def on_alarm(signum: int, frame: object) -> None:
        if active:
            raise Abandoned(budget.reason)

    def arm(seconds: float) -> None:
        if active:
            signal.setitimer(signal.ITIMER_REAL, max(0.001, seconds))

    previous = signal.signal(signal.SIGTERM, on_sigterm), signal.signal(signal.SIGALRM, on_alarm)
    budget.watcher = arm
    try:
        try:
            budget.enter("fetch")
            result = pipeline.run(settings.config, clients, settings.now, emit=emit,
                                  budget=budget)
        finally:
            active = False
            signal.setitimer(signal.ITIMER_REAL, 0)
            budget.watcher = None
            signal.signal(signal.SIGTERM, previous[0])
            signal.signal(signal.SIGALRM, previous[1])
    except (LbscrapeError, BotoCoreError):
        return ExitStatus.ERROR  # pipeline.run's summary line named it
    except Abandoned:  # fired between the stages' own handling of it
        log.error("run abandoned: %s", budget.reason)
        return ExitStatus.ERROR
    return result.status


def _warn_old_samples(cfg: RunConfig) -> None:
    w = cfg.window
    oldest = w.settle_delay + w.period + w.max_catchup
    if oldest > 3600:
        log.warning("samples may be up to %dm old (settle delay + period + max catch-up); a "
                    "live Prometheus refuses samples more than about 1h older than its newest "
                    "unless its out_of_order_time_window allows them", oldest // 60)


def describe(cfg: RunConfig) -> str:
    """The effective configuration as one line, secrets masked."""
    w = cfg.window
    parts = [
        f"cluster={cfg.cluster}", f"region={cfg.region}",
        f"remote_write_url={redact_url(cfg.remote_write.url) if cfg.remote_write else '-'}",
        f"remote_write_auth={endpoint.auth_kind(cfg.remote_write, cfg.region)}",
        f"remote_write_headers={endpoint.header_names(cfg.remote_write)}",
        *([f"remote_write_tenant={cfg.remote_write.tenant}"]
          if cfg.remote_write and cfg.remote_write.tenant else []),
        f"checkpoint={f'file:{cfg.checkpoint_file}' if cfg.checkpoint_file else cfg.checkpoint}",
        f"settle_delay={w.settle_delay}s", f"period={w.period}s",
        f"initial_lookback={w.initial_lookback}s", f"max_catchup={w.max_catchup}s",
        "labels=" + ",".join(f"{k}={v}" for k, v in cfg.static_labels),
        f"metrics_config={cfg.catalog.source or '-'}",
        "metrics=" + ",".join(f"{k.prefix}:{len(cfg.catalog.specs(t))}" for t, k in KINDS.items()),
        f"zero_fill={'on' if cfg.zero_fill else 'off'}",
        "label_from=" + ",".join(str(r) for r in cfg.label_from),
        "namespaces=" + ",".join(cfg.namespaces),
        "exclude_namespaces=" + ",".join(cfg.exclude_namespaces),
        f"events={'on' if cfg.events else 'off'}",
        f"cloudwatch_concurrency={cfg.cloudwatch.concurrency}",
        f"cloudwatch_max_tps={cfg.cloudwatch.max_tps:g}",
        f"cloudwatch_max_dps={cfg.cloudwatch.describe_dps()}",
        f"shard={cfg.shard or '-'}",
        f"self_metrics={'on' if cfg.self_metrics else 'off'}",
    ]
    return " ".join(parts)

