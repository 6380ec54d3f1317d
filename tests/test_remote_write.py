"""Remote write: the wire format, retries, bisecting, packing and delivery.

A tiny HTTP receiver on 127.0.0.1 decodes every request (snappy block + protobuf) and
answers from a script or a rule, so the tests see exactly what lbscrape sent.
"""

from __future__ import annotations

import base64
import email.utils
import math
import socket
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import snappy

from lbscrape import __version__
from lbscrape.core.config import RemoteWriteSettings
from lbscrape.core.errors import RemoteWriteError
from lbscrape.core.model import LoadBalancer, MetricSpec, Owner, Sample, Series
from lbscrape.prom.delivery import (
    LbBatch,
    Piece,
    count,
    deliver,
    plan_requests,
    slice_batch,
    write_bisecting,
)
from lbscrape.prom.prompb import WriteRequest
from lbscrape.prom.remote_write import Client, encode
from lbscrape.prom.series import build_series, lb_labels

T0 = 1_795_392_000  # 2026-11-23T00:00:00Z


# --- the receiver -----------------------------------------------------------------------


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    series: list[tuple[tuple[tuple[str, str], ...], tuple[tuple[int, float], ...]]]
    status: int

    @property
    def samples(self) -> list[tuple[tuple[tuple[str, str], ...], int, float]]:
        return [(labels, ts, v) for labels, smp in self.series for ts, v in smp]


@dataclass
class Receiver:
    url: str = ""
    script: list[Any] = field(default_factory=list)
    """Answers for the next requests, in order: a status or (status, headers, body)."""
    rule: Any = None
    """When the script is used up: Received -> answer. Default 204."""
    received: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def answer(self, rec: Received) -> tuple[int, dict[str, str], bytes]:
        with self.lock:
            a = self.script.pop(0) if self.script else (self.rule(rec) if self.rule else 204)
        if isinstance(a, int):
            a = (a, {}, b"" if a < 300 else f"status {a}\n".encode())
        return a

    @property
    def accepted(self) -> list[Received]:
        return [r for r in self.received if r.status < 300]

    def stored(self) -> Counter:
        return Counter(s for r in self.accepted for s in r.samples)


class _Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802
        body = self.rfile.read(int(self.headers["Content-Length"]))
        wr = WriteRequest()
        wr.ParseFromString(snappy.uncompress(body))
        series = [(tuple((lb.name, lb.value) for lb in ts.labels),
                   tuple((s.timestamp, s.value) for s in ts.samples)) for ts in wr.timeseries]
        rec = Received(self.path, dict(self.headers.items()), series, 0)
        receiver: Receiver = self.server.receiver  # type: ignore[attr-defined]
        status, headers, text = receiver.answer(rec)
        rec.status = status
        with receiver.lock:
            receiver.received.append(rec)
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(text)))
        self.end_headers()
        self.wfile.write(text)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def receiver():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    rec = Receiver(url=f"http://127.0.0.1:{server.server_address[1]}/api/v1/write")
    server.receiver = rec  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    yield rec
    server.shutdown()
    server.server_close()
    thread.join(5)


class Sleeps(list):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def client(url: str, *, retries: int = 3, backoff: float = 0.5, jitter: float = 0.5,
           max_samples: int = 20_000) -> tuple[Client, Sleeps]:
    sleeps = Sleeps()
    settings = RemoteWriteSettings(url, timeout=5, retries=retries, backoff=backoff,
                                   max_samples_per_request=max_samples)
    return Client(settings, sleep=sleeps, jitter=lambda: jitter), sleeps


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/api/v1/write"


def mk_series(name: str, timestamps, lb: str = "lb0", value=None) -> Series:
    labels = tuple(sorted({"__name__": name, "load_balancer": lb, "cluster": "c"}.items()))
    return Series(labels, tuple(Sample(t * 1000, float(value if value is not None else t % 977))
                                for t in timestamps))


