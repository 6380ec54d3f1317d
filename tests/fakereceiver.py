"""A remote-write receiver on 127.0.0.1 that stores samples like a TSDB, in memory.

Generic over how a receiver answers a refused sample: all-or-nothing (Prometheus: one
refused sample rolls the whole request back, and the body does not say which) or
partial (Mimir, Cortex: the valid samples are stored, the body names the first refused
one). Per series it keeps the samples and refuses, as Prometheus's in-order head does,
a sample older than the series' newest ("out of order sample") or at the newest's
timestamp with another value ("duplicate sample for timestamp"). Also a plain writer
(`push`) for tests that play another writer of the same series.
"""

from __future__ import annotations

import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler
from typing import Any

import snappy

from lbscrape.prom.prompb import WriteRequest
from tests.loopback import LoopbackServer

Labels = tuple[tuple[str, str], ...]
Decoded = list[tuple[Labels, list[tuple[int, float]]]]


def decode(body: bytes) -> Decoded:
    """A remote-write body: [(labels as sent, [(ts_ms, value)])]."""
    wr = WriteRequest()
    wr.ParseFromString(snappy.uncompress(body))
    return [(tuple((lb.name, lb.value) for lb in ts.labels),
             [(s.timestamp, s.value) for s in ts.samples]) for ts in wr.timeseries]


def encode(series: Iterable[tuple[Labels, Iterable[tuple[int, float]]]]) -> bytes:
    wr = WriteRequest()
    for labels, samples in series:
        ts = wr.timeseries.add()
        for name, value in sorted(labels):
            ts.labels.add(name=name, value=value)
        for t, v in samples:
            ts.samples.add(timestamp=t, value=v)
    return bytes(snappy.compress(wr.SerializeToString()))


def push(url: str, series: Iterable[tuple[Labels, Iterable[tuple[int, float]]]]) -> int:
    """Write `series` as another remote-write client would; returns the HTTP status."""
    req = urllib.request.Request(url, data=encode(series), method="POST", headers={
        "Content-Encoding": "snappy", "Content-Type": "application/x-protobuf",
        "X-Prometheus-Remote-Write-Version": "0.1.0"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return int(r.status)
    except urllib.error.HTTPError as e:
        return e.code


def selector(labels: Labels) -> str:
    """As Prometheus prints a label set (Go's %q quoting of the values)."""
    def q(v: str) -> str:
        return v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return "{" + ", ".join(f'{k}="{q(v)}"' for k, v in sorted(labels)) + "}"


def _rfc3339(ts_ms: int) -> str:
    return datetime.fromtimestamp(ts_ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def mimir_body(reason: str, labels: Labels, ts_ms: int) -> str:
    """How a Mimir ingester names the sample it refused (after the distributor's prefix)."""
    err = {"out of order sample": "the sample has been rejected because another sample with "
           "a more recent timestamp has already been ingested and out-of-order samples are "
           "not allowed (err-mimir-sample-out-of-order)",
           "duplicate sample for timestamp": "the sample has been rejected because another "
           "sample with the same timestamp, but a different value, has already been ingested "
           "(err-mimir-sample-duplicate-timestamp)"}[reason]
    return (f"send data to ingesters: failed pushing to ingester ingester-1: user=anonymous: "
            f"{err}. The affected sample has timestamp {_rfc3339(ts_ms)} and is from series "
            f"{selector(labels)}")


def cortex_body(reason: str, labels: Labels, ts_ms: int) -> str:
    return f"user=fake: err: {reason}. timestamp={_rfc3339(ts_ms)}, series={selector(labels)}"


BODIES: dict[str, Callable[[str, Labels, int], str]] = {"mimir": mimir_body,
                                                       "cortex": cortex_body}


@dataclass
class Received:
    series: Decoded
    status: int


@dataclass
class FakeTsdb(LoopbackServer):
    partial: bool = False
    """True: store the valid samples and name the first refused one (in `body` format)."""
    body: str = "mimir"
    stored: dict[Labels, dict[int, float]] = field(default_factory=dict)
    received: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def handler(self) -> type[BaseHTTPRequestHandler]:
        owner = self

        class Handler(_Handler):
            tsdb = owner

        return Handler

    @property
    def write_url(self) -> str:
        return f"{self.url}/api/v1/push"

    def put(self, labels: Labels, ts_ms: int, value: float) -> None:
        """A sample another writer stored."""
        with self.lock:
            self.stored.setdefault(tuple(sorted(labels)), {})[ts_ms] = value

    def ingest(self, series: Decoded) -> tuple[int, str]:
        with self.lock:
            taken: dict[Labels, dict[int, float]] = {}
            first: tuple[str, Labels, int] | None = None
            for labels, samples in series:
                key = tuple(sorted(labels))
                held = {**self.stored.get(key, {}), **taken.get(key, {})}
                for t, v in samples:
                    newest = max(held, default=None)
                    why = None if newest is None or t > newest else (
                        "out of order sample" if t < newest else
                        None if held[t] == v else "duplicate sample for timestamp")
                    if why:
                        first = first or (why, key, t)
                        continue
                    held[t] = v
                    taken.setdefault(key, {})[t] = v
            if first and not self.partial:
                return 400, first[0] + "\n"
            for key, samples in taken.items():
                self.stored.setdefault(key, {}).update(samples)
            return (400, BODIES[self.body](*first) + "\n") if first else (204, "")


class _Handler(BaseHTTPRequestHandler):
    tsdb: FakeTsdb

    def do_POST(self) -> None:  # noqa: N802
        series = decode(self.rfile.read(int(self.headers["Content-Length"])))
        status, text = self.tsdb.ingest(series)
        with self.tsdb.lock:
            self.tsdb.received.append(Received(series, status))
        body = text.encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass
