"""The checkpoint document: encode / decode / merge (no Kubernetes involved)."""

from __future__ import annotations

import json
import random

import pytest

from lbscrape.core.checkpoint import DATA_KEY, FORMAT, decode, encode, merge
from lbscrape.core.errors import CheckpointError

T0 = 1_795_392_000  # 2026-11-23T00:00:00Z
WHERE = "monitoring/lbscrape-checkpoint"
ENDS = {
    "app/k8s-shop-web-0123456789/50dc6c495c0c9188": T0,
    "net/k8s-shop-db-0123456789/73e2d6bc24d8a067": T0 + 3600,
    "app/a-first/0000000000000001": T0 - 86400 + 60,
}


def test_encode_is_deterministic_and_sorted():
    text = encode(ENDS)
    reordered = dict(reversed(list(ENDS.items())))
    assert encode(reordered) == text  # byte-identical whatever the insertion order
    assert encode(dict(ENDS)) == text
    key_orders: list[list[str]] = []

    def hook(pairs):
        key_orders.append([k for k, _ in pairs])
        return dict(pairs)

    doc = json.loads(text, object_pairs_hook=hook)
    assert len(key_orders) == 2
    for keys in key_orders:
        assert keys == sorted(keys)
    assert doc["format"] == FORMAT
    assert doc["load_balancers"]["app/k8s-shop-web-0123456789/50dc6c495c0c9188"] == \
        "2026-11-23T00:00:00Z"


def test_encode_empty():
    assert decode(encode({}), WHERE) == {}


def test_round_trip():
    assert decode(encode(ENDS), WHERE) == ENDS


@pytest.mark.parametrize("seed", range(5))
def test_round_trip_random(seed):
    rng = random.Random(seed)
    ends = {f"app/lb-{i}/{rng.getrandbits(64):016x}": T0 + rng.randrange(-10**7, 10**7)
            for i in range(rng.randrange(0, 50))}
    text = encode(ends)
    assert decode(text, WHERE) == ends
    assert encode(decode(text, WHERE)) == text


def test_decode_accepts_offsets():
    text = json.dumps({"format": 1, "load_balancers": {"a": "2026-11-23T01:00:00+01:00"}})
    assert decode(text, WHERE) == {"a": T0}


def check_error(text: str) -> str:
    with pytest.raises(CheckpointError) as e:
        decode(text, WHERE)
    msg = str(e.value)
    assert WHERE in msg, "the message must name the ConfigMap"
    assert f"delete the ConfigMap {WHERE}" in msg, "the message must say how to reset"
    assert "\n" not in msg
    return msg


@pytest.mark.parametrize("version", [2, 0, "1", None])
def test_unknown_format_version(version):
    doc = {"load_balancers": {"a": "2026-11-23T00:00:00Z"}}
    if version is not None:
        doc["format"] = version
    msg = check_error(json.dumps(doc))
    assert repr(version) in msg
    assert "upgrade lbscrape" in msg


@pytest.mark.parametrize("text", [
    "",
    "not json",
    "{",
    "[]",
    "null",
    "42",
    '"a string"',
    '{"format": 1}',
    '{"format": 1, "load_balancers": []}',
    '{"format": 1, "load_balancers": null}',
    '{"format": 1, "load_balancers": {"a": 5}}',
    '{"format": 1, "load_balancers": {"a": null}}',
    '{"format": 1, "load_balancers": {"a": "yesterday"}}',
    '{"format": 1, "load_balancers": {"a": "2026-11-23T00:00:00"}}',  # no time zone
])
def test_garbage(text):
    msg = check_error(text)
    assert DATA_KEY in msg


def test_merge_keeps_the_later_time_per_lb():
    current = {"a": T0, "b": T0 + 600, "c": T0}
    updates = {"a": T0 + 60, "b": T0 + 300, "d": T0 + 1}
    before = (dict(current), dict(updates))
    assert merge(current, updates) == {"a": T0 + 60, "b": T0 + 600, "c": T0, "d": T0 + 1}
    assert (current, updates) == before, "merge must not modify its inputs"


def test_merge_is_order_independent_and_idempotent():
    rng = random.Random(7)
    keys = [f"lb{i}" for i in range(20)]
    x = {k: T0 + rng.randrange(0, 5000) for k in keys if rng.random() < 0.7}
    y = {k: T0 + rng.randrange(0, 5000) for k in keys if rng.random() < 0.7}
    assert merge(x, y) == merge(y, x)
    assert merge(merge(x, y), y) == merge(x, y)
    assert merge(x, {}) == x and merge({}, y) == y
