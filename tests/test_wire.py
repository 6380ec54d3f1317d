"""The hand-written WriteRequest encoder (lbscrape.prom.wire) against the protobuf schema.

Every shape is encoded both ways: by wire.write_request, and by the protobuf runtime from
lbscrape.prom.prompb (how lbscrape encoded before). Our bytes are decoded with the schema
and re-serialized canonically: equal bytes mean the same message, bit for bit in every
double (NaN included, where message == would not do). Then a real Prometheus decodes it.
"""

from __future__ import annotations

import math
import random
import struct
import time

import pytest
import snappy

from lbscrape.core.config import RemoteWriteSettings
from lbscrape.core.model import Sample, Series
from lbscrape.prom import wire
from lbscrape.prom.prompb import WriteRequest
from lbscrape.prom.remote_write import Client, encode

T0 = 1_795_392_000_000  # ms
NAN_PAYLOAD = struct.unpack("<d", struct.pack("<Q", 0x7FF0000000000002))[0]  # a staleness NaN


def reference(series: list[Series]) -> bytes:
    """The WriteRequest as the protobuf runtime builds it."""
    req = WriteRequest()
    for s in series:
        ts = req.timeseries.add()
        for name, value in s.labels:
            ts.labels.add(name=name, value=value)
        for x in s.samples:
            ts.samples.add(value=x.value, timestamp=x.timestamp_ms)
    return bytes(req.SerializeToString(deterministic=True))


def decoded(raw: bytes) -> bytes:
    req = WriteRequest()
    req.ParseFromString(raw)
    return bytes(req.SerializeToString(deterministic=True))


def check(series: list[Series]) -> None:
    ours = wire.write_request(series)
    assert decoded(ours) == reference(series)
    # A series' samples are written one by one the first time its timestamps are seen, by
    # a packer made the second time, and by that packer from then on: all the same bytes.
    assert wire.write_request(series) == ours
    assert wire.write_request(series) == ours
    # Only a +0.0 value and a 0 timestamp, which proto3 leaves out, may differ in bytes.
    if not any(x.timestamp_ms == 0 or (x.value == 0 and math.copysign(1, x.value) > 0)
               for s in series for x in s.samples):
        assert ours == reference(series)


def s(labels: dict[str, str], *samples: tuple[int, float]) -> Series:
    return Series(tuple(sorted(labels.items())), tuple(Sample(t, v) for t, v in samples))


LB = {"__name__": "alb_request_count_sum", "cluster": "prod", "load_balancer": "app/web/0a1b",
      "load_balancer_name": "web", "namespace": "shop", "ingress": "web", "region": "eu-west-1"}

SHAPES = {
    "no series": [],
    "a series without samples": [s(LB)],
    "a series without labels": [Series((), (Sample(T0, 1.0),))],
    "one sample": [s(LB, (T0, 42.0))],
    "ten samples": [s(LB, *((T0 + 60_000 * i, float(i)) for i in range(10)))],
    "special values": [s(LB, *((T0 + i, v) for i, v in enumerate(
        [math.nan, NAN_PAYLOAD, math.inf, -math.inf, -0.0, 0.0, 5e-324, -1.7976931348623157e308,
         1e-300, 123456789.125, 2.0 ** 53 + 1, -1.0])))],
    "each special value alone": [s({**LB, "__name__": f"m{i}"}, (T0, v)) for i, v in
                                 enumerate([math.nan, math.inf, -math.inf, -0.0, 0.0])],
    "edge timestamps": [s(LB, *((t, 1.5) for t in
                                [-(1 << 63), -1, 0, 1, 127, 128, 16383, 16384, (1 << 35),
                                 T0, (1 << 42), (1 << 63) - 1]))],
    "negative timestamp alone": [s(LB, (-60_000, 2.0))],
    "unicode labels": [s({**LB, "team": "zürich-ü", "owner": "山田 太郎", "emoji": "🚀🔥",
                          "rtl": "שלום"}, (T0, 1.0), (T0 + 60_000, 2.0))],
    "empty label name and value": [Series((("", "x"), ("a", ""), ("b", "y")),
                                          (Sample(T0, 3.0),))],
    "labels of 127, 128 and 300 bytes": [s({**LB, "a": "x" * 127, "b": "y" * 128,
                                            "c": "é" * 150}, (T0, 1.0))],
    "a name that sorts before __name__": [s({**LB, "Env": "prod"}, (T0, 1.0), (T0 + 1, 2.0))],
    "a series over 16 KiB": [s(LB, *((T0 + 60_000 * i, i / 7) for i in range(2_000)))],
    "irregular timestamps": [s(LB, (T0, 1.0), (T0 + 1, 2.0), (T0 + 60_000, 3.0),
                               (T0 + 10 ** 9, 4.0))],
    "many series of one load balancer": [
        s({**LB, "__name__": f"alb_m{i}_sum"}, *((T0 + 60_000 * j, float(i * j))
                                                for j in range(i % 4)))
        for i in range(40)],
}


