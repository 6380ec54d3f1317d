"""Pack load balancers' series into bounded requests, deliver them, recover from refusals.

- A request is all-or-nothing: one out-of-order, out-of-bounds or conflicting sample
  rejects all of it with 400. The usual cause is a repeated window (an interrupted run
  wrote it, its checkpoint did not move), so a refused request is re-sent per load
  balancer, oldest minute first: a minute refused as already written is skipped whole,
  any other refused minute is split in halves until the bad samples are isolated, and
  the rest goes in one request as soon as a minute is accepted. Progress is kept per
  minute, so even a slow recovery moves the checkpoint forward;
- an LB's samples are sent oldest first, and an LB too big for one request is cut into
  time slices, so an accepted prefix is a safe checkpoint and nothing is sent after a
  slice that failed (that would make the failed slice out of order forever).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

from lbscrape.core.config import redact_url
from lbscrape.core.errors import RemoteWriteError
from lbscrape.core.model import Labels, Series
from lbscrape.prom.remote_write import Client, encode

log = logging.getLogger(__name__)



@dataclass(frozen=True)
class LbBatch:
    """All series one load balancer writes this run, covering its window up to `end`."""

    lb_key: str
    series: tuple[Series, ...]
    end: int


@dataclass(frozen=True)
class Piece:
    """Part of one LB's batch; once it and all earlier pieces of the LB are accepted,
    the LB's checkpoint may move to `through`."""

    lb_key: str
    series: tuple[Series, ...]
    through: int


@dataclass(frozen=True)
class Rejected:
    labels: Labels
    timestamp_ms: int
    reason: str


@dataclass
class Delivery:
    through: dict[str, int] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    samples_written: int = 0
    rejected: list[Rejected] = field(default_factory=list)


def count(series: Sequence[Series]) -> int:
    return sum(len(s.samples) for s in series)


