"""Pack load balancers' series into bounded requests, deliver them, recover from refusals.

- Prometheus refuses a request whole (400) for one out-of-order, out-of-bounds or
  conflicting sample, and does not say which. Usually that is a series holding samples
  later than this run's window: written by an interrupted run whose checkpoint did not
  move, or by another writer. So a refused request is split, first by load balancer,
  then per load balancer minute by minute, oldest first, and a refused minute by series,
  until each refused sample is proven refused by the receiver itself: refused alone, or
  refused together with samples it then accepted on their own. Every other sample is
  written. A sample is one series' minute, so proving costs a request per refused sample
  at worst: series refused at one minute are tried one by one at the next (they usually
  are refused again), the others together; a minute with few refusals is halved.
- Mimir and Cortex store the rest of a refused request and name the sample they refused:
  that is taken as it is, nothing is re-sent (what they stored would now be refused).
- Progress is kept per minute (Delivery.through), so a long recovery that runs out of
  time moves the checkpoint as far as it got, and the next run goes on from there.
- an LB's samples are sent oldest first, and an LB too big for one request is cut into
  time slices, so an accepted prefix is a safe checkpoint and nothing is sent after a
  slice that failed (that would make the failed slice out of order forever).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from lbscrape.core.budget import Abandoned
from lbscrape.core.config import redact_url
from lbscrape.core.errors import RemoteWriteError
from lbscrape.core.model import Labels, Series
from lbscrape.prom.remote_write import Client, encode, is_stale_reason

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
    requests: list[tuple[Piece, ...]] = []
    current: list[Piece] = []
    size = 0
    for batch in batches:
        pieces = slice_batch(batch, max_samples)
        if len(pieces) > 1:
            requests.extend((p,) for p in pieces)
            continue
        n = count(pieces[0].series)
        if current and size + n > max_samples:
            requests.append(tuple(current))
            current, size = [], 0
        current.append(pieces[0])
        size += n
    if current:
        requests.append(tuple(current))
    return requests


def deliver(client: Client, requests: Sequence[tuple[Piece, ...]]) -> Delivery:
    """Send requests in order. After the endpoint fails (down, refusing us, or out of
    time) nothing more is sent: the remaining LBs keep their checkpoints and the next
    run repeats them. A request abandoned in flight (Abandoned: SIGTERM's grace or the
    deadline ran out) ends delivery the same way."""
    out = Delivery()
    down: str | None = None
    try:
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
            down = _deliver_together(client, live, out)
    except Abandoned:
        ends = {p.lb_key: p.through for pieces in requests for p in pieces}
        for key, end in ends.items():
            if out.through.get(key) != end:
                out.failed.setdefault(key, f"not written: {client.budget.reason} (a request "
                                           "in flight was abandoned)")
    return out


def _deliver_together(client: Client, pieces: Sequence[Piece], out: Delivery) -> str | None:
    """One request of several LBs' pieces; returns a reason to stop sending if the
    endpoint itself failed."""
    try:
        if not _pieces_taken(client, pieces, out):
            _split_pieces(client, pieces, out)
    except RemoteWriteError as e:
        for p in pieces:
            if out.through.get(p.lb_key) != p.through:
                out.failed[p.lb_key] = str(e)
        return f"not sent: {e}"
    return None


def _pieces_taken(client: Client, pieces: Sequence[Piece], out: Delivery) -> bool:
    """Send the pieces in one request; True if the receiver took it (all accepted, or
    it stored the rest and named what it refused)."""
    if _attempt(client, [s for p in pieces for s in p.series], out) is not None:
        return False
    for p in pieces:
        out.through[p.lb_key] = p.through
    return True


def _split_pieces(client: Client, pieces: Sequence[Piece], out: Delivery) -> None:
    """`pieces` were refused together: halve them until the LBs holding refused samples
    are found; refusals on both sides mean many (a repeated window): one LB at a time."""
    if len(pieces) == 1:
        _resolve_piece(client, pieces[0], out)
        return
    a, b = pieces[:len(pieces) // 2], pieces[len(pieces) // 2:]
    if _pieces_taken(client, a, out):
        _split_pieces(client, b, out)
    elif _pieces_taken(client, b, out):
        _split_pieces(client, a, out)
    else:
        for p in (*a, *b):
            _resolve_piece(client, p, out)


def _resolve_piece(client: Client, piece: Piece, out: Delivery) -> None:
    """Write one LB's piece minute by minute, oldest first, each sample written or proven
    refused before a later one of its series is sent; the rest in one request once a
    minute had no refusal. Moves out.through as minutes are done."""
    minutes = _by_minute(piece.series)
    suspects: set[Labels] = set()  # refused at the last minute: likely refused again
    for i, (ts, unit) in enumerate(minutes):
        if i and not suspects and _attempt(
                client, _between(piece.series, ts, None), out) is None:
            out.through[piece.lb_key] = piece.through
            return
        rejected = _resolve_minute(client, unit, suspects, out)
        if len(rejected) == len(unit) and not any(is_stale_reason(r.reason) for r in rejected):
            raise RemoteWriteError(f"remote write to {redact_url(client.settings.url)} refused "
                                   f"every sample: {rejected[0].reason}")
        out.rejected.extend(rejected)
        suspects = {r.labels for r in rejected}
        out.through[piece.lb_key] = minutes[i + 1][0] // 1000 if i + 1 < len(minutes) \
            else piece.through
    out.through[piece.lb_key] = piece.through


def _resolve_minute(client: Client, unit: Sequence[Series], suspects: set[Labels],
                    out: Delivery) -> list[Rejected]:
    """Write one minute (one sample per series); returns the samples proven refused."""
    refusal = _attempt(client, unit, out)
    if refusal is None:
        return []
    likely = [s for s in unit if s.labels in suspects]
    others = [s for s in unit if s.labels not in suspects]
    if not likely:
        return _bisect(client, others, refusal, out)
    if not others:
        return _one_by_one(client, likely, refusal, out)
    other_refusal = _attempt(client, others, out)
    if other_refusal is None:
        return _one_by_one(client, likely, refusal, out)
    return _bisect(client, others, other_refusal, out) + _one_by_one(client, likely, None, out)


def _bisect(client: Client, group: Sequence[Series], refusal: RemoteWriteError,
            out: Delivery) -> list[Rejected]:
    """`group` was refused (`refusal`): halve it until its refused samples are isolated."""
    if len(group) == 1:
        return [_rejected(group[0], refusal)]
    a, b = group[:len(group) // 2], group[len(group) // 2:]
    ra = _attempt(client, a, out)
    if ra is None:
        return _bisect(client, b, refusal, out)
    rb = _attempt(client, b, out)
    if rb is None:
        return _bisect(client, a, ra, out)
    return _one_by_one(client, a, ra, out) + _one_by_one(client, b, rb, out)


def _one_by_one(client: Client, group: Sequence[Series], refusal: RemoteWriteError | None,
                out: Delivery) -> list[Rejected]:
    """Each sample alone. With the group's `refusal` known, the last one is not sent if
    all the others were accepted: it is the one refused."""
    rejected: list[Rejected] = []
    for i, s in enumerate(group):
        if refusal is not None and i == len(group) - 1 and not rejected:
            return [_rejected(s, refusal)]
        r = _attempt(client, [s], out)
        if r is not None:
            rejected.append(_rejected(s, r))
    return rejected


def _attempt(client: Client, series: Sequence[Series], out: Delivery) -> RemoteWriteError | None:
    """Send `series`: None if the receiver took them, else its refusal. An endpoint
    failure (or no time left) raises."""
    if client.budget.expired:
        raise RemoteWriteError(f"not sent: {client.budget.reason}")
    try:
        if series:
            client.post(encode(series))
    except RemoteWriteError as e:
        if not e.sample:
            raise
        if not e.named:
            return e
        # It stored the rest of the request and named what it refused.
        log.info("remote write: the endpoint stored the rest of a request and named %d "
                 "refused sample(s) (it names only the first it refused)", len(e.named))
        out.rejected.extend(Rejected(labels, ts, e.reason) for labels, ts in e.named)
        out.samples_written += count(series) - len(e.named)
        return None
    out.samples_written += count(series)
    return None


def _rejected(s: Series, refusal: RemoteWriteError) -> Rejected:
    return Rejected(s.labels, s.samples[0].timestamp_ms, refusal.reason)


def _by_minute(series: Sequence[Series]) -> list[tuple[int, list[Series]]]:
    """Per timestamp, oldest first, each series' sample at it."""
    at: dict[int, list[Series]] = {}
    for s in series:
        for x in s.samples:
            at.setdefault(x.timestamp_ms, []).append(Series(s.labels, (x,)))
    return sorted(at.items())


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
