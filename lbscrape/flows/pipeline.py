"""One scrape cycle: discover -> resolve -> window -> fetch -> write -> checkpoint.

The only module that knows the order of the stages. Clients are built elsewhere and
passed in; time is passed in as `now`.
"""

from __future__ import annotations

import logging
import shlex
import time
from collections import Counter, defaultdict
from collections.abc import (
    Callable,
    Container,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
)
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from kubernetes import client as k8s

from lbscrape import __version__
from lbscrape.aws import cloudwatch, fetcher
from lbscrape.aws.resolve import (
    ElbClient,
    describe_target_groups,
    explain,
    find,
    find_target_groups,
)
from lbscrape.core.background import background
from lbscrape.core.budget import Abandoned, Budget, Phase
from lbscrape.core.catalog import DIMENSION_SETS, KINDS, Catalog, DimensionSet
from lbscrape.core.checkpoint import Checkpoint
from lbscrape.core.config import RunConfig
from lbscrape.core.errors import CheckpointError, ExitStatus, LbscrapeError
from lbscrape.core.model import LbType, LoadBalancer, MetricSpec, Sample, Series, Window, isotime
from lbscrape.core.window import WindowPlan, plan_window
from lbscrape.flows.fetching import Fetching
from lbscrape.kube import events, owner_labels
from lbscrape.kube.discovery import discover, target_group_bindings
from lbscrape.prom import delivery, remote_write, self_metrics
from lbscrape.prom.series import (
    build_series,
    exposition,
    lb_labels,
    selector,
    tg_labels,
    zero_fill,
)

log = logging.getLogger(__name__)

# Above this, the backfill command of a gap names no load balancer and fills them all.
MAX_NAMES_IN_COMMAND = 20


class CheckpointStore(Protocol):
    def load(self) -> Checkpoint: ...
    def save(self, base: Checkpoint, updates: dict[str, int], expire_before: int | None = None,
             keep: Container[str] = ()) -> Checkpoint: ...


@dataclass
class Clients:
    kube: k8s.ApiClient
    elbv2: ElbClient
    elb: ElbClient  # classic; called only when a Service expects a classic ELB
    cloudwatch: cloudwatch.CloudWatchClient
    store: CheckpointStore
    writer: remote_write.Client | None  # None with --dry-run
    events: events.Recorder | None = None  # None with --dry-run or --no-events


@dataclass
class RunResult:
    counters: Counter[str] = field(default_factory=Counter)
    failed: dict[str, str] = field(default_factory=dict)
    """load balancer name -> reason it was not (fully) written."""
    notices: list[events.Notice] = field(default_factory=list)
    """Warning Events to record on owners."""
    freshness: dict[str, self_metrics.Freshness] = field(default_factory=dict)
    """load balancer key -> its labels and checkpoint, for its lag series."""
    rejected: Counter[str] = field(default_factory=Counter)
    """the endpoint's answer -> data samples it refused with it."""
    self_metrics_error: str | None = None
    """Why the run's own series were not written."""

    @property
    def status(self) -> ExitStatus:
        if self.failed:
            return ExitStatus.PARTIAL if self.counters["lbs_written"] else ExitStatus.ERROR
        # Nothing else failed, but the run's own series were not written: a failure too.
        return ExitStatus.ERROR if self.self_metrics_error else ExitStatus.OK


def run(cfg: RunConfig, clients: Clients, now: int,
        emit: Callable[[str], Any] = print, budget: Budget | None = None) -> RunResult:
    """One cycle. Always ends with one summary log line, also when a stage raises."""
    started = time.monotonic()
    result = RunResult()
    try:
        try:
            _run(cfg, clients, now, emit, budget, result)
        except Abandoned as e:  # before anything was written (the later stages catch it)
            raise LbscrapeError(f"abandoned: {e}; nothing was written") from None
    except Exception as e:
        _record_events(clients, result, now, budget)  # what owners should know still holds
        # flows.run exits 1 for an aborted run (and Python does for anything unexpected).
        _publish(cfg, clients, result, now, started, emit, ExitStatus.ERROR)
        _summary(result, started, dry_run=cfg.dry_run, error=e)
        raise
    _record_events(clients, result, now, budget)
    _publish(cfg, clients, result, now, started, emit, result.status)
    _summary(result, started, dry_run=cfg.dry_run)
    return result


