"""The remote-write 1.0 WriteRequest in protobuf wire format, written directly.

The four messages (prometheus/prompb types.proto and remote.proto, as lbscrape.prom.prompb
defines them):

    WriteRequest { repeated TimeSeries timeseries = 1; }
    TimeSeries   { repeated Label labels = 1; repeated Sample samples = 2; }
    Label        { string name = 1; string value = 2; }
    Sample       { double value = 1; int64 timestamp = 2; }

Building them through the protobuf runtime costs a Python call per field. Here a series
costs two cached byte strings for its labels (its __name__, and the rest, which it shares
with the other series of its load balancer) and one struct.pack of all its samples: every
Sample is written with both of its fields, so the bytes around its value depend only on
its timestamp. That is the one difference from protobuf's own bytes: proto3 leaves out a
value of +0.0 and a timestamp of 0, this writes them; a decoder reads the same message.

Pure: the caches below only remember encodings already computed (label pairs and sets
repeat across series and requests, timestamps across series), and are bounded.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from operator import attrgetter
from typing import Any

from lbscrape.core.model import Sample, Series

_TIMESTAMP = attrgetter("timestamp_ms")
_VALUE = attrgetter("value")
_INT64_MIN, _INT64_END = -(1 << 63), 1 << 63
_PACK_DOUBLE = struct.Struct("<d").pack
# Field tags: (number << 3) | wire type (0 varint, 1 fixed64, 2 length-delimited).
_TIMESERIES = b"\x0a"  # WriteRequest.timeseries
_LABEL = b"\x0a"  # TimeSeries.labels; also Label.name
_SAMPLES_TAG = b"\x12"  # TimeSeries.samples; also Label.value
_VALUE_TAG = b"\x09"  # Sample.value
_TS_TAG = b"\x10"  # Sample.timestamp
# Beyond these, the caches are cleared rather than grown (about 15 MiB at most).
MAX_LABELS = 50_000
MAX_LAYOUT_SAMPLES = 20_000


def varint(n: int) -> bytes:
    """Base-128 varint; a negative int64 as its 64-bit two's complement (10 bytes)."""
    if n < 0:
        n += 1 << 64
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


_SHORT = [_TIMESERIES + varint(n) for n in range(1 << 14)]  # a series of under 16 KiB


def _length_delimited(tag: bytes, body: bytes) -> bytes:
    return tag + varint(len(body)) + body


def label_field(name: str, value: str) -> bytes:
    """One TimeSeries.labels entry; an empty string is left out, as protobuf does."""
    body = b""
    if name:
        body += _length_delimited(_LABEL, name.encode())
    if value:
        body += _length_delimited(_SAMPLES_TAG, value.encode())
    return _length_delimited(_LABEL, body)


def sample_parts(timestamp_ms: int) -> tuple[bytes, bytes]:
    """What comes before and after the 8 bytes of a Sample's value in its
    TimeSeries.samples entry: the entry's tag and length, the value's tag; the
    timestamp's tag and varint."""
    if not _INT64_MIN <= timestamp_ms < _INT64_END:
        raise ValueError(f"timestamp {timestamp_ms} is outside int64")
    ts = varint(timestamp_ms)
    return _SAMPLES_TAG + bytes([10 + len(ts)]) + _VALUE_TAG, _TS_TAG + ts


class _Labels(dict[tuple[str, str], bytes]):
    def __missing__(self, pair: tuple[str, str]) -> bytes:
        self[pair] = out = label_field(*pair)
        return out


class _Rests(dict[tuple[tuple[str, str], ...], bytes]):
    """Labels after __name__ -> their bytes. The series of one load balancer (or target
    group) differ only in __name__, which sorts first (a label name starts with a letter
    or _, and no lbscrape label name starts with a capital), so this hits for all but the
    first series of each: one lookup instead of one per label."""

    def __missing__(self, rest: tuple[tuple[str, str], ...]) -> bytes:
        self[rest] = out = b"".join(map(_LABELS.__getitem__, rest))
        return out


