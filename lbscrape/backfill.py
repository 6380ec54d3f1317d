"""`lbscrape backfill`: fill a past range once, from a laptop, resumably.

Planning is pure: which range CloudWatch still holds at the chosen period, and the
GetMetricData calls that request every (load balancer, metric, statistic) once. The
loop then takes one call at a time (fetch, write, record it in a local state file), so
memory is bounded by one call (at most 100,800 datapoints) however long the range is,
and an interrupted backfill carries on at the first unfinished request. It never reads
or moves the CronJob's checkpoint.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import IO, Any, Protocol

from lbscrape import cloudwatch, remote_write
from lbscrape.catalog import KINDS, Catalog, FillPlan
from lbscrape.checkpoint import FileStore
from lbscrape.config import parse_duration
from lbscrape.costing import PRICE_PER_1000
from lbscrape.errors import ConfigError, LbscrapeError, RemoteWriteError
from lbscrape.model import (
    Labels,
    LoadBalancer,
    MetricSpec,
    Sample,
    Series,
    Window,
    isotime,
    parse_isotime,
)
from lbscrape.series import build_series, selector, target_dimensions, tg_labels, zero_fill

log = logging.getLogger(__name__)

DAY = 86400
# GetMetricData's rule: a start less than 15 days ago takes any multiple of 60 s, up to
# 63 days ago a multiple of 300 s, up to 455 days ago a multiple of 3600 s.
RETENTION = ((60, 15 * DAY), (300, 63 * DAY), (3600, 455 * DAY))
TG_KEY_SEPARATOR = "|"  # a target group's target key: "<load balancer key>|<TargetGroup>"
STATE_FORMAT = 2  # 2: partial progress counted in samples
# Refusals that mean "older than this TSDB takes", not "this sample is wrong": every
# later sample of the backfill would get the same answer, so stop and say what to change.
TOO_OLD_REASONS = ("out of bounds", "out of order sample", "too old sample",
                   "sample-timestamp-too-old", "sample-out-of-order", "sample too old",
                   "sample timestamp out of order")
OOO_ADVICE = (
    "the endpoint refused samples as older than it accepts: a live TSDB takes samples "
    "up to about 1h older than its newest only; set storage.tsdb.out_of_order_time_window "
    "(Prometheus >= 2.39) or out_of_order_time_window (Mimir) to cover the range and carry "
    "on with --resume, or write a file with --output and load it with "
    "'promtool tsdb create-blocks-from openmetrics'"
)


class BackfillStopped(LbscrapeError):
    """Nothing more can be written now; the state file says where to carry on."""


# --- times and range ------------------------------------------------------------------

_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def parse_when(text: str, now: int, option: str) -> int:
    """'2026-11-01T06:00:00Z', '2026-11-01' (UTC midnight), epoch seconds, 'now' or a
    time ago ('-6h', '-2d12h') -> seconds since the epoch."""
    t = text.strip()
    try:
        if t == "now":
            return now
        if t.startswith("-"):
            return now - parse_duration(t[1:], option)
        if t.isdigit():
            return int(t)
        if _DATE.fullmatch(t):
            return int(datetime.fromisoformat(t).replace(tzinfo=UTC).timestamp())
        return parse_isotime(t)
    except (ConfigError, ValueError):
        raise ConfigError(
            f"{option}: cannot read time {text!r}; use RFC 3339 (2026-11-01T06:00:00Z), a "
            "date (2026-11-01, midnight UTC), epoch seconds, or a time ago (-6h, -2d)"
        ) from None


def kept_for(period: int) -> int:
    """How far back GetMetricData serves data at this period."""
    return max(k for p, k in RETENTION if period % p == 0)


def plan_range(start: int, end: int, period: int, settle_delay: int, now: int) -> Window:
    """The whole periods to backfill: from start (rounded down to a period) to end,
    clamped so that every period ended at least settle_delay ago. Raises ConfigError
    for an empty range or one older than CloudWatch keeps at this period."""
    settled = (now - settle_delay) // period * period
    s = start // period * period
    e = min(end, settled) // period * period
    if e <= s:
        raise ConfigError(
            f"--start/--end: {isotime(start)}..{isotime(end)} holds no settled {period}s "
            f"period (nothing ends before {isotime(settled)}, now minus the settle delay)")
    kept = kept_for(period)
    if s < now - kept:
        better = [p for p, k in RETENTION if p > period and s >= now - k]
        where = f"CloudWatch keeps {period}s-period data for {kept // DAY} days"
        if better:
            p = better[0]
            unit = f"{p // 3600}h" if p % 3600 == 0 else f"{p // 60}m"
            raise ConfigError(
                f"--start: {isotime(s)} is older than {where}; use --period {unit} "
                f"({_span(p)} data is kept for {kept_for(p) // DAY} days)")
        raise ConfigError(f"--start: {isotime(s)} is older than {where}, and no ELB data "
                          f"is kept longer than {RETENTION[-1][1] // DAY} days")
    return Window(s, e, period)


def _span(period: int) -> str:
    return f"{period // 3600}-hour" if period % 3600 == 0 else f"{period // 60}-minute"


# --- plan -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Target:
    """One load balancer, or one of its target groups, to backfill, with everything needed
    to write it. A target group's key is `<lb key>|<TargetGroup>`; its name is its load
    balancer's (the state file format is the same: a target group is a Target with one
    more dimension and label)."""

    key: str
    name: str
    dimensions: tuple[tuple[str, str], ...]
    labels: Labels
    """Every label but __name__."""
    specs: tuple[MetricSpec, ...]
    fill: FillPlan | None = None
    """Zero-fill of its sparse counters (specs among `specs`); None with --no-zero-fill."""


def targets_of(lb: LoadBalancer, catalog: Catalog, labels: dict[str, str],
               zero_fill: bool) -> list[Target]:
    """The load balancer's Target and one per target group, labelled as `run` labels them."""
    out = [Target(lb.key, lb.name, ((KINDS[lb.type].dimension, lb.dimension),),
                  tuple(sorted(labels.items())), catalog.specs(lb.type),
                  catalog.fill_plan(lb.type) if zero_fill else None)]
    tg_specs = catalog.specs(lb.type, "target_group")
    if tg_specs:
        out += [Target(f"{lb.key}{TG_KEY_SEPARATOR}{tg.dimension}", lb.name,
                       target_dimensions(lb, tg), tuple(sorted(tg_labels(labels, tg).items())),
                       tg_specs,
                       catalog.fill_plan(lb.type, "target_group") if zero_fill else None)
                for tg in lb.target_groups]
    return out


def _is_tg(t: Target) -> bool:
    return any(name == "TargetGroup" for name, _ in t.dimensions)


@dataclass(frozen=True)
class Plan:
    window: Window
    targets: tuple[Target, ...]
    calls: tuple[cloudwatch.Call, ...]

    @property
    def metrics_requested(self) -> int:
        return sum(len(c.queries) for c in self.calls)

    @property
    def datapoints(self) -> int:
        """At most this many: CloudWatch has no datapoint for a quiet sparse counter."""
        return sum(c.datapoints for c in self.calls)

    @property
    def dollars(self) -> float:
        return self.metrics_requested * PRICE_PER_1000 / 1000


def make_plan(window: Window, targets: Sequence[Target],
              max_queries: int = cloudwatch.MAX_QUERIES_PER_CALL) -> Plan:
    """Each (target, metric, statistic) is requested once when the range fits one call's
    100,800 datapoints (any range CloudWatch keeps does), packed up to 500 per call."""
    if any(_fills(t) for t in targets):
        return Plan(window, tuple(targets), tuple(_whole_target_calls(window, targets,
                                                                      max_queries)))
    calls = cloudwatch.plan_calls(
        (cloudwatch.FetchTarget(t.key, t.dimensions, window, t.specs) for t in targets),
        max_queries)
    return Plan(window, tuple(targets), tuple(calls))


def _fills(t: Target) -> bool:
    return t.fill is not None and t.fill.traffic is not None and bool(t.fill.sparse)