def _run(cfg: RunConfig, clients: Clients, now: int, emit: Callable[[str], Any],
         budget: Budget | None, result: RunResult) -> None:
    """The stages, in order."""
    lbs, chosen = _discover(cfg, clients, result)
    labels = {lb.key: lb_labels(lb, cfg.cluster, cfg.region,
                                (*cfg.static_labels, *chosen.extra_labels(lb)))  # later win
              for lb in lbs}
    checkpoint = clients.store.load()
    plans = _plan_windows(cfg, lbs, checkpoint, now)
    # A load balancer without a checkpoint is complete up to where its window starts.
    result.freshness = {lb.key: self_metrics.Freshness(
        labels[lb.key], checkpoint.ends.get(lb.key, plans[lb.key].window.start)) for lb in lbs}
    calls = cloudwatch.plan_calls(
        cloudwatch.fetch_targets(lbs, cfg.catalog, {k: p.window for k, p in plans.items()}))
    # Fetch and write overlap: the calls run concurrently, and each load balancer is
    # written as soon as the last call carrying its queries is in.
    stream = Fetching(clients.cloudwatch, lbs, calls, cfg.cloudwatch, budget, result.counters,
                      result.failed)
    zeros: dict[str, self_metrics.Zeros] = defaultdict(dict)
    batches = _batches(cfg, lbs, labels, plans, stream, result, zeros)
    if cfg.dry_run or clients.writer is None:
        for b in batches:
            for s in b.series:
                for line in exposition(s):
                    emit(line)
            result.counters["samples_would_write"] += delivery.count(b.series)
        stream.fail_the_rest(lbs, lambda lb: lb.key in stream.seen)
        stream.raise_error()
        return
    outcome = _write(clients.writer, batches, result)
    stream.close()  # delivery may have stopped early (the endpoint failed): fetch no more
    _enter(budget, "finish")  # what was written is checkpointed, even past the end
    result.counters["zeros_written"] = self_metrics.zeros_written(
        zeros, outcome.through, ((r.labels, r.timestamp_ms) for r in outcome.rejected))
    try:
        _store_checkpoints(cfg, clients.store, checkpoint, lbs, plans, outcome, now, result)
    except Abandoned as e:
        raise CheckpointError(f"checkpoints not stored, abandoned: {e}; the next run "
                              "repeats what this one wrote") from None
    stream.fail_the_rest(lbs, lambda lb: outcome.through.get(lb.key) == plans[lb.key].window.end)
    stream.raise_error()


def _discover(cfg: RunConfig, clients: Clients, result: RunResult
              ) -> tuple[list[LoadBalancer], owner_labels.OwnerPlan]:
    """Owners -> their load balancers (and target groups), with what to warn about."""
    # The region's target groups and their bindings are listed while the owners are
    # found: at thousands of them, their pages are the longest wait before fetching.
    tgs = any(cfg.catalog.has_target_groups(t) for t in KINDS if t != "classic")
    listing = background(describe_target_groups, clients.elbv2) if tgs else None
    bound = background(target_group_bindings, clients.kube) if tgs else None
    owners = discover(clients.kube)
    resolution = find(owners, clients.elbv2, clients.elb, cfg.cluster)
    chosen = owner_labels.plan(
        owners, resolution.load_balancers, resolution.unresolved,
        owner_labels.Selection.of(cfg.namespaces, cfg.exclude_namespaces), cfg.label_from)
    if cfg.shard is not None:  # every shard discovers everything, then keeps its share
        everything = chosen.load_balancers
        chosen = chosen.for_shard(cfg.shard)
        result.counters["lbs_other_shards"] = len(everything) - len(chosen.load_balancers)
    # Only for the scraped load balancers, and only if the catalog wants target groups.
    lbs = find_target_groups(
        chosen.load_balancers, clients.elbv2,
        bound.result if bound else lambda: target_group_bindings(clients.kube),
        cfg.catalog.has_target_groups, listing.result if listing else None)
    hostnames = {h.lower().rstrip(".") for o in chosen.selected for h in o.hostnames}
    result.counters.update(
        owners=len(chosen.selected), owners_skipped=len(chosen.skipped),
        lbs_found=len(hostnames), lbs_resolved=len(lbs), unresolved=len(chosen.unresolved),
        owners_unresolved=len({u.owner for u in chosen.unresolved}),
        target_groups=sum(len(lb.target_groups) for lb in lbs))
    for o, why in chosen.skipped:
        log.debug("%s: %s; skipped", o, why)
    for u in chosen.unresolved:
        log.warning("%s: %s; skipped this run", u.owner, explain(u, cfg.region))
    for p in chosen.problems:
        log.warning("%s", p)
    result.notices = events.gather(
        [(u.owner, events.LOAD_BALANCER_NOT_FOUND, explain(u, cfg.region))
         for u in chosen.unresolved] + [(p.owner, p.reason, p.text) for p in chosen.problems])
    return list(lbs), chosen


