"""A run ends in time: --deadline and SIGTERM stop fetching, write what was fetched,
and checkpoint what landed. CloudWatch is slowed down by a proxy in front of moto."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from lbscrape.core.budget import Budget
from tests import world
from tests.faultproxy import FaultProxy, Rule
from tests.test_run import Scene, end_for

N_LBS = 5


@pytest.fixture
def slow_world(aws, kube, prometheus, moto_server, monkeypatch):
    scene = Scene(aws, kube, prometheus)
    extra = [aws.create_lb(f"k8s-team{i}-web-0123456789") for i in range(N_LBS)]
    for i, lb in enumerate(extra):
        aws.put(lb, "RequestCount", [(ts, float(i)) for ts in scene.minutes])
        kube.put("networking.k8s.io/v1", "ingresses", world.ingress(f"team{i}", "web", lb.dns_name))
    # Distinct checkpoints give each extra LB its own window, so its own GetMetricData call.
    end = end_for(scene.clock)
    ends = {lb.dimension: _iso(end - 60 * (i + 2)) for i, lb in enumerate(extra)}
    kube.put("v1", "configmaps", {
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "lbscrape-checkpoint", "namespace": "monitoring"},
        "data": {"checkpoint.json": json.dumps({"format": 1, "load_balancers": ends})}})
    proxy = FaultProxy(moto_server)
    proxy.start()
    proxy.add(Rule(lambda r: r.mentions("GetMetricData"), delay=2.0))
    monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
    yield scene, extra, proxy
    proxy.stop()


def gmd_calls(proxy):
    return sum(1 for r in proxy.seen if r.mentions("GetMetricData"))


def test_deadline_stops_fetching_and_keeps_what_landed(slow_world):
    scene, extra, proxy = slow_world
    # One call at a time (each takes 2 s), so that the deadline falls between calls.
    result = scene.run(scene.clock, "--deadline", "8s", "--cloudwatch-concurrency", "1",
                       expect=3)
    msg = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")][-1]["msg"]
    assert "not fetched: the run deadline (--deadline) was reached" in msg
    fetched = gmd_calls(proxy)
    assert 1 <= fetched < N_LBS + 1
    cp = scene.checkpoint()
    written = set(scene.stored("alb_request_count_sum"))
    # Exactly the load balancers whose data was fetched were written and moved on.
    moved = {lb.name for lb in extra if cp[lb.dimension] == _iso(end_for(scene.clock))}
    assert moved and moved <= written
    assert len([lb for lb in extra if lb.name not in moved]) >= 1


def test_sigterm_flushes_what_was_fetched_and_exits_within_seconds(slow_world):
    scene, extra, proxy = slow_world
    env = {**os.environ, "LBSCRAPE_LOG_FORMAT": "json"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "lbscrape", "run", "--cluster", "c", "--region", "us-east-1",
         "--kubeconfig", scene.kube.kubeconfig_path, "--remote-write-url", scene.prom.write_url,
         "--now", str(scene.clock), "--cloudwatch-concurrency", "1"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while gmd_calls(proxy) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert gmd_calls(proxy) >= 2
    os.kill(proc.pid, signal.SIGTERM)
    sent = time.monotonic()
    out, err = proc.communicate(timeout=30)
    took = time.monotonic() - sent
    assert took < 5, f"exit took {took:.1f}s after SIGTERM"
    assert proc.returncode == 3, err
    assert "SIGTERM" in err and "not fetched: stopped by SIGTERM" in err
    cp = scene.checkpoint()
    end = _iso(end_for(scene.clock))
    moved = [lb for lb in extra if cp[lb.dimension] == end]
    assert moved, "what was fetched before SIGTERM was written and checkpointed"
    written = scene.stored("alb_request_count_sum")
    for lb in moved:
        assert lb.name in written
    # Its own series, the last request, still went out within the grace, and say how the
    # process ended.
    assert [v for pts in scene.prom.raw("lbscrape_run_exit_code").values()
             for _, v in pts] == [proc.returncode]


def _iso(ts):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def test_a_request_in_flight_is_abandoned_where_the_budget_says():
    now = [0.0]
    budget = Budget(40, clock=lambda: now[0])  # fetching stops at 30
    armed = []
    budget.watcher = armed.append  # the run arms its timer with these seconds
    budget.enter("fetch")
    assert armed[-1] == 35  # halfway to the end: what was fetched can still be written
    now[0] = 10
    budget.stop("stopped by SIGTERM", 5)  # the end moves to 15, fetching stops now
    assert budget.stopping and armed[-1] == 2.5
    budget.enter("write")
    assert armed[-1] == 5
    now[0] = 14
    budget.enter("finish")  # the checkpoint store gets at least 2 s, even past the end
    assert armed[-1] == 2
    assert budget.reason == "stopped by SIGTERM"


# --- SIGTERM with a request that never gets an answer ---------------------------------
# Each endpoint in turn sits behind a proxy that holds one request open and never
# answers; SIGTERM arrives while it is in flight. Timeline (lbscrape.core.budget): no new
# fetch at once; a fetch (or discovery) still in flight is abandoned halfway through the
# 5 s grace, a write at its end; the checkpoint store gets at least 2 s of its own.

GRACE = 5.0  # each test allows 2.5 s more for the exit on a busy machine; before the
# timer the same hangs ended 10.3 s (remote write), 10.5 s (CloudWatch), 20.4 s (list) and
# 20.6 s (checkpoint store) after SIGTERM


def _nth(n, pred):
    """A proxy match for the n-th request that satisfies `pred` (counting from 1)."""
    seen = []

    def match(r):
        if pred(r):
            seen.append(r)
            return len(seen) == n
        return False
    return match


def _sigterm_while_hanging(scene, hang, *extra, env=None, kubeconfig=None):
    """Run `lbscrape run` as the CronJob does; SIGTERM once `hang` (a proxy Rule) holds a
    request. Returns (seconds from SIGTERM to exit, exit code, stderr)."""
    rule_proxy, rule = hang
    rule_proxy.add(rule)
    proc = subprocess.Popen(
        [sys.executable, "-m", "lbscrape", "run", "--cluster", "c", "--region", "us-east-1",
         "--kubeconfig", kubeconfig or scene.kube.kubeconfig_path, "--now", str(scene.clock),
         "--remote-write-url", scene.prom.write_url, *extra],
        env={**os.environ, "LBSCRAPE_LOG_FORMAT": "json", **(env or {})},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while rule.times > 0 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.02)
        time.sleep(0.2)  # it is in flight
        assert rule.times == 0 and proc.poll() is None, \
            f"the request to hold never came: {proc.communicate(timeout=30)[1]}"
        os.kill(proc.pid, signal.SIGTERM)
        sent = time.monotonic()
        _, err = proc.communicate(timeout=30)
        took = time.monotonic() - sent
    finally:
        if proc.poll() is None:  # only the process this test started
            os.kill(proc.pid, signal.SIGKILL)
            proc.communicate()
    print(f"\nSIGTERM to exit with a request hanging: {took:.2f}s, exit {proc.returncode}")
    return took, proc.returncode, err


def _last(err):
    return [json.loads(line) for line in err.splitlines() if line.startswith("{")][-1]["msg"]


def _hang(proxy, match):
    return proxy, Rule(match, delay=3600, times=1)


@pytest.fixture
def proxied(request):
    proxies = []

    def make(upstream):
        p = FaultProxy(upstream)
        p.start()
        proxies.append(p)
        return p
    yield make
    for p in proxies:
        p.stop()


def test_sigterm_with_a_remote_write_hanging_keeps_what_was_accepted(aws, kube, prometheus,
                                                                     proxied):
    scene = Scene(aws, kube, prometheus)
    proxy = proxied(prometheus.url)
    hang = _hang(proxy, _nth(2, lambda r: r.method == "POST"))  # the second LB's request
    took, code, err = _sigterm_while_hanging(
        scene, hang, "--remote-write-url", f"{proxy.url}/api/v1/write",
        "--remote-write-max-samples", "150")
    assert GRACE - 0.5 < took < GRACE + 2.5, err
    assert code == 3, err
    end = _iso(end_for(scene.clock))
    cp = scene.checkpoint()
    (written,) = [lb for lb in (scene.alb, scene.nlb) if cp.get(lb.dimension) == end]
    (left,) = [lb for lb in (scene.alb, scene.nlb) if lb is not written]
    assert left.dimension not in cp
    msg = _last(err)
    assert f"{left.name}: not written: stopped by SIGTERM (a request in flight was " \
           "abandoned)" in msg and "lbs_failed=1" in msg, msg


def test_sigterm_with_cloudwatch_hanging_writes_what_was_fetched(aws, kube, prometheus,
                                                                moto_server, proxied):
    scene = Scene(aws, kube, prometheus)
    end = end_for(scene.clock)
    # The NLB's own checkpoint gives it its own window, so its own (second) call.
    kube.put("v1", "configmaps", {
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "lbscrape-checkpoint", "namespace": "monitoring"},
        "data": {"checkpoint.json": json.dumps({"format": 1, "load_balancers": {
            scene.nlb.dimension: _iso(end - 120)}})}})
    proxy = proxied(moto_server)
    hang = _hang(proxy, _nth(2, lambda r: r.mentions("GetMetricData")))
    # One call at a time, so that the second to arrive is the NLB's.
    took, code, err = _sigterm_while_hanging(scene, hang, "--cloudwatch-concurrency", "1",
                                             env={"AWS_ENDPOINT_URL": proxy.url})
    assert GRACE / 2 - 0.5 < took < GRACE / 2 + 2.5, err
    assert code == 3, err
    cp = scene.checkpoint()
    assert cp == {scene.alb.dimension: _iso(end), scene.nlb.dimension: _iso(end - 120)}
    assert scene.alb.name in scene.stored("alb_request_count_sum")
    msg = _last(err)
    assert f"{scene.nlb.name}: not fetched: stopped by SIGTERM (a call in flight was " \
           "abandoned)" in msg, msg


@pytest.mark.parametrize(("what", "match", "after", "code"), [
    ("discovery", lambda r: r.method == "GET" and "/ingresses" in r.path, GRACE / 2, 1),
    ("checkpoint store", lambda r: r.method == "POST" and "/configmaps" in r.path, GRACE, 1),
])
def test_sigterm_with_kubernetes_hanging_ends_within_the_grace(aws, kube, prometheus, proxied,
                                                               tmp_path, what, match, after,
                                                               code):
    scene = Scene(aws, kube, prometheus)
    proxy = proxied(kube.url)
    config = kube.write_kubeconfig(str(tmp_path / "proxied"), server=proxy.url)
    took, rc, err = _sigterm_while_hanging(scene, _hang(proxy, match), kubeconfig=config)
    assert after - 0.5 < took < after + 2.5, err
    assert rc == code, err
    msg = _last(err)
    assert msg.startswith("run aborted") and "abandoned: stopped by SIGTERM" in msg
    assert scene.checkpoint() is None