@pytest.mark.parametrize("name", list(SHAPES))
def test_decodes_to_what_protobuf_builds(name):
    check(SHAPES[name])


def test_random_shapes_decode_to_what_protobuf_builds():
    rng = random.Random(15)
    alphabet = "abcxyz_-/.:é山🚀 "
    specials = [math.nan, math.inf, -math.inf, -0.0, 0.0]
    for _ in range(300):
        series = []
        for _ in range(rng.randrange(0, 6)):
            labels = {rng.choice(["__name__", "a", "B", "cluster", "zz"]):
                      "".join(rng.choices(alphabet, k=rng.randrange(0, 200)))
                      for _ in range(rng.randrange(0, 6))}
            t = rng.randrange(-(1 << 40), 1 << 44)
            samples = []
            for _ in range(rng.randrange(0, 30)):
                t += rng.choice([1, 60_000, rng.randrange(1, 1 << 30)])
                v = rng.choice(specials) if rng.random() < 0.2 else rng.uniform(-1e12, 1e12)
                samples.append((min(t, (1 << 63) - 1), v))
            series.append(s(labels, *samples))
        check(series)


def test_a_timestamp_outside_int64_is_refused_as_protobuf_does():
    for t in (1 << 63, -(1 << 63) - 1):
        with pytest.raises(ValueError):
            wire.write_request([s(LB, (t, 1.0))])
        with pytest.raises(ValueError):
            reference([s(LB, (t, 1.0))])


def test_full_caches_are_cleared_and_still_encode_right(monkeypatch):
    # Limits lowered so that the test crosses them; the encoding must not depend on them.
    monkeypatch.setattr(wire, "MAX_LABELS", 5)
    monkeypatch.setattr(wire, "MAX_LAYOUT_SAMPLES", 7)
    for i in range(30):
        series = [s({**LB, "load_balancer_name": f"lb{i}-{j}"},
                    *((T0 + 60_000 * (i + k), float(k)) for k in range(j % 5)))
                  for j in range(6)]
        check(series)
    assert len(wire._LABELS) <= 5 + 6 * len(LB) and wire._LAYOUTS.samples <= 7 + 6 * 5


def test_prometheus_stores_exactly_what_was_encoded(prometheus):
    now_ms = int(time.time()) // 60 * 60_000
    start = now_ms - 50 * 60_000
    values = [math.inf, -math.inf, -0.0, 0.0, 1e-300, 123456789.125, -2.5]
    series = [
        s({"__name__": "wire_special", "team": "zürich", "owner": "山田 太郎 🚀"},
          *((start + 60_000 * i, v) for i, v in enumerate(values))),
        s({"__name__": "wire_nan", "Env": "prod"}, (start, math.nan)),
        s({"__name__": "wire_long", "a": "x" * 300},
          *((start + 1_000 * i, i / 7) for i in range(2_000))),
        s({"__name__": "wire_empty"}),
    ]
    Client(RemoteWriteSettings(prometheus.write_url)).post(encode(series))
    got = prometheus.raw('{__name__=~"wire_.*"}')
    assert got[(("__name__", "wire_special"), ("owner", "山田 太郎 🚀"), ("team", "zürich"))] == [
        (start + 60_000 * i, v) for i, v in enumerate(values)]
    (nan,) = got[(("Env", "prod"), ("__name__", "wire_nan"))]
    assert nan[0] == start and math.isnan(nan[1])
    assert got[(("__name__", "wire_long"), ("a", "x" * 300))] == [
        (start + 1_000 * i, i / 7) for i in range(2_000)]
    assert len(got) == 3  # a series without samples stores nothing


def test_encode_is_snappy_block_of_the_request():
    series = SHAPES["ten samples"]
    assert decoded(snappy.uncompress(encode(series))) == reference(series)


@pytest.mark.parametrize("size", [127, 128, 16383, 16384, 2 ** 21])
def test_series_lengths_around_varint_steps(size):
    # A series whose TimeSeries message is exactly `size` bytes: its length prefix is where
    # varints grow a byte.
    k = next(k for k in range(size, size - 12, -1)
             if len(wire.label_field("a", "x" * k)) == size)
    check([Series((("a", "x" * k),), ())])