def _plan_windows(cfg: RunConfig, lbs: Sequence[LoadBalancer], checkpoint: Checkpoint,
                  now: int) -> dict[str, WindowPlan]:
    plans = {lb.key: plan_window(now, checkpoint.ends.get(lb.key), cfg.window) for lb in lbs}
    for lb in lbs:
        _warn_realigned(lb, plans[lb.key])
    _warn_gaps(lbs, plans, cfg)
    if cfg.zero_fill:
        _warn_no_traffic_metric(cfg.catalog, {lb.type for lb in lbs})
    return plans


def _batches(cfg: RunConfig, lbs: Sequence[LoadBalancer], labels: Mapping[str, dict[str, str]],
             plans: Mapping[str, WindowPlan], fetched: Iterable[fetcher.LbData],
             result: RunResult, zeros: dict[str, self_metrics.Zeros]
             ) -> Iterator[delivery.LbBatch]:
    """Per fetched load balancer, as its data comes in, its series and its target
    groups', labelled and zero-filled (the zeros added noted in `zeros`); one whose fetch
    failed has none (and is failed)."""
    wall_now_ms = int(time.time() * 1000)
    by_key = {lb.key: lb for lb in lbs}
    for got in fetched:
        lb = by_key[got.lb_key]
        # A failed target-group query fails the load balancer: its checkpoint covers both.
        if got.failed is not None:
            result.failed[lb.name] = got.failed
            continue
        base = labels[lb.key]
        tg: DimensionSet = "target_group"
        sets: list[tuple[Mapping[MetricSpec, list[Sample]], dict[str, str], DimensionSet]] = [
            (got.samples, base, "load_balancer")]
        sets += [(got.tg_samples.get(g.dimension, {}), tg_labels(base, g), tg)
                 for g in lb.target_groups]
        series = []
        for data, set_labels, dims in sets:
            if cfg.zero_fill:
                # Only here, after the failed ones are skipped: a zero needs a complete
                # fetch. Each set from its own traffic metric (Catalog.fill_plan).
                filled, n = zero_fill(data, cfg.catalog.fill_plan(lb.type, dims))
                result.counters["samples_zero_filled"] += n
                zeros[lb.key].update(self_metrics.zero_times(data, filled, set_labels))
                data = filled
            series += build_series(data, set_labels)
        yield delivery.LbBatch(lb.key, tuple(_drop_future(series, wall_now_ms)),
                               plans[lb.key].window.end)


def _enter(budget: Budget | None, phase: Phase) -> None:
    if budget is not None:
        budget.enter(phase)


def _write(writer: remote_write.Client, batches: Iterable[delivery.LbBatch],
           result: RunResult) -> delivery.Delivery:
    outcome = delivery.deliver(
        writer, delivery.iter_requests(batches, writer.settings.max_samples_per_request))
    result.counters.update(samples_written=outcome.samples_written,
                           samples_rejected=len(outcome.rejected),
                           remote_write_requests=writer.requests)
    result.rejected.update(r.reason for r in outcome.rejected)
    _report_rejected(outcome.rejected)
    return outcome


def _store_checkpoints(cfg: RunConfig, store: CheckpointStore, checkpoint: Checkpoint,
                       lbs: Sequence[LoadBalancer], plans: Mapping[str, WindowPlan],
                       outcome: delivery.Delivery, now: int, result: RunResult) -> None:
    """Move each load balancer's checkpoint to what the endpoint accepted, and forget
    the ones not seen for longer than --checkpoint-retention."""
    by_key = {lb.key: lb for lb in lbs}
    updates = {}
    for key, through in outcome.through.items():
        if through > checkpoint.ends.get(key, through - 1):
            updates[key] = through
        if through == plans[key].window.end and key not in outcome.failed:
            result.counters["lbs_written"] += 1
    for key, reason in outcome.failed.items():
        result.failed[by_key[key].name] = reason
    expire_before = now - cfg.checkpoint_retention
    present = {lb.key for lb in lbs}
    keep = present if cfg.shard is None else cfg.shard.keep(present)
    expired = [k for k, end in checkpoint.ends.items() if end < expire_before and k not in keep]
    if updates or expired:
        store.save(checkpoint, updates, expire_before=expire_before, keep=keep)
        if expired:
            log.info("forgot the checkpoints of %d load balancers not seen for longer than "
                     "--checkpoint-retention", len(expired))
    for key, through in updates.items():  # only once stored: the lag is the stored one's
        result.freshness[key] = replace(result.freshness[key], checkpoint=through)


