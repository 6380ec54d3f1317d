"""Command line: parse options into a RunConfig, build the clients, run, map to exit codes.

Every option can also be set with an LBSCRAPE_* environment variable, so the CronJob is
configured with env vars.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import boto3
import botocore.config
import click
from botocore.exceptions import BotoCoreError

from lbscrape import (
    __version__,
    costing,
    discovery,
    logs,
    metrics_config,
    owner_labels,
    pipeline,
    remote_write,
    smoke,
)
from lbscrape import backfill as backfill_mod
from lbscrape import events as events_mod
from lbscrape.budget import Budget
from lbscrape.catalog import DEFAULT, DIMENSION_SETS, KINDS, KNOWN, Catalog
from lbscrape.checkpoint import ConfigMapStore, FileStore, reset
from lbscrape.cli_mixin import mixin
from lbscrape.config import (
    CheckpointLocation,
    RemoteWriteSettings,
    RunConfig,
    WindowSettings,
    parse_configmap_ref,
    parse_duration,
    parse_labels,
    parse_labels_from,
    parse_namespaces,
    parse_remote_write_url,
    redact_url,
    validate_remote_write_auth,
    validate_window,
)
from lbscrape.errors import ConfigError, ExitStatus, LbscrapeError
from lbscrape.kube import make_api_client
from lbscrape.model import CLASSIC_KEY_PREFIX, LoadBalancer, isotime, parse_isotime
from lbscrape.resolve import explain, find, find_target_groups
from lbscrape.series import lb_labels

log = logging.getLogger("lbscrape")

F = TypeVar("F", bound=Callable[..., Any])
SIGTERM_GRACE = 5
DEFAULT_CHECKPOINT_NAME = "lbscrape-checkpoint"
# Standard retry mode: exponential backoff with jitter on throttles, 5xx and timeouts.
AWS_CONFIG = botocore.config.Config(retries={"mode": "standard", "max_attempts": 4},
                                    connect_timeout=5, read_timeout=10)


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


def _opt(*decls: str, **kwargs: Any) -> Callable[[F], F]:
    name = decls[0].split("/")[0].lstrip("-").replace("-", "_").upper()
    kwargs.setdefault("show_default", True)
    return click.option(*decls, envvar=f"LBSCRAPE_{name}", show_envvar=True, **kwargs)


@dataclass(frozen=True)
class RemoteWriteOptions:
    """The remote-write options `run` and `smoke` share, as given (text, paths)."""

    timeout: str
    retries: int
    max_samples: int
    bearer_token_file: str | None
    username: str | None
    password_file: str | None
    ca_file: str | None
    cert_file: str | None
    key_file: str | None

    def load(self, url: str) -> tuple[RemoteWriteSettings, remote_write.Credentials]:
        """Validated settings for `url`, and the credential files read. Raises ConfigError."""
        rw = validate_remote_write_auth(RemoteWriteSettings(
            url=parse_remote_write_url(url),
            timeout=float(parse_duration(self.timeout, "--remote-write-timeout")),
            retries=self.retries, max_samples_per_request=self.max_samples,
            bearer_token_file=self.bearer_token_file,
            username=self.username, password_file=self.password_file, ca_file=self.ca_file,
            cert_file=self.cert_file, key_file=self.key_file,
        ))
        return rw, remote_write.load_credentials(rw)


_REMOTE_WRITE_OPTIONS = [
    _opt("--remote-write-timeout", default="10s", help="Timeout of one remote-write request."),
    _opt("--remote-write-retries", default=3, type=click.IntRange(0, 10),
         help="Retries of a request on 5xx, 429 and connection errors."),
    _opt("--remote-write-max-samples", default=20_000, type=click.IntRange(1),
         help="Samples per request at most (receivers limit request size)."),
    _opt("--remote-write-bearer-token-file", default=None, metavar="PATH",
         help="Send 'Authorization: Bearer' with the token in this file (e.g. a mounted "
              "Secret)."),
    _opt("--remote-write-username", default=None,
         help="Basic auth user name; the password comes from --remote-write-password-file."),
    _opt("--remote-write-password-file", default=None, metavar="PATH",
         help="File holding the basic auth password (with --remote-write-username)."),
    _opt("--remote-write-ca-file", default=None, metavar="PATH",
         help="PEM CA bundle to verify the endpoint with, instead of the system's. TLS "
              "verification is always on."),
    _opt("--remote-write-cert-file", default=None, metavar="PATH",
         help="PEM client certificate for mTLS (with --remote-write-key-file)."),
    _opt("--remote-write-key-file", default=None, metavar="PATH",
         help="PEM private key of --remote-write-cert-file, unencrypted."),
]


def _remote_write_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """Adds the shared remote-write options; the command gets them as one
    RemoteWriteOptions argument, `rw_options`."""

    @functools.wraps(f)
    def command(*args: Any, **kwargs: Any) -> Any:
        kwargs["rw_options"] = RemoteWriteOptions(**{
            fld.name: kwargs.pop(f"remote_write_{fld.name}")
            for fld in dataclasses.fields(RemoteWriteOptions)})
        return f(*args, **kwargs)

    wrapped: Callable[..., Any] = command
    for decorator in reversed(_REMOTE_WRITE_OPTIONS):
        wrapped = decorator(wrapped)
    return wrapped


def _selection_options(f: F) -> F:
    """--namespace and --exclude-namespace, as `run` applies them."""
    for decorator in reversed([
        _opt("--namespace", "namespaces", multiple=True, metavar="NS",
             help="Only objects in this namespace (repeatable; in the env var, separate by "
                  "spaces). Default: all."),
        _opt("--exclude-namespace", "exclude_namespaces", multiple=True, metavar="NS",
             help="Never objects in this namespace (repeatable)."),
    ]):
        f = decorator(f)
    return f


_LABEL_FROM_HELP = ("Copy the owner's Kubernetes label KEY (or annotation, as annotation:KEY) "
                    "into the Prometheus label LABEL, e.g. app.kubernetes.io/name=job "
                    "(repeatable; several for one LABEL: the first the owner has).")


def _aws_session(region: str | None, profile: str | None = None) -> boto3.session.Session:
    # boto3 reads AWS_DEFAULT_REGION and profiles; AWS_REGION is what other SDKs
    # (and EKS pod identity) set, so honour it too.
    session = boto3.session.Session(profile_name=profile,
                                    region_name=region or os.environ.get("AWS_REGION"))
    if not session.region_name:
        raise ConfigError("--region: no AWS region configured; pass --region or set "
                          "AWS_REGION")
    return session


@click.group(cls=_Cli)
@click.version_option(__version__, prog_name="lbscrape")
def cli() -> None:
    """Copy the CloudWatch metrics of a cluster's AWS load balancers into Prometheus."""


@cli.command()
@_opt("--cluster", required=True,
      help="Cluster name, written as the `cluster` label. When an owner's controller tags "
           "match several load balancers, the one tagged elbv2.k8s.aws/cluster=<it> wins.")
@_opt("--region", default=None, help="AWS region (default: the AWS config chain).")
@_opt("--remote-write-url", default=None,
      help="Prometheus remote-write endpoint (required unless --dry-run).")
@_opt("--checkpoint-configmap", default=None, metavar="NAMESPACE/NAME",
      help=f"ConfigMap holding checkpoints (default: {DEFAULT_CHECKPOINT_NAME} in the pod's "
           "namespace, or the kubeconfig context's namespace).")
@_opt("--checkpoint-file", default=None, metavar="PATH",
      help="Keep checkpoints in this local JSON file instead of a ConfigMap (laptops, CI).")
@_opt("--settle-delay", default="2m", help="Write a period only this long after it ended.")
@_opt("--period", default="60s", help="CloudWatch period; a multiple of 60s.")
@_opt("--initial-lookback", default="10m", help="Where a load balancer with no checkpoint starts.")
@_opt("--max-catchup", default="50m",
      help="Oldest window start; an older checkpoint is clamped, leaving a logged gap.")
@_opt("--checkpoint-retention", default="7d",
      help="Forget checkpoints of load balancers not seen for this long.")
@_opt("--label", "labels", multiple=True, metavar="KEY=VALUE",
      help="Static label on every sample (repeatable; in the env var, separate by spaces).")
@_opt("--label-from", "label_from", multiple=True, metavar="SOURCE=LABEL", help=_LABEL_FROM_HELP)
@_selection_options
@_opt("--events/--no-events", default=True,
      help="Record a Warning Event on an Ingress or Service whose load balancer is not found "
           "or whose lbscrape annotations are invalid (needs `create` on events).")
@_remote_write_options
@_opt("--deadline", default="50s",
      help="The run ends by then: no new fetches, no new writes. Keep it under the schedule "
           "interval and the Job's activeDeadlineSeconds.")
@_opt("--metrics-config", default=None, metavar="FILE",
      help="YAML or JSON file that adds metrics, statistics and percentiles to the default "
           "catalog or drops them (see 'lbscrape metrics').")
@_opt("--zero-fill/--no-zero-fill", default=True,
      help="Write 0 for a sparse counter (HTTPCode_*, errors) that has no datapoint in a "
           "period in which the load balancer had traffic.")
@_opt("--dry-run", is_flag=True, default=False,
      help="Discover, resolve and fetch, print the samples; write nothing, move no checkpoint.")
@_opt("--kubeconfig", default=None, help="Kubeconfig file (default: in-cluster, else KUBECONFIG "
      "or ~/.kube/config).")
@_opt("--context", default=None, help="Kubeconfig context.")
@_opt("--log-format", type=click.Choice(["json", "text"]), default=None,
      help="Log format (default: json unless stderr is a terminal).")
@_opt("--now", default=None, hidden=True,
      help="Pretend it is this time (RFC 3339 or epoch seconds); never later than the clock.")
def run(cluster: str, region: str | None, remote_write_url: str | None,
        checkpoint_configmap: str | None, checkpoint_file: str | None, settle_delay: str,
        period: str, initial_lookback: str,
        max_catchup: str, checkpoint_retention: str, labels: tuple[str, ...],
        label_from: tuple[str, ...], namespaces: tuple[str, ...],
        exclude_namespaces: tuple[str, ...], events: bool,
        rw_options: RemoteWriteOptions, deadline: str, metrics_config: str | None,
        zero_fill: bool, dry_run: bool, kubeconfig: str | None,
        context: str | None, log_format: str | None, now: str | None) -> int:
    """Run one scrape cycle: discover, resolve, fetch the settled window, write, checkpoint.

    \b
    Example:
        lbscrape run --cluster prod-eu \\
          --remote-write-url http://prometheus.monitoring:9090/api/v1/write \\
          --label env=prod --label-from app.kubernetes.io/name=job
    """
    logs.setup(log_format)
    try:
        window = validate_window(WindowSettings(
            settle_delay=parse_duration(settle_delay, "--settle-delay"),
            period=parse_duration(period, "--period"),
            initial_lookback=parse_duration(initial_lookback, "--initial-lookback"),
            max_catchup=parse_duration(max_catchup, "--max-catchup"),
        ))
        static_labels = parse_labels(labels)
        rules = parse_labels_from(label_from)
        only, never = parse_namespaces(namespaces, exclude_namespaces)
        retention_s = parse_duration(checkpoint_retention, "--checkpoint-retention")
        if retention_s <= window.max_catchup:
            raise ConfigError("--checkpoint-retention: must be longer than --max-catchup "
                              f"({window.max_catchup}s); default 7d")
        deadline_s = parse_duration(deadline, "--deadline")
        if deadline_s <= 0:
            raise ConfigError("--deadline: must be positive (default 50s)")
        if not cluster.strip():
            raise ConfigError("--cluster: must not be empty")
        catalog = _catalog(metrics_config)
        rw, credentials = None, None
        if remote_write_url:
            # Read the secret and certificate files now (also in a dry run), so a missing
            # Secret is a usage error before anything is fetched.
            rw, credentials = rw_options.load(remote_write_url)
        elif not dry_run:
            raise ConfigError("--remote-write-url: required unless --dry-run "
                              "(or set LBSCRAPE_REMOTE_WRITE_URL)")
        location = parse_configmap_ref(checkpoint_configmap) if checkpoint_configmap else None
        _one_store(checkpoint_configmap, checkpoint_file)
        at = _parse_now(now)
        kube, own_namespace = make_api_client(kubeconfig, context)
        session = _aws_session(region)
        cfg = RunConfig(
            cluster=cluster.strip(), region=session.region_name, window=window,
            remote_write=rw, dry_run=dry_run, static_labels=static_labels,
            checkpoint_retention=retention_s, checkpoint_file=checkpoint_file,
            checkpoint=location or CheckpointLocation(own_namespace, DEFAULT_CHECKPOINT_NAME),
            catalog=catalog, zero_fill=zero_fill,
            namespaces=only, exclude_namespaces=never, label_from=rules, events=events,
        )
    except ConfigError as e:
        click.echo(f"lbscrape: error: {e}", err=True)
        return ExitStatus.USAGE

    log.info("lbscrape %s starting%s: %s deadline=%ds", __version__,
             " (DRY-RUN)" if dry_run else "", _describe(cfg), deadline_s)
    oldest = window.settle_delay + window.period + window.max_catchup
    if oldest > 3600:
        log.warning("samples may be up to %dm old (settle delay + period + max catch-up); a "
                    "live Prometheus refuses samples more than about 1h older than its newest "
                    "unless its out_of_order_time_window allows them", oldest // 60)
    budget = Budget(deadline_s)
    try:
        clients = pipeline.Clients(
            kube=kube,
            elbv2=session.client("elbv2", config=AWS_CONFIG),
            elb=session.client("elb", config=AWS_CONFIG),
            cloudwatch=session.client("cloudwatch", config=AWS_CONFIG),
            store=FileStore(checkpoint_file) if checkpoint_file
            else ConfigMapStore(kube, cfg.checkpoint),
            writer=(remote_write.Client(rw, budget=budget, credentials=credentials)
                    if rw and not dry_run else None),
            events=events_mod.Recorder(kube) if cfg.events and not dry_run else None,
        )
    except (LbscrapeError, BotoCoreError) as e:
        log.error("run failed: %s", e)
        return ExitStatus.ERROR

    def on_sigterm(signum: int, frame: object) -> None:
        log.warning("SIGTERM: no more fetching; writing what was fetched and storing "
                    "checkpoints within %ds", SIGTERM_GRACE)
        budget.stop("stopped by SIGTERM", SIGTERM_GRACE)

    previous = signal.signal(signal.SIGTERM, on_sigterm)
    try:
        result = pipeline.run(cfg, clients, at, emit=click.echo, budget=budget)
    except (LbscrapeError, BotoCoreError):
        return ExitStatus.ERROR  # pipeline.run's summary line named it
    finally:
        signal.signal(signal.SIGTERM, previous)
    return result.status


def _checkpoint_options(f: F) -> F:
    for decorator in reversed([
        _opt("--checkpoint-configmap", default=None, metavar="NAMESPACE/NAME",
             help=f"ConfigMap holding checkpoints (default: {DEFAULT_CHECKPOINT_NAME} in the "
                  "kubeconfig context's namespace, or the pod's)."),
        _opt("--checkpoint-file", default=None, metavar="PATH",
             help="A local JSON checkpoint file instead of the ConfigMap."),
        _opt("--kubeconfig", default=None, help="Kubeconfig file."),
        _opt("--context", default=None, help="Kubeconfig context."),
    ]):
        f = decorator(f)
    return f


def _one_store(checkpoint_configmap: str | None, checkpoint_file: str | None) -> None:
    if checkpoint_configmap and checkpoint_file:
        raise ConfigError("--checkpoint-file: not together with --checkpoint-configmap; "
                          "choose one place for the checkpoints")


def _open_store(checkpoint_configmap: str | None, checkpoint_file: str | None,
                kubeconfig: str | None, context: str | None) -> ConfigMapStore | FileStore:
    _one_store(checkpoint_configmap, checkpoint_file)
    if checkpoint_file:
        return FileStore(checkpoint_file)
    location = parse_configmap_ref(checkpoint_configmap) if checkpoint_configmap else None
    kube, own_namespace = make_api_client(kubeconfig, context)
    return ConfigMapStore(kube, location or CheckpointLocation(own_namespace,
                                                               DEFAULT_CHECKPOINT_NAME))


@cli.group()
def checkpoint() -> None:
    """Show or reset the per-load-balancer checkpoints of `lbscrape run`.

    \b
    Example:
        lbscrape checkpoint show --context prod
    """


@checkpoint.command("show")
@_checkpoint_options
@click.option("-o", "--output", type=click.Choice(["table", "json"]), default="table",
              show_default=True)
def checkpoint_show(checkpoint_configmap: str | None, checkpoint_file: str | None,
                    kubeconfig: str | None,
                    context: str | None, output: str) -> int:
    """Per load balancer: where the next run starts, and how far behind that is.

    \b
    Example:
        lbscrape checkpoint show -o json
    """
    try:
        store = _open_store(checkpoint_configmap, checkpoint_file, kubeconfig, context)
        ends = store.load().ends
    except (LbscrapeError, BotoCoreError) as e:
        return _fail(e)
    now = int(time.time())
    items = sorted(ends.items())
    if output == "json":
        click.echo(json.dumps([{"load_balancer_name": _lb_name(k), "load_balancer": k,
                                "checkpoint": isotime(v), "lag_seconds": now - v}
                               for k, v in items], indent=2))
    elif not items:
        click.echo(f"no checkpoints in {store.location}")
    else:
        table = [("LOAD BALANCER", "DIMENSION", "CHECKPOINT", "LAG")] + [
            (_lb_name(k), k, isotime(v), _ago(now - v)) for k, v in items]
        widths = [max(len(str(row[i])) for row in table) for i in range(4)]
        for row in table:
            click.echo("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True))
                       .rstrip())
    return ExitStatus.OK


@checkpoint.command("reset")
@_checkpoint_options
@click.option("--load-balancer", "names", multiple=True, metavar="NAME",
              help="Only this load balancer (its AWS name or CloudWatch dimension); "
                   "repeatable. Default: all.")
@click.option("--to", "to", default=None, metavar="TIME",
              help="Move the checkpoint to this time (RFC 3339, epoch seconds, or -30m); "
                   "default: forget it, so the next run starts from --initial-lookback.")
def checkpoint_reset(checkpoint_configmap: str | None, checkpoint_file: str | None,
                     kubeconfig: str | None,
                     context: str | None, names: tuple[str, ...], to: str | None) -> int:
    """Move checkpoints back (to re-fetch a range) or forget them.

    Samples Prometheus already holds are refused when re-sent and only counted, so a reset
    never changes a stored value; it costs requests.

    \b
    Example:
        lbscrape checkpoint reset --load-balancer k8s-shop-web-0123456789 --to -30m
    """
    try:
        at = None
        if to is not None:
            at = (int(time.time()) - parse_duration(to[1:], "--to") if to.startswith("-")
                  else _parse_time(to, "--to"))
            at = at // 60 * 60
        store = _open_store(checkpoint_configmap, checkpoint_file, kubeconfig, context)
        current = store.load()
        keys = None
        if names:
            wanted = set(names)
            keys = {k for k in current.ends if k in wanted or _lb_name(k) in wanted}
            missing = wanted - keys - {_lb_name(k) for k in keys}
            if missing:
                raise ConfigError(f"--load-balancer: no checkpoint for "
                                  f"{', '.join(sorted(missing))} (see 'lbscrape checkpoint show')")
        stored = store.update(current, lambda ends: reset(ends, keys, at))
    except (LbscrapeError, BotoCoreError) as e:
        return _fail(e)
    changed = sorted(k for k in current.ends if stored.ends.get(k) != current.ends[k])
    what = f"moved to {isotime(at)}" if at is not None else "forgotten"
    click.echo(f"{len(changed)} checkpoints {what} in {store.location}")
    return ExitStatus.OK


@cli.command()
@_opt("--cluster", default="", help="Cluster name, as for run: it settles which load balancer "
      "an object's tags point at when clusters share an account.")
@_opt("--region", default=None, help="AWS region (default: the AWS config chain).")
@_opt("--period", default="60s", help="CloudWatch period; a multiple of 60s.")
@_opt("--interval", default="1m", help="How often the CronJob runs (its schedule).")
@_opt("--metrics-config", default=None, metavar="FILE",
      help="The metrics config `run` uses (default: the default catalog).")
@_selection_options
@_opt("--kubeconfig", default=None, help="Kubeconfig file.")
@_opt("--context", default=None, help="Kubeconfig context.")
@click.option("-o", "--output", type=click.Choice(["table", "json"]), default="table",
              show_default=True)
def estimate(cluster: str, region: str | None, period: str, interval: str,
             metrics_config: str | None,
             namespaces: tuple[str, ...], exclude_namespaces: tuple[str, ...],
             kubeconfig: str | None, context: str | None, output: str) -> int:
    """What `lbscrape run` costs in GetMetricData for the load balancers it finds now.

    GetMetricData is billed per metric requested; each run requests every (load balancer,
    metric, statistic) once, so the schedule is the big lever.

    \b
    Example:
        lbscrape estimate --context prod --interval 5m
    """
    try:
        period_s = parse_duration(period, "--period")
        interval_s = parse_duration(interval, "--interval")
        if period_s <= 0 or period_s % 60:
            raise ConfigError(f"--period: {period_s}s is not a positive multiple of 60s")
        if interval_s <= 0:
            raise ConfigError("--interval: must be positive")
        catalog = _catalog(metrics_config)
        selection = owner_labels.Selection.of(*parse_namespaces(namespaces, exclude_namespaces))
        kube, _ = make_api_client(kubeconfig, context)
        session = _aws_session(region)
        lbs = owner_labels.scraped(
            costing.discover_lbs(kube, session.client("elbv2", config=AWS_CONFIG),
                                 session.client("elb", config=AWS_CONFIG), catalog,
                                 cluster.strip()),
            selection)
    except (LbscrapeError, BotoCoreError) as e:
        return _fail(e)
    est = costing.estimate(lbs, period_s, interval_s, catalog)
    if output == "json":
        click.echo(json.dumps(est.as_dict(), indent=2))
    else:
        for line in est.lines():
            click.echo(line)
    return ExitStatus.OK


@cli.command()
@_opt("--cluster", default="", help="Cluster name, for the labels shown and to choose "
      "among load balancers tagged for several clusters, as for run.")
@_opt("--region", default=None, help="AWS region (default: the AWS config chain).")
@_opt("--label", "labels", multiple=True, metavar="KEY=VALUE", help="Static labels, as for run.")
@_opt("--label-from", "label_from", multiple=True, metavar="SOURCE=LABEL",
      help="Labels copied from the owner, as for run.")
@_selection_options
@_checkpoint_options
@click.option("-o", "--output", type=click.Choice(["table", "json"]), default="table",
              show_default=True)
def discover(cluster: str, region: str | None, labels: tuple[str, ...],
             label_from: tuple[str, ...], namespaces: tuple[str, ...],
             exclude_namespaces: tuple[str, ...],
             checkpoint_configmap: str | None, checkpoint_file: str | None,
             kubeconfig: str | None, context: str | None, output: str) -> int:
    """Every load-balancer-owning object, what it resolved to, its labels and lag.

    Also every object skipped and why (no hostname yet, filtered out, opted out,
    unresolved), and every invalid lbscrape annotation or copied label value. Exits 3
    when a selected object that has a load balancer hostname could not be resolved, so
    CI can gate on it.

    \b
    Example:
        lbscrape discover --cluster prod-eu -o json
    """
    try:
        static = parse_labels(labels)
        rules = parse_labels_from(label_from)
        selection = owner_labels.Selection.of(*parse_namespaces(namespaces, exclude_namespaces))
        store = _open_store(checkpoint_configmap, checkpoint_file, kubeconfig, context)
        kube, _ = make_api_client(kubeconfig, context)
        session = _aws_session(region)
        owners = discovery.discover_all(kube)
        elbv2 = session.client("elbv2", config=AWS_CONFIG)
        res = find(owners, elbv2, session.client("elb", config=AWS_CONFIG), cluster)
        ends = store.load().ends
        chosen = owner_labels.plan(owners, res.load_balancers, res.unresolved, selection, rules)
        # Shown whatever the catalog fetches: which Service each target group serves.
        lbs = find_target_groups(chosen.load_balancers, elbv2,
                                 lambda: discovery.target_group_bindings(kube))
    except (LbscrapeError, BotoCoreError) as e:
        return _fail(e)
    skipped_owners = {o for o, _ in chosen.skipped}
    now = int(time.time())
    rows: list[dict[str, Any]] = []
    for lb in lbs:
        for owner in lb.owners:
            if owner in skipped_owners:
                continue
            rows.append({
                "kind": owner.kind, "namespace": owner.namespace, "name": owner.name,
                "load_balancer_name": lb.name, "arn": lb.arn, "type": lb.type,
                "load_balancer": lb.dimension, "matched_by": res.matched_by.get(owner),
                "labels": lb_labels(lb, cluster, session.region_name,
                                    (*static, *chosen.extra_labels(lb))),
                "lag_seconds": now - ends[lb.key] if lb.key in ends else None,
                "target_groups": [
                    {"name": tg.name, "target_group": tg.dimension,
                     "binding": {"namespace": tg.binding.namespace,
                                 "service": tg.binding.service, "port": tg.binding.port}
                     if tg.binding else None} for tg in lb.target_groups]})
    skipped = [{"kind": o.kind, "namespace": o.namespace, "name": o.name, "reason": why}
               for o, why in chosen.skipped]
    skipped += [{"kind": o.kind, "namespace": o.namespace, "name": o.name,
                 "reason": "no load balancer hostname in its status yet"}
                for o in chosen.selected if not o.hostnames]
    skipped += [{"kind": u.owner.kind, "namespace": u.owner.namespace, "name": u.owner.name,
                 "reason": explain(u, session.region_name)}
                for u in chosen.unresolved]
    warnings = [{"kind": p.owner.kind, "namespace": p.owner.namespace, "name": p.owner.name,
                 "event": p.reason, "message": p.text} for p in chosen.problems]
    if output == "json":
        click.echo(json.dumps({"resolved": rows, "skipped": skipped, "warnings": warnings},
                              indent=2))
    else:
        table = [("OBJECT", "LOAD BALANCER", "TYPE", "MATCHED BY", "DIMENSION", "LAG",
                  "LABELS")] + [
            (f"{r['kind']} {r['namespace']}/{r['name']}", r["load_balancer_name"], r["type"],
             r["matched_by"] or "-", r["load_balancer"],
             "-" if r["lag_seconds"] is None else _ago(r["lag_seconds"]),
             ",".join(f"{k}={v}" for k, v in sorted(r["labels"].items())))
            for r in rows]
        widths = [max(len(row[i]) for row in table) for i in range(7)]
        for row in table:
            click.echo("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
        tgs = [("TARGET GROUP", "LOAD BALANCER", "SERVICE (TargetGroupBinding)")] + [
            (tg.name, lb.name, f"{tg.binding.namespace}/{tg.binding.service}:{tg.binding.port}"
             if tg.binding else "-")
            for lb in lbs if any(o not in skipped_owners for o in lb.owners)
            for tg in lb.target_groups]
        if len(tgs) > 1:
            click.echo("")
            tw = [max(len(row[i]) for row in tgs) for i in range(3)]
            for row in tgs:
                click.echo("  ".join(c.ljust(w) for c, w in zip(row, tw, strict=True)).rstrip())
        for s in skipped:
            click.echo(f"skipped {s['kind']} {s['namespace']}/{s['name']}: {s['reason']}")
        for w in warnings:
            click.echo(f"warning {w['kind']} {w['namespace']}/{w['name']}: {w['message']}")
    return ExitStatus.PARTIAL if chosen.unresolved else ExitStatus.OK


@cli.command("smoke")
@_opt("--cluster", default=None,
      help="Cluster name, the `cluster` label of the smoke sample (required unless --no-write).")
@_opt("--region", default=None, help="AWS region (default: the AWS config chain).")
@_opt("--label", "labels", multiple=True, metavar="KEY=VALUE",
      help="Static labels of the smoke sample, as for run.")
@_opt("--remote-write-url", default=None,
      help="Prometheus remote-write endpoint (required unless --no-write).")
@_remote_write_options
@_checkpoint_options
@_opt("--no-write", is_flag=True, default=False,
      help="Skip the remote-write check, so nothing at all is written.")
@_opt("--events/--no-events", default=True,
      help="As for run: --no-events skips the check of `create` on events.")
@click.option("-o", "--output", type=click.Choice(["table", "json"]), default="table",
              show_default=True)
def smoke_command(cluster: str | None, region: str | None, labels: tuple[str, ...],
                  remote_write_url: str | None, rw_options: RemoteWriteOptions,
                  checkpoint_configmap: str | None, checkpoint_file: str | None,
                  kubeconfig: str | None, context: str | None, no_write: bool,
                  events: bool, output: str) -> int:
    """Check that lbscrape run would be allowed everything it does, writing no metric data.

    \b
    - Kubernetes: a SelfSubjectAccessReview per verb and resource run uses
      (the checkpoint ConfigMap's are skipped with --checkpoint-file);
      the checkpoint itself is never read or written.
    - AWS: one cheap call per API run uses: DescribeLoadBalancers (ELBv2 and
      classic, a page of one), DescribeTags, DescribeTargetGroups and GetMetricData
      (one metric over one period: $0.00001).
    - Remote write: one sample lbscrape_smoke{cluster,region,labels} = 1.

    Every check runs even when another fails. Exit 0 when all pass, 1 when any fails,
    2 on bad input. Give it the options and LBSCRAPE_* variables of the CronJob, and the
    identity it runs as.

    \b
    Example:
        lbscrape smoke --cluster prod-eu \\
          --remote-write-url https://prometheus.example.com/api/v1/write -o json
    """
    try:
        static_labels = parse_labels(labels)
        rw, credentials = None, None
        if not no_write:
            if not (cluster or "").strip():
                raise ConfigError("--cluster: required unless --no-write (or set "
                                  "LBSCRAPE_CLUSTER)")
            if not remote_write_url:
                raise ConfigError("--remote-write-url: required unless --no-write (or set "
                                  "LBSCRAPE_REMOTE_WRITE_URL)")
            rw, credentials = rw_options.load(remote_write_url)
        _one_store(checkpoint_configmap, checkpoint_file)
        location = parse_configmap_ref(checkpoint_configmap) if checkpoint_configmap else None
        kube, own_namespace = make_api_client(kubeconfig, context)
        session = _aws_session(region)
        elbv2 = session.client("elbv2", config=AWS_CONFIG)
        elb = session.client("elb", config=AWS_CONFIG)
        cloudwatch = session.client("cloudwatch", config=AWS_CONFIG)
    except (LbscrapeError, BotoCoreError) as e:
        return _fail(e)
    checkpoint = None if checkpoint_file else (
        location or CheckpointLocation(own_namespace, DEFAULT_CHECKPOINT_NAME))
    now = time.time()
    checks = [*smoke.check_permissions(kube, checkpoint, events),
              *smoke.check_aws(elbv2, elb, cloudwatch, session.region_name, int(now))]
    if rw and credentials and cluster:
        series = smoke.smoke_series(cluster.strip(), session.region_name, static_labels,
                                    int(now * 1000))
        checks.append(smoke.check_remote_write(
            remote_write.Client(rw, credentials=credentials), series))
    else:
        checks.append(smoke.WRITE_SKIPPED)
    if output == "json":
        click.echo(json.dumps(smoke.as_json(checks), indent=2))
    else:
        for line in smoke.table(checks):
            click.echo(line)
    return ExitStatus.ERROR if smoke.failed(checks) else ExitStatus.OK


@cli.command()
@_opt("--start", required=True, metavar="TIME",
      help="First period: RFC 3339, a date (midnight UTC), epoch seconds or a time ago (-6h).")
@_opt("--end", default="now", metavar="TIME",
      help="End of the range (exclusive), clamped to now minus the settle delay.")
@_opt("--cluster", required=True, help="Cluster name, written as the `cluster` label.")
@_opt("--region", default=None, help="AWS region (default: the profile's).")
@_opt("--profile", default=None, help="AWS profile (default: the AWS config chain).")
@_opt("--label", "labels", multiple=True, metavar="KEY=VALUE",
      help="Static labels, as for run (use the CronJob's, so the series are the same).")
@_opt("--label-from", "label_from", multiple=True, metavar="SOURCE=LABEL",
      help="Labels copied from the owner, as for run (use the CronJob's).")
@_opt("--load-balancer", "names", multiple=True, metavar="NAME",
      help="Only this load balancer (AWS name); repeatable. Default: all discovered.")
@_selection_options
@_opt("--period", default="60s",
      help="CloudWatch period; 1-minute data is kept 15 days, 5-minute 63 days, 1-hour 455.")
@_opt("--settle-delay", default="2m", help="Write a period only this long after it ended.")
@_opt("--remote-write-url", default=None, help="Prometheus remote-write endpoint.")
@_remote_write_options
@_opt("--output", default=None, metavar="FILE",
      help="Write OpenMetrics text for 'promtool tsdb create-blocks-from openmetrics' "
           "instead of remote writing.")
@_opt("--metrics-config", default=None, metavar="FILE",
      help="The metrics config `run` uses, so the same series are written. With --resume, "
           "the metrics and zero-fill the backfill started with apply.")
@_opt("--zero-fill/--no-zero-fill", default=True,
      help="As for run: 0 for a sparse counter's missing datapoint in a period with traffic.")
@_opt("--state-file", default="lbscrape-backfill.json", metavar="PATH",
      help="Where progress is kept, for --resume; removed when the backfill is complete.")
@_opt("--checkpoint-file", default=None, metavar="PATH",
      help="When complete, move this local checkpoint (of 'run --checkpoint-file') to the "
           "end of the range, so run carries on from there. Never the ConfigMap.")
@click.option("--resume", is_flag=True, help="Carry on an interrupted backfill from its "
              "state file, without re-sending what it wrote.")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation (never asked "
              "when stdin is not a terminal).")
@_opt("--kubeconfig", default=None, help="Kubeconfig file.")
@_opt("--context", default=None, help="Kubeconfig context.")
@_opt("--log-format", type=click.Choice(["json", "text"]), default=None,
      help="Log format (default: json unless stderr is a terminal).")
@_opt("--now", default=None, hidden=True, help="Pretend it is this time; never later than "
      "the clock.")
def backfill(start: str, end: str, cluster: str, region: str | None, profile: str | None,
             labels: tuple[str, ...], label_from: tuple[str, ...], names: tuple[str, ...],
             namespaces: tuple[str, ...], exclude_namespaces: tuple[str, ...],
             period: str, settle_delay: str, output: str | None, metrics_config: str | None,
             zero_fill: bool, state_file: str, checkpoint_file: str | None,
             resume: bool, yes: bool, kubeconfig: str | None, context: str | None,
             log_format: str | None, now: str | None, remote_write_url: str | None,
             rw_options: RemoteWriteOptions) -> int:
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
    logs.setup(log_format)
    clock = _parse_now(now)
    store = backfill_mod.StateFile(state_file)
    try:
        period_s = parse_duration(period, "--period")
        settle_s = parse_duration(settle_delay, "--settle-delay")
        # Only the period and settle rules apply: a backfill has no lookback or catch-up.
        validate_window(WindowSettings(settle_s, period_s, period_s, period_s))
        static = parse_labels(labels)
        catalog = _catalog(metrics_config)
        rules = parse_labels_from(label_from)
        rw, credentials = (rw_options.load(remote_write_url) if remote_write_url
                           else (None, None))
        if (rw is None) == (output is None):
            raise ConfigError("--output: give either --remote-write-url or --output FILE "
                              "(OpenMetrics for promtool)")
        target = f"file {output}" if output else f"remote-write {redact_url(rw.url) if rw else ''}"
        session = _aws_session(region, profile)
        if resume:
            state = store.load()
            if state.output != target:
                raise ConfigError(f"--resume: {state_file} was writing to {state.output}, not "
                                  f"{target}; pass the same destination")
        else:
            if store.exists():
                store.load()  # a file that is no backfill state says so
                raise ConfigError(f"--state-file: {state_file} holds an unfinished backfill; "
                                  "pass --resume to carry on, or delete it to start over")
            window = backfill_mod.plan_range(
                backfill_mod.parse_when(start, clock, "--start"),
                backfill_mod.parse_when(end, clock, "--end"), period_s, settle_s, clock)
            kube, _ = make_api_client(kubeconfig, context)
            owners = discovery.discover(kube)
            elbv2 = session.client("elbv2", config=AWS_CONFIG)
            res = find(owners, elbv2, session.client("elb", config=AWS_CONFIG), cluster.strip())
            # Labels as `run` writes them; opted-out load balancers are left out.
            selection = owner_labels.Selection.of(
                *parse_namespaces(namespaces, exclude_namespaces))
            chosen = owner_labels.plan(owners, res.load_balancers, res.unresolved,
                                       selection, rules)
            for u in chosen.unresolved:
                log.warning("%s: %s; not backfilled", u.owner, explain(u, session.region_name))
            for p in chosen.problems:
                log.warning("%s", p)
            lbs = find_target_groups(_select(chosen.load_balancers, names, namespaces), elbv2,
                                     lambda: discovery.target_group_bindings(kube),
                                     catalog.has_target_groups)
            state = backfill_mod.State(window, tuple(
                t for lb in lbs for t in backfill_mod.targets_of(
                    lb, catalog, lb_labels(lb, cluster.strip(), session.region_name,
                                           (*static, *chosen.extra_labels(lb))), zero_fill)),
                target)
            if zero_fill:
                for t in sorted({lb.type for lb in lbs}):
                    for dims in DIMENSION_SETS:
                        if reason := catalog.no_fill_reason(t, dims):
                            log.warning("%s", reason)
        plan = backfill_mod.make_plan(state.window, state.targets)
        if resume:
            backfill_mod.check_still_kept(plan, state.done, clock)
    except (LbscrapeError, BotoCoreError) as e:
        return _fail(e)

    for line in backfill_mod.describe(plan):
        click.echo(line)
    left = len(plan.calls) - len(state.done)
    if resume:
        click.echo(f"resuming: {len(state.done)} of {len(plan.calls)} calls already written, "
                   f"{state.samples_written:,} samples")
    if left and not yes and sys.stdin.isatty() and not click.confirm("Start?", err=True):
        return ExitStatus.ERROR
    try:
        sink: backfill_mod.Sink
        if output:
            sink = backfill_mod.OpenMetricsSink(output, state, resume)
        else:
            assert rw is not None
            sink = backfill_mod.RemoteWriteSink(remote_write.Client(rw, credentials=credentials))
        store.save(state)
    except (LbscrapeError, BotoCoreError) as e:
        return _fail(e)
    try:
        with _Progress(len(plan.calls), len(state.done)) as progress:
            outcome = backfill_mod.run(plan, state, store, session.client(
                "cloudwatch", config=AWS_CONFIG), sink, progress)
    except KeyboardInterrupt:
        click.echo(f"lbscrape: interrupted after {len(state.done)} of {len(plan.calls)} calls; "
                   f"carry on with the same command and --resume", err=True)
        return 130
    except (LbscrapeError, BotoCoreError) as e:
        click.echo(f"lbscrape: error: {e}", err=True)
        click.echo(f"lbscrape: {len(state.done)} of {len(plan.calls)} calls written; carry on "
                   "with the same command and --resume", err=True)
        return ExitStatus.ERROR
    finally:
        sink.close()
    done = len(state.done) == len(plan.calls)
    log.info("backfill %s: calls_written=%d/%d gmd_calls=%d metrics_requested=%d "
             "samples_written=%d samples_rejected=%d samples_zero_filled=%d",
             "finished" if done else "incomplete", len(state.done), len(plan.calls),
             outcome.gmd_calls, outcome.metrics_requested, state.samples_written,
             state.samples_rejected, outcome.samples_zero_filled)
    if not done:
        click.echo(f"lbscrape: {len(outcome.failed)} calls could not be fetched; run the same "
                   "command with --resume to retry them", err=True)
        return ExitStatus.PARTIAL
    if checkpoint_file:
        try:
            moved = backfill_mod.carry_checkpoint(FileStore(checkpoint_file), state)
        except LbscrapeError as e:
            return _fail(e)
        click.echo(f"checkpoint file {checkpoint_file}: {moved} load balancers continue from "
                   f"{isotime(state.window.end)}")
    store.remove()
    if output:
        click.echo(f"wrote {output}; load it with: promtool tsdb create-blocks-from "
                   f"openmetrics {output} <prometheus data dir>")
    return ExitStatus.PARTIAL if state.samples_rejected else ExitStatus.OK


def _select(lbs: Sequence[LoadBalancer], names: Sequence[str], namespaces: Sequence[str]
            ) -> list[LoadBalancer]:
    """The load balancers --load-balancer asks for (the owner selection already applied
    --namespace); every name and namespace asked for must match one."""
    chosen = [lb for lb in lbs if not names or lb.name in names]
    for option, wanted, have in (
            ("--load-balancer", names, {lb.name for lb in lbs}),
            ("--namespace", namespaces, {o.namespace for lb in lbs for o in lb.owners})):
        missing = sorted(set(wanted) - have)
        if missing:
            raise ConfigError(f"{option}: no discovered load balancer matches "
                              f"{', '.join(missing)} (see 'lbscrape discover')")
    if not chosen:
        raise ConfigError("--load-balancer/--namespace: no load balancer left to backfill")
    return chosen


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

    def __call__(self, done: int, total: int, state: backfill_mod.State) -> None:
        if self.bar is not None:
            self.bar.update(done - self.bar.pos)
            return
        elapsed = time.monotonic() - self.started
        rate = (done - self.done) / elapsed if elapsed > 0 else 0
        eta = f"{(total - done) / rate:.0f}s" if rate else "?"
        log.info("backfill: %d/%d calls written (%d%%), %d samples, eta %s", done, total,
                 100 * done // total, state.samples_written, eta)
@cli.command()
@_opt("--metrics-config", default=None, metavar="FILE",
      help="Check this metrics config and show the catalog it gives.")
@click.option("--known", is_flag=True, default=False,
              help="List every metric lbscrape knows, fetched or not.")
@click.option("-o", "--output", type=click.Choice(["table", "json"]), default="table",
              show_default=True)
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
    try:
        catalog = _catalog(metrics_config)
    except ConfigError as e:
        return _fail(e)
    rows = _catalog_rows(catalog, known)
    if output == "json":
        click.echo(json.dumps(rows, indent=2))
        return ExitStatus.OK
    head = ("TYPE", "PROMETHEUS NAME", "CLOUDWATCH METRIC", "STAT", "ZERO-FILL")
    table = [head] + [(r["type"], r["name"] or "-", f"{r['namespace']} {r['metric']}",
                       r["stat"] or "-", r["zero_fill"] or "") for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(head))]
    for row in table:
        click.echo("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    click.echo(f"\nsource: {catalog.source or 'the default catalog'}")
    for t in KINDS:
        for dims in DIMENSION_SETS:
            if reason := catalog.no_fill_reason(t, dims):
                click.echo(reason)
    return ExitStatus.OK


def _catalog(path: str | None) -> Catalog:
    return metrics_config.load(path) if path else DEFAULT


def _catalog_rows(catalog: Catalog, known: bool) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for t, kind in KINDS.items():
        fetched = set()
        for dims in DIMENSION_SETS:
            plan = catalog.fill_plan(t, dims)
            cw_dims = [kind.dimension] if dims == "load_balancer" else \
                ["TargetGroup", kind.dimension]
            for spec in catalog.specs(t, dims):
                fetched.add(spec.metric)
                role = "traffic" if spec == plan.traffic else "yes" if spec in plan.sparse \
                    else None
                rows.append({"type": t, "namespace": kind.namespace, "metric": spec.metric,
                             "stat": spec.stat, "name": spec.prom_name,
                             "dimensions": cw_dims, "zero_fill": role})
        if known:
            rows += [{"type": t, "namespace": kind.namespace, "metric": m.name, "stat": None,
                      "name": None, "dimensions": list(m.dimensions),
                      "zero_fill": "sparse" if m.sparse else None}
                     for m in KNOWN[t].values() if m.name not in fetched]
    return rows


def _fail(e: Exception) -> int:
    """One line on stderr; bad input is exit 2, anything else exit 1."""
    click.echo(f"lbscrape: error: {e}", err=True)
    return ExitStatus.USAGE if isinstance(e, ConfigError) else ExitStatus.ERROR


def _lb_name(key: str) -> str:
    """Checkpoint key -> load balancer name: app/NAME/ID, net/NAME/ID or elb/NAME."""
    if key.startswith(CLASSIC_KEY_PREFIX):
        return key.removeprefix(CLASSIC_KEY_PREFIX)
    parts = key.split("/")
    return parts[1] if len(parts) == 3 else key


def _ago(seconds: int) -> str:
    if seconds < 0:
        return "ahead"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m" if seconds >= 3600 else \
        f"{seconds // 60}m{seconds % 60:02d}s"


def _parse_time(text: str, option: str) -> int:
    try:
        return int(text) if text.isdigit() else parse_isotime(text)
    except ValueError as e:
        raise ConfigError(f"{option}: cannot read time {text!r}: use RFC 3339 "
                          "(2026-11-23T10:00:00Z), epoch seconds or -30m") from e


def _parse_now(text: str | None) -> int:
    clock = int(time.time())
    return min(_parse_time(text, "--now"), clock) if text else clock


def _describe(cfg: RunConfig) -> str:
    w = cfg.window
    parts = [
        f"cluster={cfg.cluster}", f"region={cfg.region}",
        f"remote_write_url={redact_url(cfg.remote_write.url) if cfg.remote_write else '-'}",
        f"remote_write_auth={_auth_kind(cfg.remote_write)}",
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
    ]
    return " ".join(parts)


def _auth_kind(rw: RemoteWriteSettings | None) -> str:
    """How remote write authenticates, for the start-up line: kinds, never secrets."""
    if rw is None:
        return "-"
    kinds = ["bearer" if rw.bearer_token_file else "basic"
             if rw.password_file or "@" in redact_url(rw.url) else "none"]
    if rw.ca_file:
        kinds.append("ca-file")
    if rw.cert_file:
        kinds.append("mtls")
    return "+".join(kinds)


cli.add_command(mixin)


def main() -> None:
    cli(prog_name="lbscrape")

