"""A remote-write receiver on 127.0.0.1 that keeps, per series, how many samples arrived
and checksums of their timestamps and values: enough to tell that every expected sample
landed exactly once, at the size of a benchmark (a million samples) where a real
Prometheus on the same two cores would be measured instead of lbscrape.

It answers 204 as soon as a request is read and counts it after, as a receiver that
appends faster than Python decodes would; `drain()` waits until all is counted.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

import snappy

from lbscrape.prom.prompb import WriteRequest
from tests.loopback import LoopbackServer

Labels = tuple[tuple[str, str], ...]


@dataclass
class Tally:
    samples: int = 0
    ts_sum: int = 0
    ts_sq: int = 0
    value_sum: float = 0.0

    def add(self, ts: int, v: float) -> None:
        self.samples += 1
        self.ts_sum += ts
        self.ts_sq += ts * ts
        self.value_sum += v


def expected_tally(points: Iterable[tuple[int, float]]) -> Tally:
    t = Tally()
    for ts, v in points:
        t.add(ts, v)
    return t


@dataclass
class CountingReceiver(LoopbackServer):
    series: dict[Labels, Tally] = field(default_factory=dict)
    requests: int = 0
    first_at: float | None = None
    """time.monotonic() of the first request."""

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._counting = 0
        self._idle = threading.Condition(self._lock)

    def drain(self, timeout: float = 60) -> None:
        """Wait until every request answered so far is counted."""
        with self._idle:
            self._idle.wait_for(lambda: self._counting == 0, timeout)

    @property
    def write_url(self) -> str:
        return f"{self.url}/api/v1/write"

    def handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(_Handler):
            owner = receiver

        return Handler

    def arrived(self) -> None:
        with self._lock:
            self._counting += 1
            self.requests += 1
            if self.first_at is None:
                self.first_at = time.monotonic()

    def take(self, body: bytes) -> None:
        wr = WriteRequest()
        wr.ParseFromString(snappy.uncompress(body))
        with self._lock:
            for ts in wr.timeseries:
                key = tuple(sorted((lb.name, lb.value) for lb in ts.labels))
                tally = self.series.setdefault(key, Tally())
                stamps = [s.timestamp for s in ts.samples]
                tally.samples += len(stamps)
                tally.ts_sum += sum(stamps)
                tally.ts_sq += sum(t * t for t in stamps)
                tally.value_sum += sum(s.value for s in ts.samples)
            self._counting -= 1
            self._idle.notify_all()

    def total(self, ignore: Callable[[Labels], bool] = lambda _: False) -> int:
        self.drain()
        return sum(t.samples for labels, t in self.series.items() if not ignore(labels))

    def check(self, expected: Callable[[Labels], Tally | None],
              ignore: Callable[[Labels], bool] = lambda _: False) -> list[str]:
        """Differences from `expected` (labels -> the tally every sample once gives, or
        None for a series that must not exist), but for the series `ignore` names: empty
        when exact."""
        self.drain()
        problems = []
        for labels, got in self.series.items():
            if ignore(labels):
                continue
            want = expected(labels)
            if want is None:
                problems.append(f"unexpected series {dict(labels)}")
            elif (got.samples, got.ts_sum, got.ts_sq) != (want.samples, want.ts_sum,
                                                          want.ts_sq) \
                    or abs(got.value_sum - want.value_sum) > 1e-6 * max(1.0, want.value_sum):
                problems.append(f"{dict(labels).get('__name__')} of "
                                f"{dict(labels).get('load_balancer_name')}: got {got}, "
                                f"want {want}")
        return problems

    def reset(self) -> None:
        with self._lock:
            self.series.clear()
            self.requests = 0
            self.first_at = None


class _Handler(BaseHTTPRequestHandler):
    owner: CountingReceiver
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:  # noqa: N802
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.owner.arrived()
        self.send_response(204)
        self.send_header("Content-Length", "0")
        self.end_headers()
        self.wfile.flush()
        self.owner.take(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass
