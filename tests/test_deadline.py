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
    result = scene.run(scene.clock, "--deadline", "8s", expect=3)
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
         "--now", str(scene.clock)],
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