def wire(series) -> Counter:
    """What a receiver should store for `series`: (labels, ts_ms, value) counts."""
    return Counter((s.labels, x.timestamp_ms, x.value) for s in series for x in s.samples)


# --- encoding and headers ---------------------------------------------------------------


def test_body_and_headers(receiver):
    lb = LoadBalancer("arn:aws:elasticloadbalancing:us-east-1:1:loadbalancer/app/web/1",
                      "web", "application", "app/web/1",
                      (Owner("Ingress", "shop", "web", ("web.example",)),))
    specs = [MetricSpec("AWS/ApplicationELB", "RequestCount", "Sum", "alb_request_count_sum"),
             MetricSpec("AWS/ApplicationELB", "TargetResponseTime", "Average",
                        "alb_target_response_time_average")]
    data = {specs[0]: [Sample((T0 + 60) * 1000, 5.0), Sample(T0 * 1000, 3.0)],
            specs[1]: [Sample(T0 * 1000, 0.25)]}
    series = build_series(data, lb_labels(lb, "prod", "us-east-1", [("zz_team", "sre")]))
    c, sleeps = client(receiver.url)
    c.post(encode(series))
    assert c.requests == 1 and sleeps == []
    (rec,) = receiver.received
    assert rec.path == "/api/v1/write"
    h = {k.lower(): v for k, v in rec.headers.items()}
    assert h["content-encoding"] == "snappy"
    assert h["content-type"] == "application/x-protobuf"
    assert h["x-prometheus-remote-write-version"] == "0.1.0"
    assert h["user-agent"] == f"lbscrape/{__version__}"
    assert len(rec.series) == 2
    for labels, samples in rec.series:
        names = [n for n, _ in labels]
        assert names == sorted(names), "labels not sorted by name"
        assert len(names) == len(set(names))
        assert all(v for _, v in labels), "empty label value"
        assert [t for t, _ in samples] == sorted(t for t, _ in samples)
    got = {dict(labels)["__name__"]: (dict(labels), samples) for labels, samples in rec.series}
    labels, samples = got["alb_request_count_sum"]
    assert labels == {"__name__": "alb_request_count_sum", "cluster": "prod",
                      "region": "us-east-1", "load_balancer_name": "web",
                      "load_balancer": "app/web/1", "namespace": "shop", "ingress": "web",
                      "zz_team": "sre"}
    assert samples == ((T0 * 1000, 3.0), ((T0 + 60) * 1000, 5.0))
    assert got["alb_target_response_time_average"][1] == ((T0 * 1000, 0.25),)


def test_encode_round_trip_keeps_values_exactly():
    values = [0.0, -1.5, 1e-300, 123456789.125, math.inf]
    s = Series((("__name__", "x"), ("a", "ü")),
               tuple(Sample(T0 * 1000 + i, v) for i, v in enumerate(values)))
    wr = WriteRequest()
    wr.ParseFromString(snappy.uncompress(encode([s])))
    (ts,) = wr.timeseries
    assert [(lb.name, lb.value) for lb in ts.labels] == [("__name__", "x"), ("a", "ü")]
    assert [(x.timestamp, x.value) for x in ts.samples] == [
        (T0 * 1000 + i, v) for i, v in enumerate(values)]


# --- retries ----------------------------------------------------------------------------


@pytest.mark.parametrize("status", [500, 502, 503, 429])
def test_retryable_status_is_retried_with_backoff(receiver, status):
    receiver.script = [status, status, 204]
    c, sleeps = client(receiver.url, retries=3, backoff=0.5, jitter=0.5)
    c.post(encode([mk_series("m", [T0])]))
    assert [r.status for r in receiver.received] == [status, status, 204]
    assert c.requests == 3
    assert sleeps == [0.5, 1.0]  # backoff * 2**attempt * (0.5 + jitter)


def test_jitter_scales_the_delay(receiver):
    receiver.script = [503, 503, 503, 204]
    c, sleeps = client(receiver.url, retries=3, backoff=1.0, jitter=0.0)
    c.post(encode([mk_series("m", [T0])]))
    assert sleeps == [0.5, 1.0, 2.0]


