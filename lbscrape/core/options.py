"""Option values as the user gave them (text, paths), and their validation into configs.

The command line fills these dataclasses and hands them to a flow; turning them into a
validated RunConfig (or a backfill's settings) happens here, so it is testable without
click. Every check raises ConfigError naming the option, before anything is contacted.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from lbscrape.core import headers
from lbscrape.core.catalog import DEFAULT, Catalog
from lbscrape.core.config import (
    CheckpointLocation,
    CloudWatchLimits,
    LabelFrom,
    RemoteWriteSettings,
    RunConfig,
    WindowSettings,
    parse_cloudwatch_limits,
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
from lbscrape.core.errors import ConfigError
from lbscrape.core.model import parse_isotime
from lbscrape.core.shard import parse_count, parse_shard

DEFAULT_CHECKPOINT_NAME = "lbscrape-checkpoint"


@dataclass(frozen=True)
class RemoteWriteOptions:
    """The remote-write options `run`, `backfill` and `smoke` share."""

    timeout: str = "10s"
    retries: int = 3
    max_samples: int = 20_000
    bearer_token_file: str | None = None
    username: str | None = None
    password_file: str | None = None
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    headers: tuple[str, ...] = ()
    header_files: tuple[str, ...] = ()
    tenant: str | None = None
    sigv4: bool = False
    sigv4_region: str | None = None
    sigv4_role_arn: str | None = None

    def settings(self, url: str) -> RemoteWriteSettings:
        """Validated settings for `url`; reads no file (the flow loads the credentials)."""
        extra = tuple(_header(t, "--remote-write-header") for t in self.headers)
        files = tuple(headers.parse_header(t, "--remote-write-header-file")
                      for t in self.header_files)
        for name, path in files:
            if not path:
                raise ConfigError(f"--remote-write-header-file: no file given for {name} "
                                  "(NAME=PATH)")
        return validate_remote_write_auth(RemoteWriteSettings(
            url=parse_remote_write_url(url),
            timeout=float(parse_duration(self.timeout, "--remote-write-timeout")),
            retries=self.retries, max_samples_per_request=self.max_samples,
            bearer_token_file=self.bearer_token_file,
            username=self.username, password_file=self.password_file, ca_file=self.ca_file,
            cert_file=self.cert_file, key_file=self.key_file,
            headers=extra, header_files=files,
            tenant=headers.parse_tenant(self.tenant) if self.tenant is not None else None,
            sigv4=self.sigv4, sigv4_region=_stripped(self.sigv4_region),
            sigv4_role_arn=_stripped(self.sigv4_role_arn),
        ))


def _header(text: str, option: str) -> tuple[str, str]:
    name, value = headers.parse_header(text, option)
    return name, headers.check_value(name, value, option)


def _stripped(text: str | None) -> str | None:
    return text.strip() if text is not None else None


@dataclass(frozen=True)
class CloudWatchOptions:
    """How hard GetMetricData may be used: `run` and `backfill` share them."""

    concurrency: int = 10
    max_tps: float = 25
    max_dps: str = "50%"

    def limits(self) -> CloudWatchLimits:
        return parse_cloudwatch_limits(self.concurrency, self.max_tps, self.max_dps)


@dataclass(frozen=True)
class KubeOptions:
    """How to reach the Kubernetes API: in-cluster, or a kubeconfig and context."""

    kubeconfig: str | None = None
    context: str | None = None


@dataclass(frozen=True)
class CheckpointOptions:
    """Where `run` keeps its checkpoints: a ConfigMap (default) or a local file."""

    configmap: str | None = None
    file: str | None = None

    def check(self) -> None:
        if self.configmap and self.file:
            raise ConfigError("--checkpoint-file: not together with --checkpoint-configmap; "
                              "choose one place for the checkpoints")
        if self.configmap:
            parse_configmap_ref(self.configmap)

    def location(self, own_namespace: str) -> CheckpointLocation:
        """The ConfigMap: as given, else the default name in the pod's namespace."""
        if self.configmap:
            return parse_configmap_ref(self.configmap)
        return CheckpointLocation(own_namespace, DEFAULT_CHECKPOINT_NAME)


@dataclass(frozen=True)
class SelectionOptions:
    """--namespace and --exclude-namespace."""

    namespaces: tuple[str, ...] = ()
    exclude_namespaces: tuple[str, ...] = ()

    def parsed(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        return parse_namespaces(self.namespaces, self.exclude_namespaces)


@dataclass(frozen=True)
class RunOptions:
    """`lbscrape run`, as given."""

    cluster: str
    region: str | None = None
    remote_write_url: str | None = None
    remote_write: RemoteWriteOptions = RemoteWriteOptions()
    checkpoint: CheckpointOptions = CheckpointOptions()
    selection: SelectionOptions = SelectionOptions()
    kube: KubeOptions = KubeOptions()
    cloudwatch: CloudWatchOptions = CloudWatchOptions()
    settle_delay: str = "2m"
    period: str = "60s"
    initial_lookback: str = "10m"
    max_catchup: str = "50m"
    checkpoint_retention: str = "7d"
    labels: tuple[str, ...] = ()
    label_from: tuple[str, ...] = ()
    events: bool = True
    self_metrics: bool = True
    deadline: str = "50s"
    metrics_config: str | None = None
    zero_fill: bool = True
    dry_run: bool = False
    log_format: str | None = None
    now: str | None = None
    shard: str | None = None
    """--shard INDEX/COUNT."""
    shards: str | None = None
    """--shards COUNT, the index from `completion_index`."""
    completion_index: str | None = None
    """JOB_COMPLETION_INDEX as the environment has it (an Indexed Job's pod)."""


@dataclass(frozen=True)
class BackfillOptions:
    """`lbscrape backfill`, as given."""

    start: str
    cluster: str
    end: str = "now"
    region: str | None = None
    profile: str | None = None
    labels: tuple[str, ...] = ()
    label_from: tuple[str, ...] = ()
    names: tuple[str, ...] = ()
    selection: SelectionOptions = SelectionOptions()
    period: str = "60s"
    settle_delay: str = "2m"
    remote_write_url: str | None = None
    remote_write: RemoteWriteOptions = RemoteWriteOptions()
    output: str | None = None
    metrics_config: str | None = None
    zero_fill: bool = True
    cloudwatch: CloudWatchOptions = CloudWatchOptions(max_dps="80%")
    state_file: str = "lbscrape-backfill.json"
    checkpoint_file: str | None = None
    resume: bool = False
    yes: bool = False
    kube: KubeOptions = KubeOptions()
    log_format: str | None = None
    now: str | None = None


@dataclass(frozen=True)
class SmokeOptions:
    cluster: str | None = None
    region: str | None = None
    labels: tuple[str, ...] = ()
    remote_write_url: str | None = None
    remote_write: RemoteWriteOptions = RemoteWriteOptions()
    checkpoint: CheckpointOptions = CheckpointOptions()
    kube: KubeOptions = KubeOptions()
    no_write: bool = False
    events: bool = True
    output: str = "table"


@dataclass(frozen=True)
class DiscoverOptions:
    cluster: str = ""
    region: str | None = None
    labels: tuple[str, ...] = ()
    label_from: tuple[str, ...] = ()
    selection: SelectionOptions = SelectionOptions()
    checkpoint: CheckpointOptions = CheckpointOptions()
    kube: KubeOptions = KubeOptions()
    output: str = "table"
    shards: str | None = None
    """--shards COUNT: show each load balancer's shard."""


@dataclass(frozen=True)
class EstimateOptions:
    cluster: str = ""
    region: str | None = None
    period: str = "60s"
    interval: str = "1m"
    metrics_config: str | None = None
    selection: SelectionOptions = SelectionOptions()
    kube: KubeOptions = KubeOptions()
    output: str = "table"
    shards: str | None = None
    """--shards COUNT: also what each shard requests."""


MixinFormat = Literal["files", "kubernetes"]
MIXIN_FORMATS: tuple[MixinFormat, ...] = ("files", "kubernetes")
"""`lbscrape mixin --format`: rule and dashboard files, or Kubernetes manifests."""
MIXIN_MANIFEST = ".lbscrape-mixin.sha256"
"""The list of what `lbscrape mixin` wrote in its --output-dir, so a rerun removes it."""


@dataclass(frozen=True)
class MixinOptions:
    """`lbscrape mixin`, as given; lbscrape.mixin.config reads and checks the files."""

    output_dir: str
    config: str | None = None
    owner: str | None = None
    fmt: str = "files"
    metrics_config: str | None = None


@dataclass(frozen=True)
class RunSettings:
    """A validated run: the config, and what the command needs beside it."""

    config: RunConfig
    deadline: int
    """Seconds the run may take."""
    now: int
    """The time the run acts at (the clock, or --now)."""


def run_settings(o: RunOptions, region: Callable[[], str],
                 own_namespace: Callable[[], str]) -> RunSettings:
    """Validate every option of `run`, then ask for the region and the pod's namespace
    (which may read the AWS and Kubernetes configuration), so bad input fails first."""
    window = validate_window(WindowSettings(
        settle_delay=parse_duration(o.settle_delay, "--settle-delay"),
        period=parse_duration(o.period, "--period"),
        initial_lookback=parse_duration(o.initial_lookback, "--initial-lookback"),
        max_catchup=parse_duration(o.max_catchup, "--max-catchup"),
    ))
    static_labels = parse_labels(o.labels)
    rules = parse_labels_from(o.label_from)
    only, never = o.selection.parsed()
    retention = parse_duration(o.checkpoint_retention, "--checkpoint-retention")
    if retention <= window.max_catchup:
        raise ConfigError("--checkpoint-retention: must be longer than --max-catchup "
                          f"({window.max_catchup}s); default 7d")
    shard = parse_shard(o.shard, o.shards, o.completion_index)
    deadline = parse_duration(o.deadline, "--deadline")
    if deadline <= 0:
        raise ConfigError("--deadline: must be positive (default 50s)")
    if not o.cluster.strip():
        raise ConfigError("--cluster: must not be empty")
    catalog = load_catalog(o.metrics_config)
    limits = o.cloudwatch.limits()
    rw = None
    if o.remote_write_url:
        rw = o.remote_write.settings(o.remote_write_url)
    elif not o.dry_run:
        raise ConfigError("--remote-write-url: required unless --dry-run "
                          "(or set LBSCRAPE_REMOTE_WRITE_URL)")
    o.checkpoint.check()
    at = parse_now(o.now)
    location = o.checkpoint.location(own_namespace())
    cfg = RunConfig(
        cluster=o.cluster.strip(), region=region(), window=window,
        remote_write=rw, dry_run=o.dry_run, static_labels=static_labels,
        checkpoint_retention=retention, checkpoint_file=o.checkpoint.file,
        checkpoint=location,
        catalog=catalog, zero_fill=o.zero_fill,
        namespaces=only, exclude_namespaces=never, label_from=rules, events=o.events,
        cloudwatch=limits,
        shard=shard,
        self_metrics=o.self_metrics,
    )
    return RunSettings(cfg, deadline, at)


@dataclass(frozen=True)
class BackfillSettings:
    """A validated backfill, before anything is contacted."""

    now: int
    period: int
    settle_delay: int
    catalog: Catalog
    static_labels: tuple[tuple[str, str], ...]
    label_from: tuple[LabelFrom, ...]
    remote_write: RemoteWriteSettings | None
    """None when writing a file (--output)."""
    destination: str
    """'file PATH' or 'remote-write URL' (redacted): a resume must write to the same."""
    cloudwatch: CloudWatchLimits = CloudWatchLimits()


def backfill_settings(o: BackfillOptions) -> BackfillSettings:
    period = parse_duration(o.period, "--period")
    settle = parse_duration(o.settle_delay, "--settle-delay")
    # Only the period and settle rules apply: a backfill has no lookback or catch-up.
    validate_window(WindowSettings(settle, period, period, period))
    static = parse_labels(o.labels)
    rules = parse_labels_from(o.label_from)
    catalog = load_catalog(o.metrics_config)
    limits = o.cloudwatch.limits()
    rw = o.remote_write.settings(o.remote_write_url) if o.remote_write_url else None
    if (rw is None) == (o.output is None):
        raise ConfigError("--output: give either --remote-write-url or --output FILE "
                          "(OpenMetrics for promtool)")
    destination = f"file {o.output}" if o.output else \
        f"remote-write {redact_url(rw.url) if rw else ''}"
    return BackfillSettings(parse_now(o.now), period, settle, catalog, static, rules, rw,
                            destination, limits)


@dataclass(frozen=True)
class SmokeSettings:
    """A validated smoke test; remote_write is None with --no-write."""

    cluster: str
    static_labels: tuple[tuple[str, str], ...]
    remote_write: RemoteWriteSettings | None


def smoke_settings(o: SmokeOptions) -> SmokeSettings:
    static = parse_labels(o.labels)
    rw = None
    if not o.no_write:
        if not (o.cluster or "").strip():
            raise ConfigError("--cluster: required unless --no-write (or set "
                              "LBSCRAPE_CLUSTER)")
        if not o.remote_write_url:
            raise ConfigError("--remote-write-url: required unless --no-write (or set "
                              "LBSCRAPE_REMOTE_WRITE_URL)")
        rw = o.remote_write.settings(o.remote_write_url)
    o.checkpoint.check()
    return SmokeSettings((o.cluster or "").strip(), static, rw)


@dataclass(frozen=True)
class EstimateSettings:
    period: int
    interval: int
    """Seconds between runs (the CronJob's schedule)."""
    catalog: Catalog
    namespaces: tuple[str, ...]
    exclude_namespaces: tuple[str, ...]
    shards: int | None = None
    """--shards: also what each of this many shards requests."""


def estimate_settings(o: EstimateOptions) -> EstimateSettings:
    period = parse_duration(o.period, "--period")
    interval = parse_duration(o.interval, "--interval")
    if period <= 0 or period % 60:
        raise ConfigError(f"--period: {period}s is not a positive multiple of 60s")
    if interval <= 0:
        raise ConfigError("--interval: must be positive")
    catalog = load_catalog(o.metrics_config)
    return EstimateSettings(period, interval, catalog, *o.selection.parsed(),
                            shards=parse_count(o.shards))


def parse_to(to: str | None, now: int) -> int | None:
    """checkpoint reset --to: a time, or a time ago (-30m), on a minute boundary; None:
    forget the checkpoint."""
    if to is None:
        return None
    at = now - parse_duration(to[1:], "--to") if to.startswith("-") else parse_time(to, "--to")
    return at // 60 * 60


def load_catalog(path: str | None) -> Catalog:
    """The default catalog, or the one --metrics-config tailors."""
    if not path:
        return DEFAULT
    from lbscrape.core import metrics_config  # PyYAML: only when a file is given

    return metrics_config.load(path)


def parse_time(text: str, option: str) -> int:
    """RFC 3339 or epoch seconds -> epoch seconds."""
    try:
        return int(text) if text.isdigit() else parse_isotime(text)
    except ValueError as e:
        raise ConfigError(f"{option}: cannot read time {text!r}: use RFC 3339 "
                          "(2026-11-23T10:00:00Z), epoch seconds or -30m") from e


def parse_now(text: str | None) -> int:
    """--now: a time in the past to act at (tests, demos); never later than the clock."""
    clock = int(time.time())
    return min(parse_time(text, "--now"), clock) if text else clock
