"""CloudWatch faults at the HTTP level, injected by a proxy in front of moto."""

from __future__ import annotations

import json

import pytest

from tests.faultproxy import FaultProxy, Rule
from tests.test_run import Scene, end_for, summary

THROTTLE = dict(status=400, body=json.dumps({"__type": "Throttling",
                                             "message": "Rate exceeded"}).encode(),
                headers={"Content-Type": "application/x-amz-json-1.0",
                         "x-amzn-query-error": "Throttling;Sender"})


@pytest.fixture
def proxied(aws, kube, prometheus, moto_server, monkeypatch):
    scene = Scene(aws, kube, prometheus)
    proxy = FaultProxy(moto_server)
    proxy.start()
    monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
    yield scene, proxy
    proxy.stop()


def gmd(req):
    return req.mentions("GetMetricData")


def test_throttling_and_5xx_are_retried(proxied):
    scene, proxy = proxied
    proxy.add(Rule(gmd, times=1, **THROTTLE))
    proxy.add(Rule(gmd, times=1, status=503, body=b""))
    result = scene.run(scene.clock)
    assert sum(1 for r in proxy.seen if gmd(r)) == 3
    assert "lbs_written=2" in summary(result)
    assert scene.stored("alb_request_count_sum")[scene.alb.name] == scene.expected(
        scene.requests, end_for(scene.clock) - 600, end_for(scene.clock))


def test_persistent_throttling_fails_the_load_balancers_and_keeps_checkpoints(proxied):
    scene, proxy = proxied
    scene.run(scene.clock - 300)
    before = scene.checkpoint()
    proxy.add(Rule(gmd, **THROTTLE))
    result = scene.run(scene.clock, expect=1)
    assert "Throttling" in summary(result) and "lbs_failed=2" in summary(result)
    assert scene.checkpoint() == before
    proxy.rules.clear()
    scene.run(scene.clock)
    assert scene.stored("alb_request_count_sum")[scene.alb.name] == scene.expected(
        scene.requests, end_for(scene.clock - 300) - 600, end_for(scene.clock))