def test_delay_is_capped(receiver):
    receiver.script = [503] * 4 + [204]
    c, sleeps = client(receiver.url, retries=5, backoff=10.0, jitter=0.99)
    c.post(encode([mk_series("m", [T0])]))
    assert len(sleeps) == 4
    assert max(sleeps) <= 30.0 and sleeps[-1] == 30.0


@pytest.mark.parametrize(("status", "retry_after", "delay"), [
    (503, "7", 7.0),
    (429, "3", 3.0),
    (429, "2.5", 2.5),
    (503, "0", 0.5),        # shorter than the backoff: the backoff wins
    (429, "3600", 30.0),    # capped
    (503, "soon", 0.5),     # unreadable: ignored
])
def test_retry_after_is_honoured(receiver, status, retry_after, delay):
    receiver.script = [(status, {"Retry-After": retry_after}, b"slow down"), 204]
    c, sleeps = client(receiver.url, retries=3, backoff=0.5, jitter=0.5)
    c.post(encode([mk_series("m", [T0])]))
    assert sleeps == [delay]
    assert len(receiver.accepted) == 1


def test_retry_after_http_date(receiver):
    when = email.utils.formatdate(time.time() + 12, usegmt=True)
    receiver.script = [(503, {"Retry-After": when}, b""), 204]
    c, sleeps = client(receiver.url, retries=3, backoff=0.5, jitter=0.5)
    c.post(encode([mk_series("m", [T0])]))
    (delay,) = sleeps
    assert 9.0 <= delay <= 12.5


def test_retries_exhausted_raises_retryable_error(receiver):
    receiver.script = [(503, {}, b"TSDB is overloaded\n")] * 3
    c, sleeps = client(receiver.url, retries=2)
    with pytest.raises(RemoteWriteError) as e:
        c.post(encode([mk_series("m", [T0])]))
    assert e.value.retryable is True
    assert e.value.status == 503
    assert "3 attempts" in str(e.value) and "TSDB is overloaded" in str(e.value)
    assert len(receiver.received) == 3
    assert sleeps == [0.5, 1.0]


def test_connection_refused_is_retried():
    c, sleeps = client(closed_port_url(), retries=2)
    with pytest.raises(RemoteWriteError) as e:
        c.post(encode([mk_series("m", [T0])]))
    assert e.value.retryable is True
    assert e.value.status is None
    assert "connection" in str(e.value)
    assert c.requests == 3
    assert sleeps == [0.5, 1.0]


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 413])
def test_client_errors_are_not_retried(receiver, status):
    receiver.script = [(status, {"Retry-After": "1"}, b"out of order sample\n")]
    c, sleeps = client(receiver.url, retries=3)
    with pytest.raises(RemoteWriteError) as e:
        c.post(encode([mk_series("m", [T0])]))
    assert e.value.retryable is False
    assert e.value.status == status
    assert f"HTTP {status}" in str(e.value)
    assert "out of order sample" in str(e.value)
    assert len(receiver.received) == 1
    assert sleeps == []


def test_html_error_body_gets_a_hint(receiver):
    receiver.script = [(404, {"Content-Type": "text/html"},
                        b"<!DOCTYPE html><html><body>Not here</body></html>")]
    c, _ = client(receiver.url)
    with pytest.raises(RemoteWriteError) as e:
        c.post(encode([mk_series("m", [T0])]))
    assert "api/v1/write" in str(e.value)
    assert "<html" not in str(e.value)


def test_an_html_page_with_200_is_not_an_acceptance(receiver):
    receiver.script = [(200, {"Content-Type": "text/html; charset=utf-8"},
                        b"<!DOCTYPE html><html><body>Sign in</body></html>")]
    c, sleeps = client(receiver.url)
    with pytest.raises(RemoteWriteError) as e:
        c.post(encode([mk_series("m", [T0])]))
    assert "answered HTTP 200 with an HTML page" in str(e.value)
    assert not e.value.retryable and not e.value.sample
    assert len(receiver.received) == 1 and sleeps == []


