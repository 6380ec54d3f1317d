"""VictoriaMetrics for real (Debian's single-node victoria-metrics 1.79): what it stores
when lbscrape repeats samples, read from its raw export API, duplicates included.

It answers 204 to everything, so a repeat is never refused: without
-dedup.minScrapeInterval it stores every repeated sample again (measured below); with it,
each (series, timestamp) is stored once. lbscrape's timestamps are whole periods, so the
smallest interval, 1ms, dedups only identical timestamps and leaves other series alone.
"""

from __future__ import annotations

import time
from collections import Counter

import pytest

from lbscrape.core.config import RemoteWriteSettings
from lbscrape.core.model import Sample, Series
from lbscrape.prom import remote_write
from tests import world
from tests.faultproxy import FaultProxy, Rule
from tests.receivers import crash_then_repeat
from tests.test_backfill import World as BackfillWorld
from tests.test_backfill import decode
from tests.test_run import Scene, end_for

DEDUP = "1ms"


@pytest.fixture
def vm():
    server = world.VictoriaMetrics(dedup=DEDUP).start()
    yield server
    server.cleanup()


@pytest.fixture
def vm_without_dedup():
    server = world.VictoriaMetrics().start()
    yield server
    server.cleanup()


def stored(vm, metric):
    """{load_balancer_name: [(ts_s, value)]}: every raw sample, duplicates included."""
    return {dict(k)["load_balancer_name"]: [(t // 1000, float(v)) for t, v in pts]
            for k, pts in vm.export(metric).items()}


def test_a_crash_repeat_is_stored_twice_without_dedup(aws, kube, vm_without_dedup, tmp_path):
    vm = vm_without_dedup
    scene = Scene(aws, kube, vm)
    r = crash_then_repeat(scene, vm.write_url, tmp_path)
    end1, end2, s = r.first_end, r.second_end, r.second
    # The second run starts 10m before its end (no checkpoint): 9 minutes again.
    once = scene.expected(scene.requests, end1 - 600, end2)
    again = scene.expected(scene.requests, end2 - 600, end1)
    assert len(again) == 9
    assert stored(vm, "alb_request_count_sum")[scene.alb.name] == sorted(once + again)
    # Accepted with 204 the first time: one request, no refusal, nothing to skip; every
    # sample of the 9 repeated minutes (16 series a minute) is stored a second time.
    assert "remote_write_requests=1 " in s and "samples_rejected=0" in s
    assert total(vm) == written(r.first) + written(r.second) == 160 + 160
    assert total(vm) - distinct(vm) == 9 * 16


def test_a_crash_repeat_is_stored_once_with_dedup(aws, kube, vm, tmp_path):
    scene = Scene(aws, kube, vm)
    r = crash_then_repeat(scene, vm.write_url, tmp_path)
    end1, end2, s = r.first_end, r.second_end, r.second
    assert "remote_write_requests=1 " in s
    for metric, values, lb in (("alb_request_count_sum", scene.requests, scene.alb),
                               ("nlb_new_flow_count_sum", scene.flows, scene.nlb)):
        assert stored(vm, metric)[lb.name] == scene.expected(values, end1 - 600, end2)
    zeros = stored(vm, "alb_http_code_elb_5xx_count_sum")[scene.alb.name]
    assert len(zeros) == len({ts for ts, _ in zeros}) == (end2 - end1 + 600) // 60
    assert total(vm) == distinct(vm) == 11 * 16  # 11 minutes, 16 series, each once
    # Once in storage, not only in what export shows: restarted without the flag (so
    # nothing is deduplicated when read), it still holds each sample once.
    vm.stop()
    vm.dedup = None
    vm.start()
    assert stored(vm, "alb_request_count_sum")[scene.alb.name] == scene.expected(
        scene.requests, end1 - 600, end2)


def test_consecutive_runs_write_each_minute_once(aws, kube, vm):
    scene = Scene(aws, kube, vm)
    nows = [scene.clock - 900 + d for d in (0, 61, 300, 301, 840)]
    for now in nows:
        scene.run(now, remote_write_url=vm.write_url)
    got = stored(vm, "alb_request_count_sum")[scene.alb.name]
    assert got == scene.expected(scene.requests, end_for(nows[0]) - 600, end_for(nows[-1]))


def total(vm):
    """Every sample lbscrape's series hold, duplicates included."""
    return sum(len(pts) for pts in vm.export('{cluster="test-cluster"}').values())


def distinct(vm):
    return sum(len(set(pts)) for pts in vm.export('{cluster="test-cluster"}').values())


def written(summary_line):
    return int(summary_line.split("samples_written=")[1].split()[0])


def _backfill_stored(vm, w):
    want = w.series()
    for metric in sorted({m for m, _ in want}):
        assert stored(vm, metric) == {lb: pts for (m, lb), pts in want.items()
                                      if m == metric}, metric


def _lost_answer_backfill(aws, kube, vm, tmp_path):
    """A backfill whose first request lands but whose answer is lost (the connection is
    reset after VictoriaMetrics stored it): lbscrape sends that request again."""
    w = BackfillWorld(aws, kube)
    live = remote_write.Client(RemoteWriteSettings(vm.write_url, retries=0))
    live.post(remote_write.encode([Series((("__name__", "live"),),
                                          (Sample(int(time.time()) * 1000, 1.0),))]))
    proxy = FaultProxy(vm.url)
    proxy.start()
    proxy.add(Rule(lambda r: r.method == "POST", after=True, reset=True, times=1))
    try:
        result = w.backfill("--remote-write-url", f"{proxy.url}/api/v1/write",
                            "--state-file", str(tmp_path / "state.json"),
                            "--remote-write-max-samples", "2000")
    finally:
        proxy.stop()
    posts = [r for r in proxy.seen if r.method == "POST"]
    assert posts[0].body == posts[1].body  # the same request, sent twice
    assert len(posts) == len({p.body for p in posts}) + 1  # and only that one
    return w, posts, result


def test_a_backfill_hours_behind_the_live_sample_needs_no_window_and_lands_once(
        aws, kube, vm, tmp_path):
    w, posts, result = _lost_answer_backfill(aws, kube, vm, tmp_path)
    _backfill_stored(vm, w)
    assert f"samples_written={len(w.samples())} " in result.stderr


def test_a_resent_backfill_request_is_stored_twice_without_dedup(aws, kube,
                                                                 vm_without_dedup, tmp_path):
    vm = vm_without_dedup
    w, posts, _ = _lost_answer_backfill(aws, kube, vm, tmp_path)
    twice = Counter((m, lb, ts) for (m, lb), pts in w.series().items()
                    for ts, _ in pts)
    resent = decode(posts[0].body)
    twice.update(resent)
    for metric in sorted({m for m, _ in w.series()}):
        got = Counter((metric, lb, ts) for lb, pts in stored(vm, metric).items()
                      for ts, _ in pts)
        assert got == Counter({k: n for k, n in twice.items() if k[0] == metric}), metric
    assert sum(n - 1 for n in twice.values()) == len(resent) > 1000


def test_a_sample_older_than_the_retention_is_dropped_with_204(vm_without_dedup):
    """What differs from every other receiver: too old is not refused, it is dropped
    with a warning in VictoriaMetrics' log. Its -retentionPeriod (default 1 month) must
    cover a backfill's range."""
    vm = vm_without_dedup
    now = int(time.time()) // 60 * 60
    old, recent = (now - 40 * 86400) * 1000, (now - 600) * 1000
    client = remote_write.Client(RemoteWriteSettings(vm.write_url, retries=0))
    client.post(remote_write.encode([Series((("__name__", "old"), ("x", "y")),
                                            (Sample(old, 1.0), Sample(recent, 2.0)))]))
    assert vm.export("old") == {(("__name__", "old"), ("x", "y")): [(recent, 2)]}
    with open(f"{vm.dir}/victoria-metrics.log") as f:
        assert "outside the retention" in f.read()
