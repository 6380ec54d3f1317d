"""Refused samples cost only themselves: delivery against a receiver that stores samples
like a TSDB (tests/fakereceiver.py), all-or-nothing as Prometheus or partial as Mimir.

Every assertion is on what the receiver stored, compared with what it would accept."""

from __future__ import annotations

import math
import random

import pytest

from lbscrape.core.budget import Budget
from lbscrape.core.config import RemoteWriteSettings
from lbscrape.core.model import Sample, Series
from lbscrape.prom.delivery import LbBatch, deliver, plan_requests
from lbscrape.prom.remote_write import Client, named_refusal
from tests.fakereceiver import FakeTsdb, cortex_body, mimir_body

T0 = 1_795_392_000_000  # ms, a whole minute


@pytest.fixture
def tsdb():
    server = FakeTsdb()
    server.start()
    yield server
    server.stop()


def labels(lb: int, i: int) -> tuple[tuple[str, str], ...]:
    return tuple(sorted({"__name__": f"alb_m{i}_sum", "load_balancer": f"app/lb{lb}/1",
                         "load_balancer_name": f"lb{lb}"}.items()))


def batches(n_lbs: int, n_series: int, minutes: int) -> list[LbBatch]:
    return [LbBatch(f"lb{lb}", tuple(
        Series(labels(lb, i), tuple(Sample(T0 + 60_000 * m, float(100 * i + m))
                                    for m in range(minutes)))
        for i in range(n_series)), (T0 + 60_000 * minutes) // 1000) for lb in range(n_lbs)]


def client(url: str, budget: Budget | None = None, max_samples: int = 20_000) -> Client:
    return Client(RemoteWriteSettings(url, timeout=5, retries=0,
                                      max_samples_per_request=max_samples), budget=budget)


def acceptable(held: dict, labels, ts, value) -> bool:
    """What an in-order TSDB holding `held` (labels -> {ts: value}) accepts next."""
    newest = max(held.get(labels, {}), default=None)
    return newest is None or ts > newest or (ts == newest and held[labels][ts] == value)


def expected(bs: list[LbBatch], held: dict) -> tuple[dict, set]:
    """What the receiver ends up holding if every acceptable sample is sent in time order,
    and which samples it refuses."""
    store = {k: dict(v) for k, v in held.items()}
    refused = set()
    for b in bs:
        for s in b.series:
            for x in s.samples:
                if acceptable(store, s.labels, x.timestamp_ms, x.value):
                    store.setdefault(s.labels, {})[x.timestamp_ms] = x.value
                else:
                    refused.add((s.labels, x.timestamp_ms))
    return store, refused


@pytest.mark.parametrize("seed", range(6))
def test_every_acceptable_sample_lands_and_only_proven_refusals_are_given_up(tsdb, seed):
    """All-or-nothing receiver, series holding later samples at random minutes (an
    interrupted run's, another writer's, some with other values)."""
    rng = random.Random(seed)
    bs = batches(rng.randint(1, 6), rng.randint(1, 12), rng.randint(1, 12))
    held: dict = {}
    for b in bs:
        for s in b.series:
            if rng.random() < 0.5:
                x = rng.choice(s.samples)
                value = x.value if rng.random() < 0.7 else -1.0
                tsdb.put(s.labels, x.timestamp_ms, value)
                held.setdefault(s.labels, {})[x.timestamp_ms] = value
    store, refused = expected(bs, held)
    out = deliver(client(tsdb.write_url), plan_requests(bs, rng.choice([50, 20_000])))
    assert out.failed == {}
    assert out.through == {b.lb_key: b.end for b in bs}
    assert tsdb.stored == {k: v for k, v in store.items() if v}
    assert {(r.labels, r.timestamp_ms) for r in out.rejected} == refused
    assert len(out.rejected) == len(refused)
    assert out.samples_written == sum(len(s.samples) for b in bs for s in b.series) - len(refused)


def test_a_repeated_window_costs_about_one_request_per_refused_sample(tsdb):
    """The crash repeat: every series already holds the whole window. Prometheus does not
    say which series it refuses, so each refused sample is proven by a request of its own;
    the last minute (each series' newest, an identical duplicate) is accepted whole."""
    bs = batches(3, 14, 10)
    for b in bs:
        for s in b.series:
            for x in s.samples:
                tsdb.put(s.labels, x.timestamp_ms, x.value)
    c = client(tsdb.write_url)
    out = deliver(c, plan_requests(bs, 20_000))
    refused = 3 * 14 * 9
    assert len(out.rejected) == refused and out.failed == {}
    assert out.through == {b.lb_key: b.end for b in bs}
    # Per LB: the first minute halved once (2), then one request per minute for the
    # group (10); plus the request and its split by LB (3).
    assert refused < c.requests <= refused + 3 * (2 + 10) + 3, c.requests


def test_one_series_holding_a_later_sample_costs_a_few_requests(tsdb):
    bs = batches(1, 14, 10)
    victim = bs[0].series[5]
    tsdb.put(victim.labels, T0 + 60_000 * 6, 7.0)  # another writer, minute 6
    c = client(tsdb.write_url)
    out = deliver(c, plan_requests(bs, 20_000))
    assert {(r.labels, r.timestamp_ms) for r in out.rejected} == {
        (victim.labels, T0 + 60_000 * m) for m in range(7)}
    assert tsdb.stored[victim.labels][T0 + 60_000 * 6] == 7.0
    assert all(len(v) == 10 for k, v in tsdb.stored.items() if k != victim.labels)
    # Minute 0: found by halving (about log2(14) requests); minutes 1-6: the minute, then
    # the others alone (the victim is then known refused); then the rest at once.
    assert c.requests <= 1 + 2 * math.ceil(math.log2(14)) + 2 * 6 + 2, c.requests


@pytest.mark.parametrize("body", ["mimir", "cortex"])
def test_a_receiver_that_names_the_refused_sample_is_taken_at_its_word(tsdb, body):
    """Mimir and Cortex store the rest of a refused request: nothing is re-sent (it would
    now be refused as out of order), the named sample is counted."""
    tsdb.partial, tsdb.body = True, body
    bs = batches(4, 5, 6)
    victim = bs[2].series[3]
    tsdb.put(victim.labels, T0 + 60_000 * 9, 1.0)  # later than the whole window
    c = client(tsdb.write_url)
    out = deliver(c, plan_requests(bs, 20_000))
    assert c.requests == 1
    assert [(r.labels, r.timestamp_ms) for r in out.rejected] == [(victim.labels, T0)]
    assert "err-mimir-sample-out-of-order" in out.rejected[0].reason or body == "cortex"
    assert "affected sample" not in out.rejected[0].reason
    assert out.through == {b.lb_key: b.end for b in bs} and out.failed == {}
    assert all(len(v) == 6 for k, v in tsdb.stored.items() if k != victim.labels)
    assert out.samples_written == 4 * 5 * 6 - 1


def test_out_of_time_progress_is_kept_per_minute(tsdb):
    """A recovery that runs out of time keeps every minute it finished."""
    bs = batches(1, 4, 10)
    for s in bs[0].series:
        for x in s.samples:
            tsdb.put(s.labels, x.timestamp_ms, x.value)
    budget = Budget(1e9, clock=lambda: 0.0 if len(tsdb.received) < 12 else 2e9)
    out = deliver(client(tsdb.write_url, budget), plan_requests(bs, 20_000))
    through = out.through["lb0"]
    assert T0 // 1000 < through < bs[0].end
    assert out.failed["lb0"].startswith("not sent: the run deadline")
    # Every sample before `through` was resolved: the refused ones all counted.
    assert {r.timestamp_ms for r in out.rejected} == set(range(T0, through * 1000, 60_000))
    assert len(out.rejected) == 4 * ((through * 1000 - T0) // 60_000)


def test_named_refusals_are_read_from_mimir_and_cortex_bodies():
    lbs = (("__name__", "alb_x"), ("a", 'q "x" \\ y'), ("z", "1"))
    for body in (mimir_body, cortex_body):
        reason, got, ts = named_refusal(body("out of order sample", lbs, T0 + 1500))
        assert got == lbs and ts == T0 + 1500
        assert "user=" not in reason and "affected" not in reason and "series=" not in reason
    assert named_refusal("out of order sample") is None
    assert named_refusal("too old sample") is None
    assert named_refusal('label name "aa" is not unique: invalid sample') is None
    assert named_refusal("err: x. timestamp=2021-02-25T12:00:00Z, series=test{a=\"1\"}") == (
        "err: x", (("__name__", "test"), ("a", "1")), 1614254400000)