def slice_batch(batch: LbBatch, max_samples: int) -> list[Piece]:
    """Cut an LB's batch into time slices of at most max_samples (whole timestamps)."""
    if count(batch.series) <= max_samples:
        return [Piece(batch.lb_key, batch.series, batch.end)]
    per_ts: dict[int, int] = {}
    for s in batch.series:
        for smp in s.samples:
            per_ts[smp.timestamp_ms] = per_ts.get(smp.timestamp_ms, 0) + 1
    cuts, n = [], 0  # cuts: first timestamp of every slice after the first
    for ts in sorted(per_ts):
        if n and n + per_ts[ts] > max_samples:
            cuts.append(ts)
            n = 0
        n += per_ts[ts]
    bounds = [None, *cuts, None]
    pieces = []
    for lo, hi in zip(bounds, bounds[1:], strict=False):
        part = tuple(
            Series(s.labels, tuple(x for x in s.samples
                                   if (lo is None or x.timestamp_ms >= lo)
                                   and (hi is None or x.timestamp_ms < hi)))
            for s in batch.series
        )
        pieces.append(Piece(batch.lb_key, tuple(s for s in part if s.samples),
                            batch.end if hi is None else hi // 1000))
    return pieces


def plan_requests(batches: Sequence[LbBatch], max_samples: int) -> list[tuple[Piece, ...]]:
    """Pack whole LBs into requests of at most max_samples; big LBs get their own slices."""
    return list(iter_requests(batches, max_samples))


def iter_requests(batches: Iterable[LbBatch], max_samples: int) -> Iterator[tuple[Piece, ...]]:
    """plan_requests as batches come in: each request as soon as it is full."""
    current: list[Piece] = []
    size = 0
    for batch in batches:
        pieces = slice_batch(batch, max_samples)
        if len(pieces) > 1:
            yield from ((p,) for p in pieces)
            continue
        n = count(pieces[0].series)
        if current and size + n > max_samples:
            yield tuple(current)
            current, size = [], 0
        current.append(pieces[0])
        size += n
    if current:
        yield tuple(current)


def deliver(client: Client, requests: Iterable[tuple[Piece, ...]]) -> Delivery:
    """Send requests in order. After the endpoint fails (down, refusing us, or out of
    time) nothing more is sent: the remaining LBs keep their checkpoints and the next
    run repeats them."""
    out = Delivery()
    down: str | None = None
    for pieces in requests:
        live = [p for p in pieces if p.lb_key not in out.failed]
        if not live:
            continue
        if client.budget.expired and not down:
            down = f"not sent: {client.budget.reason}"
        if down:
            for p in live:
                out.failed[p.lb_key] = down
            continue
        series = [s for p in live for s in p.series]
        try:
            if series:
                client.post(encode(series))
        except RemoteWriteError as e:
            if not e.sample:
                down = _fail(out, live, e)
                continue
            for i, p in enumerate(live):
                down = _deliver_by_minute(client, p, out)
                if down:
                    for rest in live[i + 1:]:
                        out.failed[rest.lb_key] = down
                    break
            continue
        out.samples_written += count(series)
        for p in live:
            out.through[p.lb_key] = p.through
    return out


def _fail(out: Delivery, pieces: Sequence[Piece], e: RemoteWriteError) -> str:
    for p in pieces:
        out.failed[p.lb_key] = str(e)
    return f"not sent: {e}"


def _deliver_by_minute(client: Client, piece: Piece, out: Delivery) -> str | None:
    """Write one LB's piece after its request was refused; returns a reason to stop
    sending if the endpoint itself failed. Moves out.through as minutes are done."""
    minutes = sorted({x.timestamp_ms for s in piece.series for x in s.samples})
    try_rest = False  # the whole piece was just refused
    for i, ts in enumerate(minutes):
        nxt = minutes[i + 1] if i + 1 < len(minutes) else None
        if client.budget.expired:
            out.failed[piece.lb_key] = f"not sent: {client.budget.reason}"
            return out.failed[piece.lb_key]
        try:
            if try_rest:
                rest = _between(piece.series, ts, None)
                try:
                    client.post(encode(rest))
                    out.samples_written += count(rest)
                    out.through[piece.lb_key] = piece.through
                    return None
                except RemoteWriteError as e:
                    if not e.sample:
                        raise
            unit = _between(piece.series, ts, nxt)
            try:
                client.post(encode(unit))
                out.samples_written += count(unit)
                try_rest = True
            except RemoteWriteError as e:
                if not e.sample:
                    raise
                if e.stale:  # already written (or older than what is): skip the minute
                    out.rejected.extend(Rejected(s.labels, x.timestamp_ms, str(e))
                                        for s in unit for x in s.samples)
                    try_rest = False
                else:
                    rejected = write_bisecting(client, unit)
                    if len(rejected) == count(unit):
                        raise RemoteWriteError(
                            f"remote write to {redact_url(client.settings.url)} refused "
                            f"every sample: {e}", status=e.status) from None
                    out.rejected.extend(rejected)
                    out.samples_written += count(unit) - len(rejected)
                    try_rest = True
        except RemoteWriteError as e:
            out.failed[piece.lb_key] = str(e)
            return f"not sent: {e}"
        out.through[piece.lb_key] = nxt // 1000 if nxt is not None else piece.through
    out.through[piece.lb_key] = piece.through
    return None


def _between(series: Sequence[Series], lo: int, hi: int | None) -> list[Series]:
    out = []
    for s in series:
        kept = tuple(x for x in s.samples if x.timestamp_ms >= lo and (hi is None or
                                                                        x.timestamp_ms < hi))
        if kept:
            out.append(Series(s.labels, kept))
    return out


def write_bisecting(client: Client, series: Sequence[Series]) -> list[Rejected]:
    """Write `series`; on a per-sample refusal split in halves until the refused samples
    are isolated. A refused sample is permanent (the receiver will refuse it again), so
    it is returned for reporting rather than retried."""
    if not series:
        return []
    if client.budget.expired:
        raise RemoteWriteError(f"not sent: {client.budget.reason}")
    try:
        client.post(encode(series))
        return []
    except RemoteWriteError as e:
        if not e.sample:
            raise
        if count(series) <= 1:
            s = next(x for x in series if x.samples)
            return [Rejected(s.labels, s.samples[0].timestamp_ms, str(e))]
    left, right = _halves(series)
    return write_bisecting(client, left) + write_bisecting(client, right)


def _halves(series: Sequence[Series]) -> tuple[list[Series], list[Series]]:
    half = count(series) // 2
    left: list[Series] = []
    right: list[Series] = []
    n = 0
    for s in series:
        k = len(s.samples)
        if n >= half:
            right.append(s)
        elif n + k <= half:
            left.append(s)
        else:
            cut = half - n
            left.append(Series(s.labels, s.samples[:cut]))
            right.append(Series(s.labels, s.samples[cut:]))
        n += k
    return left, right
