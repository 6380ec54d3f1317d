"""Where a backfill writes: remote write, or an OpenMetrics file for promtool."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator, Sequence
from typing import IO, Protocol

from lbscrape.core.errors import ConfigError, RemoteWriteError
from lbscrape.core.model import (
    Series,
    isotime,
)
from lbscrape.flows.backfill.state import BackfillStopped, State
from lbscrape.prom import delivery, openmetrics, remote_write
from lbscrape.prom.series import selector

log = logging.getLogger(__name__)


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
                state.samples_written += delivery.count(req)
            except RemoteWriteError as e:
                if not e.sample:
                    raise BackfillStopped(str(e)) from None
                if any(r in str(e).lower() for r in TOO_OLD_REASONS):
                    raise BackfillStopped(f"{e}: {OOO_ADVICE}") from None
                rejected = delivery.write_bisecting(self.client, req)
                _report(rejected)
                state.samples_written += delivery.count(req) - len(rejected)
                state.samples_rejected += len(rejected)
            sent += delivery.count(req)
            state.partial = (call, sent)
            save()

    def finish(self, state: State) -> None:
        pass

    def close(self) -> None:
        pass


def _report(rejected: Sequence[delivery.Rejected]) -> None:
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
                self.f.write(openmetrics.encode(s))
                state.samples_written += len(s.samples)
            self.f.flush()
            os.fsync(self.f.fileno())
            state.file_offset = self.f.tell()
        except OSError as e:
            raise BackfillStopped(f"cannot write {self.path}: {e.strerror}") from None

    def finish(self, state: State) -> None:
        self.f.write(openmetrics.EOF)
        self.f.flush()

    def close(self) -> None:
        self.f.close()