@pytest.mark.parametrize(("userinfo", "cred"), [
    ("alice:s3cr3t", b"alice:s3cr3t"),
    ("alice:p%40ss%3Aword", b"alice:p@ss:word"),
    ("token", b"token:"),
])
def test_userinfo_becomes_basic_auth(receiver, userinfo, cred):
    url = receiver.url.replace("http://", f"http://{userinfo}@")
    c, _ = client(url, retries=0)
    c.post(encode([mk_series("m", [T0])]))
    (rec,) = receiver.received
    h = {k.lower(): v for k, v in rec.headers.items()}
    assert h["authorization"] == "Basic " + base64.b64encode(cred).decode()
    assert h["host"].startswith("127.0.0.1:")
    assert rec.path == "/api/v1/write"


def test_userinfo_is_not_in_rejection_messages(receiver):
    receiver.script = [(401, {}, b"bad credentials\n")]
    c, _ = client(receiver.url.replace("http://", "http://alice:s3cr3t@"), retries=0)
    with pytest.raises(RemoteWriteError) as e:
        c.post(encode([mk_series("m", [T0])]))
    assert "s3cr3t" not in str(e.value) and "alice" not in str(e.value)
    assert "***@127.0.0.1" in str(e.value)


def test_userinfo_is_not_in_error_messages():
    c, _ = client(closed_port_url().replace("http://", "http://alice:s3cr3t@"), retries=0)
    with pytest.raises(Exception) as e:  # noqa: PT011 - any error, as long as it is clean
        c.post(encode([mk_series("m", [T0])]))
    assert "s3cr3t" not in str(e.value)


# --- bisecting --------------------------------------------------------------------------


def poison_rule(poisoned):
    """400 if the request carries any poisoned (labels, ts_ms), else 204."""
    def rule(rec: Received):
        if any((labels, ts) in poisoned for labels, ts, _ in rec.samples):
            return (400, {}, b"label value too long: invalid sample\n")
        return 204
    return rule


def sample_order_ok(receiver) -> bool:
    """Every series was sent oldest first over the accepted requests."""
    last: dict = {}
    for r in receiver.accepted:
        for labels, ts, _ in r.samples:
            if ts <= last.get(labels, -1):
                return False
            last[labels] = ts
    return True


def many_series(n_series=6, n_ts=40):
    return [mk_series(f"metric_{i}", [T0 + 60 * k for k in range(n_ts)]) for i in range(n_series)]


def test_bisect_isolates_a_poisoned_timestamp(receiver):
    series = many_series()
    bad_ts = (T0 + 60 * 17) * 1000
    poisoned = {(s.labels, bad_ts) for s in series}
    receiver.rule = poison_rule(poisoned)
    c, _ = client(receiver.url)
    rejected = write_bisecting(c, series)
    assert {(r.labels, r.timestamp_ms) for r in rejected} == poisoned
    assert len(rejected) == len(poisoned)
    assert all("invalid sample" in r.reason for r in rejected)
    expected = Counter({k: v for k, v in wire(series).items() if (k[0], k[1]) not in poisoned})
    assert receiver.stored() == expected  # every other sample exactly once
    assert max(receiver.stored().values()) == 1
    assert sample_order_ok(receiver)


@pytest.mark.parametrize("seed", range(4))
def test_bisect_isolates_scattered_bad_samples(receiver, seed):
    import random
    rng = random.Random(seed)
    series = many_series(n_series=rng.randrange(1, 9), n_ts=rng.randrange(1, 60))
    all_keys = [(s.labels, x.timestamp_ms) for s in series for x in s.samples]
    poisoned = set(rng.sample(all_keys, k=min(len(all_keys), rng.randrange(1, 5))))
    receiver.rule = poison_rule(poisoned)
    c, _ = client(receiver.url)
    rejected = write_bisecting(c, series)
    assert sorted((r.labels, r.timestamp_ms) for r in rejected) == sorted(poisoned)
    expected = Counter({k: v for k, v in wire(series).items() if (k[0], k[1]) not in poisoned})
    assert receiver.stored() == expected
    assert sample_order_ok(receiver)
    # Bisecting is logarithmic, not one request per sample.
    n = len(all_keys)
    assert len(receiver.received) <= 1 + 2 * len(poisoned) * (math.ceil(math.log2(n)) + 1)