class _Stamps(dict[int, tuple[bytes, bytes]]):
    def __missing__(self, ts: int) -> tuple[bytes, bytes]:
        self[ts] = out = sample_parts(ts)
        return out


Layout = tuple[Callable[..., bytes], list[Any]]


class _Layouts(dict[tuple[int, ...], Layout]):
    """Timestamps of a series -> a struct packer of all its samples and its argument
    list, the bytes between the values filled in and a None where each value goes.

    A packer is made the second time a series has these timestamps: making one costs
    more than writing the samples one by one, which is what the first series does."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: set[tuple[int, ...]] = set()
        self.samples = 0

    def clear(self) -> None:
        super().clear()
        self.seen.clear()
        self.samples = 0

    def encode(self, stamps: tuple[int, ...], samples: Sequence[Sample]) -> bytes:
        """The samples' TimeSeries.samples entries, when no packer has been made."""
        self.samples += len(stamps)
        if stamps not in self.seen:
            self.seen.add(stamps)
            parts: list[bytes] = []
            for x in samples:
                head, tail = _STAMPS[x.timestamp_ms]
                parts += (head, _PACK_DOUBLE(x.value), tail)
            return b"".join(parts)
        between = []
        after = b""
        for ts in stamps:
            head, tail = _STAMPS[ts]
            between.append(after + head)
            after = tail
        between.append(after)
        fmt = "<" + "".join(f"{len(b)}sd" for b in between[:-1]) + f"{len(after)}s"
        args: list[Any] = [None] * (2 * len(stamps) + 1)
        args[0::2] = between
        self[stamps] = (struct.Struct(fmt).pack, args)
        args = args.copy()
        args[1::2] = map(_VALUE, samples)
        return self[stamps][0](*args)


_LABELS = _Labels()
_RESTS = _Rests()
_STAMPS = _Stamps()
_LAYOUTS = _Layouts()


def clear_caches() -> None:
    """Forget every remembered encoding (benchmarks measure a fresh process with it)."""
    for cache in (_LABELS, _RESTS, _STAMPS, _LAYOUTS):
        cache.clear()


def write_request(series: Sequence[Series]) -> bytes:
    """The serialized WriteRequest of `series`, in their order."""
    if len(_LABELS) > MAX_LABELS or len(_RESTS) > MAX_LABELS \
            or _LAYOUTS.samples > MAX_LAYOUT_SAMPLES or len(_STAMPS) > MAX_LAYOUT_SAMPLES:
        clear_caches()
    out: list[bytes] = []
    add = out.extend
    names, rests, stamps, layouts = _LABELS, _RESTS, _STAMPS, _LAYOUTS
    pack_double = _PACK_DOUBLE
    join = b"".join
    last: tuple[tuple[str, str], ...] | None = None
    rest = b""
    for s in series:
        labels = s.labels
        if labels and labels[0][0] == "__name__":  # lbscrape's series: see _Rests
            name = names[labels[0]]
            after = labels[1:]
            if after != last:  # consecutive series are mostly of one load balancer
                rest, last = rests[after], after
            size = len(name) + len(rest)
        else:
            name, rest, last = join(map(names.__getitem__, labels)), b"", None
            size = len(name)
        samples = s.samples
        if len(samples) == 1:  # a live run's usual series: one settled minute
            x = samples[0]
            head, tail = stamps[x.timestamp_ms]
            body = head + pack_double(x.value) + tail
        elif samples:
            stamps_of = tuple(map(_TIMESTAMP, samples))
            layout = layouts.get(stamps_of)
            if layout is None:
                body = layouts.encode(stamps_of, samples)
            else:
                pack, template = layout
                args = template.copy()
                args[1::2] = map(_VALUE, samples)
                body = pack(*args)
        else:
            body = b""
        size += len(body)
        add((_SHORT[size] if size < 16384 else _TIMESERIES + varint(size), name, rest, body))
    return join(out)
