"""What `lbscrape backfill` does: plan (or resume), confirm, fetch and write, hand over."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError

from lbscrape.aws import session as aws
from lbscrape.aws.resolve import explain, find, find_target_groups
from lbscrape.core import logs
from lbscrape.core.catalog import DIMENSION_SETS
from lbscrape.core.checkpoint import FileStore
from lbscrape.core.console import Console, fail
from lbscrape.core.errors import ConfigError, ExitStatus, LbscrapeError
from lbscrape.core.model import LoadBalancer, isotime
from lbscrape.core.options import BackfillOptions, BackfillSettings, backfill_settings
from lbscrape.flows import endpoint
from lbscrape.flows.backfill.loop import Progress, run
from lbscrape.flows.backfill.plan import (
    Plan,
    check_still_kept,
    describe,
    make_plan,
    parse_when,
    plan_range,
    targets_of,
)
from lbscrape.flows.backfill.sinks import OpenMetricsSink, RemoteWriteSink, Sink
from lbscrape.flows.backfill.state import State, StateFile, carry_checkpoint
from lbscrape.kube import discovery, owner_labels
from lbscrape.kube.client import make_api_client
from lbscrape.prom import remote_write
from lbscrape.prom.series import lb_labels

log = logging.getLogger("lbscrape")


@dataclass
class _Prepared:
    plan: Plan
    state: State
    session: Any
    writer: remote_write.Client | None


def execute(o: BackfillOptions, console: Console,
            progress: Callable[[int, int], Any]) -> int:
    """`progress(total, done)` makes the context manager that shows progress."""
    logs.setup(o.log_format)
    store = StateFile(o.state_file)
    try:
        p = _prepare(o, store)
    except (LbscrapeError, BotoCoreError) as e:
        return fail(console, e)
    for line in describe(p.plan):
        console.out(line)
    total, done = len(p.plan.calls), len(p.state.done)
    if o.resume:
        console.out(f"resuming: {done} of {total} calls already written, "
                    f"{p.state.samples_written:,} samples")
    if total - done and not o.yes and sys.stdin.isatty() and not console.confirm("Start?"):
        return ExitStatus.ERROR
    try:
        sink = _sink(o, p)
        store.save(p.state)
    except (LbscrapeError, BotoCoreError) as e:
        return fail(console, e)
    return _write(o, p, store, sink, console, progress(total, done))


def _sink(o: BackfillOptions, p: _Prepared) -> Sink:
    """The remote-write endpoint, or else the --output file (settings require one)."""
    if p.writer is not None:
        return RemoteWriteSink(p.writer)
    return OpenMetricsSink(o.output or "", p.state, o.resume)


def _prepare(o: BackfillOptions, store: StateFile) -> _Prepared:
    """Validate the options and plan the calls, or load the state to resume."""
    b = backfill_settings(o)
    rw = b.remote_write
    credentials = remote_write.load_credentials(rw) if rw else None
    session = aws.session(o.region, o.profile)
    # Before discovery: a role that cannot be assumed stops the backfill before it plans.
    client = endpoint.client(rw, session, credentials) if rw and credentials else None
    if o.resume:
        state = store.load()
        if state.output != b.destination:
            raise ConfigError(f"--resume: {o.state_file} was writing to {state.output}, not "
                              f"{b.destination}; pass the same destination")
    else:
        if store.exists():
            store.load()  # a file that is no backfill state says so
            raise ConfigError(f"--state-file: {o.state_file} holds an unfinished backfill; "
                              "pass --resume to carry on, or delete it to start over")
        window = plan_range(parse_when(o.start, b.now, "--start"),
                            parse_when(o.end, b.now, "--end"), b.period, b.settle_delay, b.now)
        state = State(window, _targets(o, b, session), b.destination)
    plan = make_plan(state.window, state.targets)
    if o.resume:
        check_still_kept(plan, state.done, b.now)
    return _Prepared(plan, state, session, client)


def _targets(o: BackfillOptions, b: BackfillSettings, session: Any) -> tuple[Any, ...]:
    """Discover and resolve as `run` does, and label the same way; opted-out load
    balancers are left out."""
    catalog, static, rules = b.catalog, b.static_labels, b.label_from
    kube, _ = make_api_client(o.kube.kubeconfig, o.kube.context)
    owners = discovery.discover(kube)
    elbv2 = aws.client(session, "elbv2")
    res = find(owners, elbv2, aws.client(session, "elb"), o.cluster.strip())
    selection = owner_labels.Selection.of(*o.selection.parsed())
    chosen = owner_labels.plan(owners, res.load_balancers, res.unresolved, selection, rules)
    for u in chosen.unresolved:
        log.warning("%s: %s; not backfilled", u.owner, explain(u, session.region_name))
    for p in chosen.problems:
        log.warning("%s", p)
    lbs = find_target_groups(select(chosen.load_balancers, o.names, o.selection.namespaces),
                             elbv2, lambda: discovery.target_group_bindings(kube),
                             catalog.has_target_groups)
    if o.zero_fill:
        for t in sorted({lb.type for lb in lbs}):
            for dims in DIMENSION_SETS:
                if reason := catalog.no_fill_reason(t, dims):
                    log.warning("%s", reason)
    return tuple(t for lb in lbs for t in targets_of(
        lb, catalog, lb_labels(lb, o.cluster.strip(), session.region_name,
                               (*static, *chosen.extra_labels(lb))), o.zero_fill))


def select(lbs: Sequence[LoadBalancer], names: Sequence[str], namespaces: Sequence[str]
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


def _write(o: BackfillOptions, p: _Prepared, store: StateFile, sink: Sink, console: Console,
           progress: Any) -> int:
    state, total = p.state, len(p.plan.calls)
    try:
        with progress as report:
            outcome = run(p.plan, state, store, aws.client(p.session, "cloudwatch"), sink,
                          report)
    except KeyboardInterrupt:
        console.err(f"lbscrape: interrupted after {len(state.done)} of {total} calls; "
                    f"carry on with the same command and --resume")
        return 130
    except (LbscrapeError, BotoCoreError) as e:
        console.err(f"lbscrape: error: {e}")
        console.err(f"lbscrape: {len(state.done)} of {total} calls written; carry on "
                    "with the same command and --resume")
        return ExitStatus.ERROR
    finally:
        sink.close()
    done = len(state.done) == total
    log.info("backfill %s: calls_written=%d/%d gmd_calls=%d metrics_requested=%d "
             "samples_written=%d samples_rejected=%d samples_zero_filled=%d",
             "finished" if done else "incomplete", len(state.done), total,
             outcome.gmd_calls, outcome.metrics_requested, state.samples_written,
             state.samples_rejected, outcome.samples_zero_filled)
    if not done:
        console.err(f"lbscrape: {len(outcome.failed)} calls could not be fetched; run the "
                    "same command with --resume to retry them")
        return ExitStatus.PARTIAL
    return _finish(o, state, store, console)


def _finish(o: BackfillOptions, state: State, store: StateFile, console: Console) -> int:
    if o.checkpoint_file:
        try:
            moved = carry_checkpoint(FileStore(o.checkpoint_file), state)
        except LbscrapeError as e:
            return fail(console, e)
        console.out(f"checkpoint file {o.checkpoint_file}: {moved} load balancers continue "
                    f"from {isotime(state.window.end)}")
    store.remove()
    if o.output:
        console.out(f"wrote {o.output}; load it with: promtool tsdb create-blocks-from "
                    f"openmetrics {o.output} <prometheus data dir>")
    return ExitStatus.PARTIAL if state.samples_rejected else ExitStatus.OK


__all__ = ["BackfillOptions", "Progress", "execute", "select"]