def test_bisect_without_rejection_is_one_request(receiver):
    c, _ = client(receiver.url)
    assert write_bisecting(c, many_series()) == []
    assert len(receiver.received) == 1
    assert write_bisecting(c, []) == []
    assert len(receiver.received) == 1


def test_413_is_split_until_it_fits(receiver):
    series = many_series(n_series=5, n_ts=30)  # 150 samples
    receiver.rule = lambda rec: 413 if len(rec.samples) > 40 else 204
    c, _ = client(receiver.url)
    assert write_bisecting(c, series) == []
    assert receiver.stored() == wire(series)
    assert all(len(r.samples) <= 40 for r in receiver.accepted)
    assert sample_order_ok(receiver)


def test_bisect_does_not_swallow_other_errors(receiver):
    series = many_series(n_series=2, n_ts=8)
    receiver.script = [400, 401]
    c, _ = client(receiver.url)
    with pytest.raises(RemoteWriteError) as e:
        write_bisecting(c, series)
    assert e.value.status == 401


# --- slicing and packing ----------------------------------------------------------------


def big_batch(lb="big", n_series=3, n_ts=100, end=None, sparse=False) -> LbBatch:
    series = []
    for i in range(n_series):
        ts = [T0 + 60 * k for k in range(n_ts) if not (sparse and (k + i) % (i + 2) == 0)]
        series.append(mk_series(f"metric_{i}", ts, lb=lb))
    end = end if end is not None else T0 + 60 * n_ts
    return LbBatch(lb, tuple(series), end)


def check_pieces(batch: LbBatch, pieces: list[Piece], max_samples: int) -> None:
    assert all(p.lb_key == batch.lb_key for p in pieces)
    assert Counter(wire(s for p in pieces for s in p.series)) == wire(batch.series)
    lower = None
    for p in pieces:
        assert 0 < count(p.series) <= max_samples
        assert all(s.samples for s in p.series), "empty series in a piece"
        for s in p.series:
            ts = [x.timestamp_ms for x in s.samples]
            assert ts == sorted(ts) and len(ts) == len(set(ts))
            assert all(t < p.through * 1000 for t in ts)
            if lower is not None:
                assert all(t >= lower * 1000 for t in ts), "slice not after the previous one"
        lower = p.through
    assert pieces[-1].through == batch.end
    throughs = [p.through for p in pieces]
    assert throughs == sorted(throughs) and len(set(throughs)) == len(throughs)
    # `through` of a non-last piece is where the next piece starts: no gap, no overlap.
    for p, nxt in zip(pieces, pieces[1:], strict=False):
        first_next = min(x.timestamp_ms for s in nxt.series for x in s.samples)
        assert p.through * 1000 == first_next


def test_small_batch_is_one_piece_through_its_end():
    b = big_batch(n_ts=10, end=T0 + 3600)
    (p,) = slice_batch(b, 100)
    assert p == Piece(b.lb_key, b.series, T0 + 3600)


@pytest.mark.parametrize(("n_series", "n_ts", "max_samples", "sparse"), [
    (3, 100, 50, False),
    (3, 100, 48, False),
    (14, 60, 100, False),
    (5, 200, 37, True),
    (1, 10, 1, False),
])
def test_big_batch_is_sliced_in_time(n_series, n_ts, max_samples, sparse):
    b = big_batch(n_series=n_series, n_ts=n_ts, sparse=sparse)
    pieces = slice_batch(b, max_samples)
    assert len(pieces) >= math.ceil(count(b.series) / max_samples)
    check_pieces(b, pieces, max_samples)
    # Whole timestamps: a timestamp is never split across pieces.
    seen: dict[int, int] = {}
    for i, p in enumerate(pieces):
        for s in p.series:
            for x in s.samples:
                assert seen.setdefault(x.timestamp_ms, i) == i