def _whole_target_calls(window: Window, targets: Sequence[Target], max_queries: int
                        ) -> list[cloudwatch.Call]:
    """Calls that each carry all of a target's metrics, for zero-fill: it needs the traffic
    metric's datapoints in the same call as the sparse counters, since calls are written
    one at a time. When a target's metrics over the whole range exceed one call's
    datapoints (an ALB's 14 at 1 minute: past 5 days), the range is cut in time and each
    piece requested on its own, which costs one request of each metric per piece."""
    targets = [t for t in targets if t.specs]
    if not targets or window.empty:
        return []
    biggest = max(len(t.specs) for t in targets)
    if biggest > max_queries:
        raise ConfigError(f"--zero-fill: a load balancer has {biggest} metrics, more than the "
                          f"{max_queries} one GetMetricData call holds; pass --no-zero-fill")
    calls = []
    for piece in cloudwatch.split_window(window, cloudwatch.MAX_DATAPOINTS_PER_CALL // biggest):
        per_call = min(max_queries, cloudwatch.MAX_DATAPOINTS_PER_CALL // piece.periods)
        chunk: list[tuple[Target, MetricSpec]] = []
        for t in targets:
            if len(chunk) + len(t.specs) > per_call:
                calls.append(_call(piece, chunk))
                chunk = []
            chunk += [(t, s) for s in t.specs]
        calls.append(_call(piece, chunk))
    return calls


def _call(window: Window, pairs: Sequence[tuple[Target, MetricSpec]]) -> cloudwatch.Call:
    return cloudwatch.Call(window, tuple(cloudwatch.Query(f"q{n}", t.key, t.dimensions, s)
                                         for n, (t, s) in enumerate(pairs)))


def describe(plan: Plan) -> list[str]:
    w = plan.window
    lbs = [t for t in plan.targets if not _is_tg(t)]
    tgs = len(plan.targets) - len(lbs)
    filled = sum(1 for t in lbs if _fills(t))
    return [
        f"backfill {isotime(w.start)}..{isotime(w.end)} ({w.periods} periods of {w.period}s) "
        f"for {len(lbs)} load balancers{f' and {tgs} of their target groups' if tgs else ''}: "
        + ", ".join(sorted(t.name for t in lbs)),
        f"GetMetricData: {len(plan.calls)} calls, {plan.metrics_requested} metrics requested, "
        f"up to {plan.datapoints:,} datapoints",
        f"estimated cost: ${plan.dollars:.4f} (assuming the list price of "
        f"${PRICE_PER_1000} per 1,000 metrics requested; check your region's price)",
        f"zero-fill: sparse counters of {filled} of {len(lbs)} load balancers get 0 "
        "in periods with traffic" if filled else "zero-fill: off",
    ]


def check_still_kept(plan: Plan, done: set[int], now: int) -> None:
    """A resumed backfill may have waited past CloudWatch's retention for its period; the
    calls left would come back empty and be marked done."""
    left = [c.window.start for i, c in enumerate(plan.calls) if i not in done]
    period = plan.window.period
    if left and min(left) < now - kept_for(period):
        raise ConfigError(
            f"--resume: the calls left start at {isotime(min(left))}, older than CloudWatch "
            f"keeps {period}s-period data ({kept_for(period) // DAY} days); delete the state "
            "file and backfill what is missing with a longer --period")


def carry_checkpoint(store: FileStore, state: State) -> int:
    """Move a local checkpoint to the end of a complete backfill for each load balancer
    whose checkpoint is missing or inside the range, so `run --checkpoint-file` carries on
    from there. One that ends before the range start keeps its place: moving it would
    hide the gap between from run's catch-up."""
    current = store.load()
    # A target group's target shares its load balancer's checkpoint (key "LB|TG").
    lbs = {t.key.split(TG_KEY_SEPARATOR)[0] for t in state.targets}
    updates = {key: state.window.end for key in sorted(lbs)
               if current.ends.get(key, state.window.start) >= state.window.start}
    if updates:
        store.save(current, updates)
    return len(updates)


# --- state --------------------------------------------------------------------------------

class CorruptState(ConfigError):
    """The state file cannot be used; the message says how to start over."""


@dataclass
class State:
    """A backfill's plan inputs and progress, kept in a local JSON file."""

    window: Window
    targets: tuple[Target, ...]
    output: str
    """Where the samples go, e.g. 'remote-write https://host/api/v1/write' (redacted)."""
    done: set[int] = field(default_factory=set)
    """Calls whose samples were all written."""
    partial: tuple[int, int] | None = None
    """(call, samples sent) of the call being written when it stopped. Counted in samples,
    not requests, so a resume with another --remote-write-max-samples skips exactly."""
    file_offset: int = 0
    """--output: bytes of the file that belong to written calls."""
    samples_written: int = 0
    samples_rejected: int = 0

    def to_json(self) -> str:
        doc = {
            "format": STATE_FORMAT,
            "window": [self.window.start, self.window.end, self.window.period],
            "output": self.output,
            "done": sorted(self.done),
            "partial": list(self.partial) if self.partial else None,
            "file_offset": self.file_offset,
            "samples_written": self.samples_written,
            "samples_rejected": self.samples_rejected,
            "targets": [
                {"key": t.key, "name": t.name, "dimensions": [list(d) for d in t.dimensions],
                 "labels": dict(t.labels),
                 "specs": [[s.namespace, s.metric, s.stat, s.prom_name] for s in t.specs],
                 "fill": _fill_json(t)}
                for t in self.targets
            ],
        }
        return json.dumps(doc, sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str, path: str) -> State:
        fix = f"delete {path} to start the backfill over"
        try:
            doc = json.loads(text)
            if not isinstance(doc, dict):
                raise ValueError("not a JSON object")
            if "load_balancers" in doc:  # lbscrape run's checkpoint file: never delete that
                raise CorruptState(f"{path} is a checkpoint file of 'lbscrape run', not a "
                                   "backfill state file; pass another --state-file")
            if doc.get("format") != STATE_FORMAT:
                raise CorruptState(f"state file {path} has format {doc.get('format')!r}, "
                                   f"this lbscrape reads format {STATE_FORMAT}; {fix}")
            start, end, period = (int(x) for x in doc["window"])
            targets = tuple(_target_from_json(t) for t in doc["targets"])
            partial = doc.get("partial")
            return cls(Window(start, end, period), targets, str(doc["output"]),
                       {int(i) for i in doc["done"]},
                       (int(partial[0]), int(partial[1])) if partial else None,
                       int(doc["file_offset"]), int(doc["samples_written"]),
                       int(doc["samples_rejected"]))
        except CorruptState:
            raise
        except (ValueError, KeyError, TypeError, IndexError) as e:
            raise CorruptState(f"state file {path} cannot be read ({e}); {fix}") from None


def _fill_json(t: Target) -> dict[str, Any] | None:
    """The fill plan as positions in t.specs, so a resumed backfill fills the same way."""
    if t.fill is None:
        return None
    return {"traffic": t.specs.index(t.fill.traffic) if t.fill.traffic else None,
            "sparse": [t.specs.index(s) for s in t.fill.sparse]}


def _target_from_json(t: dict[str, Any]) -> Target:
    specs = tuple(MetricSpec(*map(str, s)) for s in t["specs"])
    fill = t.get("fill")
    return Target(
        t["key"], t["name"], tuple((str(a), str(b)) for a, b in t["dimensions"]),
        tuple(sorted((str(k), str(v)) for k, v in t["labels"].items())), specs,
        FillPlan(specs[fill["traffic"]] if fill["traffic"] is not None else None,
                 tuple(specs[i] for i in fill["sparse"])) if fill else None)


class StateFile:
    """The JSON file, replaced atomically on every save so a crash leaves the last one."""

    def __init__(self, path: str) -> None:
        self.path = path

    def exists(self) -> bool:
        return os.path.exists(self.path)

    def load(self) -> State:
        try:
            with open(self.path, encoding="utf-8") as f:
                return State.from_json(f.read(), self.path)
        except FileNotFoundError:
            raise ConfigError(f"--resume: no state file {self.path}; start the backfill "
                              "without --resume (or pass the --state-file it used)") from None
        except OSError as e:
            raise ConfigError(f"--state-file: cannot read {self.path}: {e.strerror}") from None

    def remove(self) -> None:
        """A complete backfill leaves nothing to resume (and nothing to block the next)."""
        try:
            os.remove(self.path)
        except FileNotFoundError:
            pass

    def save(self, state: State) -> None:
        tmp = f"{self.path}.tmp"
        try:
            with open(tmp, "w", encoding="utf-8") as f:
                f.write(state.to_json() + "\n")
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except OSError as e:
            raise BackfillStopped(f"cannot write state file {self.path}: {e.strerror}") from e


# --- sinks --------------------------------------------------------------------------------

class Sink(Protocol):
    def write(self, call: int, series: Sequence[Series], state: State,
              save: Callable[[], None]) -> None: ...

    def finish(self, state: State) -> None: ...

    def close(self) -> None: ...


def requests(series: Sequence[Series], max_samples: int) -> Iterator[list[Series]]:
    """Pack series into requests of at most max_samples, cutting long series in time.
    Deterministic for the same input, which is what lets a resumed call skip the
    requests it already wrote."""
    current: list[Series] = []
    n = 0
    for s in series:
        samples = s.samples
        while samples:
            room = max_samples - n
            part, samples = samples[:room], samples[room:]
            current.append(Series(s.labels, part))
            n += len(part)
            if n >= max_samples:
                yield current
                current, n = [], 0
    if current:
        yield current


def skip_samples(series: Sequence[Series], n: int) -> list[Series]:
    """The series without their first n samples, counted in series order."""
    out = []
    for s in series:
        if n >= len(s.samples):
            n -= len(s.samples)
            continue
        out.append(Series(s.labels, s.samples[n:]))
        n = 0
    return out


class RemoteWriteSink:
    def __init__(self, client: remote_write.Client) -> None:
        self.client = client

    def write(self, call: int, series: Sequence[Series], state: State,
              save: Callable[[], None]) -> None:
        sent = state.partial[1] if state.partial and state.partial[0] == call else 0
        for req in requests(skip_samples(series, sent),
                            self.client.settings.max_samples_per_request):
            try:
                self.client.post(remote_write.encode(req))
                state.samples_written += remote_write.count(req)
            except RemoteWriteError as e:
                if not e.sample:
                    raise BackfillStopped(str(e)) from None
                if any(r in str(e).lower() for r in TOO_OLD_REASONS):
                    raise BackfillStopped(f"{e}: {OOO_ADVICE}") from None
                rejected = remote_write.write_bisecting(self.client, req)
                _report(rejected)
                state.samples_written += remote_write.count(req) - len(rejected)
                state.samples_rejected += len(rejected)
            sent += remote_write.count(req)
            state.partial = (call, sent)
            save()

    def finish(self, state: State) -> None:
        pass

    def close(self) -> None:
        pass


def _report(rejected: Sequence[remote_write.Rejected]) -> None:
    for r in rejected[:10]:
        log.warning("remote write refused %s at %s: %s", selector(r.labels),
                    isotime(r.timestamp_ms // 1000), r.reason)
    if len(rejected) > 10:
        log.warning("... and %d more refused samples", len(rejected) - 10)


class OpenMetricsSink:
    """OpenMetrics text for `promtool tsdb create-blocks-from openmetrics`.

    Every series is written whole by one call, so each series' samples are contiguous
    and in time order, as promtool needs. The file ends with '# EOF' only when every call
    is written; a resumed backfill first cuts off what an interrupted call left."""

    def __init__(self, path: str, state: State, resume: bool) -> None:
        self.path = path
        try:
            self.f: IO[bytes] = open(path, "r+b" if resume else "wb")  # noqa: SIM115
            if resume and os.fstat(self.f.fileno()).st_size < state.file_offset:
                self.f.close()
                raise ConfigError(f"--output: {path} is shorter than the backfill wrote; it "
                                  "was changed since, so delete it and the state file and "
                                  "start over")
            self.f.truncate(state.file_offset if resume else 0)
            self.f.seek(0, os.SEEK_END)
        except OSError as e:
            raise ConfigError(f"--output: cannot write {path}: {e.strerror}") from None

    def write(self, call: int, series: Sequence[Series], state: State,
              save: Callable[[], None]) -> None:
        try:
            for s in series:
                sel = selector(s.labels).encode()
                self.f.write(b"".join(
                    sel + b" " + _om_number(x) + b"\n" for x in s.samples))
                state.samples_written += len(s.samples)
            self.f.flush()
            os.fsync(self.f.fileno())
            state.file_offset = self.f.tell()
        except OSError as e:
            raise BackfillStopped(f"cannot write {self.path}: {e.strerror}") from None

    def finish(self, state: State) -> None:
        self.f.write(b"# EOF\n")
        self.f.flush()

    def close(self) -> None:
        self.f.close()


def _om_number(x: Sample) -> bytes:
    v = x.value
    value = "NaN" if v != v else "+Inf" if v == float("inf") else "-Inf" if v == -float(
        "inf") else repr(v)
    secs, ms = divmod(x.timestamp_ms, 1000)
    ts = str(secs) if not ms else f"{secs}.{ms:03d}"
    return f"{value} {ts}".encode()


# --- the loop -------------------------------------------------------------------------------

@dataclass
class Outcome:
    calls_done: int = 0
    failed: dict[int, str] = field(default_factory=dict)
    """call -> why its data could not be fetched (retry with --resume)."""
    gmd_calls: int = 0
    metrics_requested: int = 0
    samples_zero_filled: int = 0


Progress = Callable[[int, int, State], Any]


def run(plan: Plan, state: State, store: StateFile, cw: cloudwatch.CloudWatchClient,
        sink: Sink, progress: Progress | None = None) -> Outcome:
    """Fetch and write every call not done yet, in order, saving progress after each
    request. A call whose fetch failed stops the backfill there, for --resume: writing
    later calls first would put a series' pieces out of time order (promtool drops such
    samples; a TSDB without an out-of-order window refuses them). An endpoint that stops
    accepting stops it too (BackfillStopped)."""
    out = Outcome()
    by_key = {t.key: t for t in plan.targets}
    total = len(plan.calls)
    for i, call in enumerate(plan.calls):
        if i in state.done:
            continue
        fetched = cloudwatch.fetch(cw, [call])
        out.gmd_calls += fetched.calls
        out.metrics_requested += fetched.metrics_requested
        if fetched.failed:
            # All or nothing per call: a partly written call could not be resumed exactly.
            out.failed[i] = "; ".join(sorted(set(fetched.failed.values())))
            log.warning("call %d/%d not written: %s; --resume retries it", i + 1, total,
                        out.failed[i])
            break
        series, filled = _series(fetched, by_key)
        out.samples_zero_filled += filled
        sink.write(i, series, state, lambda: store.save(state))
        state.done.add(i)
        state.partial = None
        store.save(state)
        out.calls_done += 1
        if progress:
            progress(len(state.done), total, state)
    if len(state.done) == total:
        sink.finish(state)
    return out


def _series(fetched: cloudwatch.FetchResult, by_key: dict[str, Target]
            ) -> tuple[list[Series], int]:
    """The call's series in a fixed order (a resumed call skips requests by position),
    with each target's sparse counters zero-filled; and how many zeros that added."""
    by_target: dict[str, dict[MetricSpec, list[Sample]]] = defaultdict(dict)
    for (key, spec), samples in fetched.samples.items():
        by_target[key][spec] = samples
    out, filled = [], 0
    for key in sorted(by_target):
        data, fill = by_target[key], by_key[key].fill
        if fill is not None:
            data, n = zero_fill(data, fill)
            filled += n
        out += build_series(data, dict(by_key[key].labels))
    return out, filled