def _warn_no_traffic_metric(catalog: Catalog, types: set[LbType]) -> None:
    """Once per type in this run: zero-fill needs the traffic metric, and never guesses."""
    for t in sorted(types):
        for dims in DIMENSION_SETS:
            reason = catalog.no_fill_reason(t, dims)
            if reason:
                log.warning("%s", reason)


def _warn_gaps(lbs: Sequence[LoadBalancer], plans: Mapping[str, WindowPlan],
               cfg: RunConfig) -> None:
    """One line per gap (from, to, which load balancers, the command that fills it),
    not one per load balancer."""
    gaps: dict[Window, list[str]] = defaultdict(list)
    for lb in lbs:
        skipped = plans[lb.key].skipped
        if skipped:
            gaps[skipped].append(lb.name)
    for gap, names in sorted(gaps.items(), key=lambda kv: kv[0].start):
        log.warning(
            "checkpoint older than --max-catchup: skipping %s..%s (%d minutes left as a gap "
            "that this job will not fill) for %d load balancers: %s; fill it with: %s",
            isotime(gap.start), isotime(gap.end), (gap.end - gap.start) // 60, len(names),
            ", ".join(sorted(names)), backfill_command(gap, sorted(names), cfg))


def backfill_command(gap: Window, names: Sequence[str], cfg: RunConfig) -> str:
    """The `lbscrape backfill` that writes exactly the series this run would have: the
    same labels, catalog, zero-fill and owner selection."""
    args = ["lbscrape", "backfill", "--cluster", cfg.cluster, "--region", cfg.region,
            "--start", isotime(gap.start), "--end", isotime(gap.end)]
    if gap.period != 60:
        args += ["--period", f"{gap.period}s"]
    for k, v in cfg.static_labels:
        args += ["--label", f"{k}={v}"]
    for rule in cfg.label_from:
        args += ["--label-from", str(rule)]
    for ns in cfg.namespaces:
        args += ["--namespace", ns]
    for ns in cfg.exclude_namespaces:
        args += ["--exclude-namespace", ns]
    # The same catalog (the path is the job's: copy the file) and zero-fill.
    if cfg.catalog.source:
        args += ["--metrics-config", cfg.catalog.source]
    if not cfg.zero_fill:
        args += ["--no-zero-fill"]
    if len(names) <= MAX_NAMES_IN_COMMAND:
        for name in names:
            args += ["--load-balancer", name]
    return shlex.join([*args, "--remote-write-url", "URL"]) + \
        " (an endpoint that accepts older samples: see the README on backfill)"


def _publish(cfg: RunConfig, clients: Clients, result: RunResult, now: int, started: float,
             emit: Callable[[str], Any], code: ExitStatus) -> None:
    """lbscrape's own series, the last thing a run sends (a dry run prints them). They
    say `code`, the exit code as it stands; if they cannot be written the run fails
    (result.status), which a stored sample cannot say: nothing of it was stored. Never
    touches a checkpoint; never raises for the endpoint.

    Stamped by the clock, so that runs never go back in time, not even tests repeating
    one --now; the lags are measured in the time the run acts at, as its windows are."""
    if not cfg.self_metrics:
        return
    duration = time.monotonic() - started
    c = result.counters
    series = self_metrics.build(self_metrics.RunReport(
        labels={**dict(cfg.static_labels), "cluster": cfg.cluster, "region": cfg.region,
                # Shards run at once: each its own series (its load balancers' lags are).
                **({"shard": str(cfg.shard)} if cfg.shard else {})},
        timestamp_ms=round(time.time() * 1000), end=now + duration, exit_code=int(code),
        duration=duration, version=__version__,
        load_balancers={"found": c["lbs_resolved"], "written": c["lbs_written"],
                        "failed": len(result.failed)},
        owners_unresolved=c["owners_unresolved"], samples_written=c["samples_written"],
        rejected=result.rejected, samples_zero_filled=c["zeros_written"],
        getmetricdata_calls=c["gmd_calls"], cloudwatch_metrics_requested=c["metrics_requested"],
        freshness=tuple(result.freshness.values())))
    if cfg.dry_run or clients.writer is None:
        for s in series:
            for line in exposition(s):
                emit(line)
        return
    step = clients.writer.settings.max_samples_per_request  # one sample per series
    try:
        for i in range(0, len(series), step):
            clients.writer.post(remote_write.encode(series[i:i + step]))
    except (LbscrapeError, Abandoned) as e:  # Abandoned: the deadline or SIGTERM's grace
        result.self_metrics_error = f"abandoned: {e}" if isinstance(e, Abandoned) else str(e)
        log.warning("lbscrape's own series (lbscrape_run_*) not written: %s; the run exits "
                    "non-zero (its data and checkpoints are not affected)",
                    result.self_metrics_error)


def _record_events(clients: Clients, result: RunResult, now: int,
                   budget: Budget | None) -> None:
    """After the metrics: they matter more than the Events. Never raises."""
    if clients.events is None or not result.notices:
        return
    try:
        outcome = clients.events.record(result.notices, now, budget)
    except (Exception, Abandoned) as e:  # an Event is never worth failing the run
        log.warning("recording Kubernetes Events failed: %s", e)
        return
    result.counters.update(events_recorded=outcome.recorded)


def _warn_realigned(lb: LoadBalancer, plan: WindowPlan) -> None:
    if plan.realigned_from is not None:
        log.warning("load balancer %s: checkpoint %s is not on a %ds period boundary "
                    "(the period changed?); continuing from %s", lb.name,
                    isotime(plan.realigned_from), plan.window.period, isotime(plan.window.start))


def _drop_future(series: list[Series], wall_now_ms: int) -> list[Series]:
    """A sample stamped in the future moves a live Prometheus's head ahead and makes it
    reject everything after it; the window rules exclude them, this is the last guard."""
    out = []
    for s in series:
        if s.samples[-1].timestamp_ms <= wall_now_ms:  # in time order: the usual case
            out.append(s)
            continue
        kept = tuple(x for x in s.samples if x.timestamp_ms <= wall_now_ms)
        if len(kept) != len(s.samples):
            log.warning("dropped %d samples of %s stamped in the future",
                        len(s.samples) - len(kept), selector(s.labels))
        if kept:
            out.append(Series(s.labels, kept))
    return out


def _report_rejected(rejected: list[delivery.Rejected]) -> None:
    """One line per load balancer and reason, not one per sample."""
    groups: dict[tuple[str, str], list[delivery.Rejected]] = defaultdict(list)
    for r in rejected:
        groups[(dict(r.labels).get("load_balancer_name", "?"), r.reason)].append(r)
    for (name, reason), rs in sorted(groups.items()):
        ts = sorted(r.timestamp_ms // 1000 for r in rs)
        log.warning(
            "remote write refused %d samples of load balancer %s (%d series, %s..%s): %s; "
            "e.g. %s%s", len(rs), name, len({r.labels for r in rs}), isotime(ts[0]),
            isotime(ts[-1]), reason, selector(rs[0].labels),
            " (the series already holds later samples: written by an interrupted run, or "
            "by another writer)" if remote_write.is_stale_reason(reason) else "")


def _summary(result: RunResult, started: float, *, dry_run: bool,
             error: BaseException | None = None) -> None:
    c = result.counters
    keys = ["owners", "lbs_found", "lbs_resolved", "unresolved", "lbs_written", "gmd_calls",
            "metrics_requested", "samples_written", "samples_rejected", "remote_write_requests",
            "samples_zero_filled", "owners_skipped", "events_recorded", "target_groups",
            "lbs_other_shards"]
    if dry_run:
        keys = [k for k in keys if k not in ("lbs_written", "samples_written", "samples_rejected",
                                              "remote_write_requests", "events_recorded")
                ] + ["samples_would_write"]
    stats = " ".join(f"{k}={c[k]}" for k in keys)
    duration = f"duration={time.monotonic() - started:.2f}s"
    if error is not None:
        log.error("run aborted %s %s: %s", stats, duration, error)
    elif result.failed:
        failed = "; ".join(f"{name}: {why}" for name, why in sorted(result.failed.items()))
        log.error("run %s %s lbs_failed=%d %s failed: %s",
                  "finished (dry run)" if dry_run else "finished", stats, len(result.failed),
                  duration, failed)
    else:
        log.info("run %s %s lbs_failed=0 %s",
                 "finished (dry run)" if dry_run else "finished", stats, duration)