def test_plan_requests_bounds_and_order():
    max_samples = 200
    batches = [big_batch(f"small{i}", n_series=4, n_ts=10) for i in range(7)]  # 40 each
    batches.insert(3, big_batch("big", n_series=3, n_ts=150))  # 450: sliced
    batches.append(big_batch("exact", n_series=4, n_ts=50))  # exactly 200
    requests = plan_requests(batches, max_samples)
    for req in requests:
        assert 0 < sum(count(p.series) for p in req) <= max_samples
        assert len({p.lb_key for p in req}) == len(req), "an LB twice in one request"
    pieces_by_lb: dict[str, list[Piece]] = {}
    for req in requests:
        for p in req:
            pieces_by_lb.setdefault(p.lb_key, []).append(p)
    assert set(pieces_by_lb) == {b.lb_key for b in batches}
    for b in batches:
        pieces = pieces_by_lb[b.lb_key]
        check_pieces(b, pieces, max_samples)
        if count(b.series) <= max_samples:
            assert len(pieces) == 1, "a small LB was split"
    assert len(pieces_by_lb["big"]) == 3
    # Small LBs are packed: 7 x 40 samples fit in 2 requests, plus 3 for big, 1 for exact.
    assert len(requests) == 6


# --- delivery ---------------------------------------------------------------------------


def lb_of(rec_labels) -> str:
    return dict(rec_labels)["load_balancer"]


def test_deliver_all_ok(receiver):
    batches = [big_batch(f"lb{i}", n_series=2, n_ts=5, end=T0 + 600 + i) for i in range(4)]
    c, _ = client(receiver.url)
    out = deliver(c, plan_requests(batches, 20))
    assert out.failed == {}
    assert out.through == {b.lb_key: b.end for b in batches}
    assert out.samples_written == 40
    assert receiver.stored() == wire(s for b in batches for s in b.series)


def test_deliver_stops_after_a_retryable_failure(receiver):
    batches = [big_batch(f"lb{i}", n_series=2, n_ts=5, end=T0 + 600) for i in range(4)]
    requests = plan_requests(batches, 10)  # one LB per request
    assert [[p.lb_key for p in r] for r in requests] == [["lb0"], ["lb1"], ["lb2"], ["lb3"]]
    receiver.script = [204, 503, 503]
    c, sleeps = client(receiver.url, retries=1)
    out = deliver(c, requests)
    assert out.through == {"lb0": T0 + 600}
    assert set(out.failed) == {"lb1", "lb2", "lb3"}
    assert "503" in out.failed["lb1"]
    assert out.failed["lb2"].startswith("not sent") and out.failed["lb3"].startswith("not sent")
    assert len(receiver.received) == 3  # lb0, lb1 twice; lb2 and lb3 never sent
    assert {lb_of(labels) for r in receiver.received for labels, _ in r.series} == {"lb0", "lb1"}
    assert out.samples_written == 10


def test_deliver_never_sends_later_slices_after_a_failed_one(receiver):
    big = big_batch("big", n_series=2, n_ts=30, end=T0 + 3600)  # 60 samples
    small = big_batch("small", n_series=2, n_ts=3, end=T0 + 1800)
    requests = plan_requests([big, small], 20)
    big_pieces = [p for r in requests for p in r if p.lb_key == "big"]
    assert len(big_pieces) == 3
    second = {x.timestamp_ms for s in big_pieces[1].series for x in s.samples}
    # A permanent, non-splittable refusal of the second slice.
    receiver.rule = lambda rec: 403 if any(ts in second for _, ts, _ in rec.samples) else 204
    c, _ = client(receiver.url)
    out = deliver(c, requests)
    assert out.through["big"] == big_pieces[0].through  # the accepted prefix only
    assert "403" in out.failed["big"]
    third = {x.timestamp_ms for s in big_pieces[2].series for x in s.samples}
    sent = {ts for r in receiver.received for labels, ts, _ in r.samples if lb_of(labels) == "big"}
    assert not sent & third, "a later slice was sent after an earlier one failed"
    # The endpoint refuses us: later requests are not sent; "small" keeps its checkpoint.
    assert "small" not in out.through and out.failed["small"].startswith("not sent:")


def test_deliver_after_retryable_slice_failure_sends_nothing_more(receiver):
    big = big_batch("big", n_series=2, n_ts=30, end=T0 + 3600)
    small = big_batch("small", n_series=2, n_ts=3, end=T0 + 1800)
    requests = plan_requests([big, small], 20)
    receiver.script = [204, 503]
    c, _ = client(receiver.url, retries=0)
    out = deliver(c, requests)
    first = [p for r in requests for p in r if p.lb_key == "big"][0]
    assert out.through == {"big": first.through}
    assert set(out.failed) == {"big", "small"}
    assert len(receiver.received) == 2


def test_deliver_reports_rejected_samples_and_still_advances(receiver):
    batches = [big_batch(f"lb{i}", n_series=2, n_ts=5, end=T0 + 600) for i in range(3)]
    victim = batches[1].series[0]
    poisoned = {(victim.labels, victim.samples[2].timestamp_ms)}
    receiver.rule = poison_rule(poisoned)
    c, _ = client(receiver.url)
    out = deliver(c, plan_requests(batches, 1000))
    assert [(r.labels, r.timestamp_ms) for r in out.rejected] == list(poisoned)
    assert out.failed == {}
    assert out.through == {b.lb_key: b.end for b in batches}
    assert out.samples_written == 29
    assert sum(receiver.stored().values()) == 29


# --- endpoints that do not speak HTTP properly ------------------------------------------


@pytest.fixture
def raw_server():
    """A loopback TCP server that reads the request and answers with fixed raw bytes."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    sock.settimeout(0.05)
    state = {"reply": b"", "stop": False, "connections": 0}

    def serve():
        while not state["stop"]:
            try:
                conn, _ = sock.accept()
            except (TimeoutError, OSError):
                continue
            state["connections"] += 1
            with conn:
                conn.settimeout(2)
                try:
                    # Read the whole request (headers and body) so that closing the
                    # socket sends a FIN, not a reset, and the client sees the reply.
                    data = b""
                    while b"\r\n\r\n" not in data:
                        chunk = conn.recv(65536)
                        if not chunk:
                            break
                        data += chunk
                    head, _, body = data.partition(b"\r\n\r\n")
                    length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                                   if line.lower().startswith(b"content-length:")), 0)
                    while len(body) < length:
                        chunk = conn.recv(65536)
                        if not chunk:
                            break
                        body += chunk
                    conn.sendall(state["reply"])
                    conn.shutdown(socket.SHUT_WR)
                except OSError:
                    pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    state["url"] = f"http://127.0.0.1:{sock.getsockname()[1]}/api/v1/write"
    yield state
    state["stop"] = True
    thread.join(2)
    sock.close()


def test_non_http_endpoint_is_a_remote_write_error(raw_server):
    raw_server["reply"] = b"SSH-2.0-OpenSSH_9.2p1\r\n"
    c, sleeps = client(raw_server["url"], retries=1)
    with pytest.raises(RemoteWriteError):
        c.post(encode([mk_series("m", [T0])]))


def test_truncated_response_is_a_remote_write_error(raw_server):
    raw_server["reply"] = (b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\nConnection: close\r\n\r\n"
                           b"short")
    c, sleeps = client(raw_server["url"], retries=1)
    with pytest.raises(RemoteWriteError):
        c.post(encode([mk_series("m", [T0])]))
