"""`lbscrape run` end to end: fake Kubernetes API, moto server, real Prometheus."""

from __future__ import annotations

import json
import time

import pytest
from click.testing import CliRunner

from lbscrape.cli import cli
from tests import world

CLUSTER = "test-cluster"


@pytest.fixture
def setup(aws, kube, prometheus):
    """An ALB Ingress and an NLB Service with 20 minutes of traffic up to the present."""
    kube.put("networking.k8s.io/v1", "ingressclasses", world.ingress_class())
    alb = aws.create_lb("k8s-shop-web-0123456789")
    nlb = aws.create_lb("k8s-shop-db-0123456789", "network")
    kube.put("networking.k8s.io/v1", "ingresses", world.ingress("shop", "web", alb.dns_name))
    kube.put("v1", "services", world.service("shop", "db", nlb.dns_name,
                                             lb_class="service.k8s.aws/nlb"))
    now = int(time.time()) // 60 * 60 + 30
    minutes = [now - 30 - 60 * i for i in range(20, -1, -1)]  # up to the current minute
    for i, ts in enumerate(minutes):
        aws.put(alb, "RequestCount", [(ts, 100 + i)])
        aws.put(alb, "HTTPCode_ELB_5XX_Count", [(ts, i % 3)] if i % 3 else [])
        aws.put(alb, "TargetResponseTime", [(ts, 0.25 + i / 100)])
        aws.put(nlb, "NewFlowCount", [(ts, 7 * i)])
        aws.put(nlb, "ProcessedBytes", [(ts, 1000.5 * i)])
    return alb, nlb, now, minutes


def run(kube, prometheus, now, *extra, expect=0):
    args = ["run", "--cluster", CLUSTER, "--region", "us-east-1", "--kubeconfig",
            kube.kubeconfig_path, "--remote-write-url", prometheus.write_url,
            "--now", str(now), "--log-format", "json", *extra]
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == expect, result.output + result.stderr
    return result


def logs(result):
    return [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]


def test_writes_exact_settled_samples_with_labels(setup, kube, prometheus):
    alb, nlb, now, minutes = setup
    result = run(kube, prometheus, now)
    end = (now - 120) // 60 * 60  # settle 2m, period 1m
    expected_ts = [ts for ts in minutes if end - 600 <= ts < end]
    assert len(expected_ts) == 10
    got = prometheus.raw('alb_request_count_sum')
    assert list(got) == [tuple(sorted({
        "__name__": "alb_request_count_sum", "cluster": CLUSTER, "region": "us-east-1",
        "load_balancer_name": alb.name, "load_balancer": alb.dimension,
        "namespace": "shop", "ingress": "web"}.items()))]
    idx = {ts: i for i, ts in enumerate(minutes)}
    assert next(iter(got.values())) == [(ts * 1000, 100.0 + idx[ts]) for ts in expected_ts]
    rt = next(iter(prometheus.raw("alb_target_response_time_average").values()))
    assert rt == [(ts * 1000, 0.25 + idx[ts] / 100) for ts in expected_ts]
    flows = prometheus.raw("nlb_new_flow_count_sum")
    labels = dict(next(iter(flows)))
    assert labels["service"] == "db" and "ingress" not in labels
    assert labels["load_balancer_name"] == nlb.name
    assert next(iter(flows.values())) == [(ts * 1000, 7.0 * idx[ts]) for ts in expected_ts]
    summary = logs(result)[-1]["msg"]
    assert "lbs_found=2 lbs_resolved=2" in summary and "lbs_written=2" in summary
    cm = kube.get("v1", "configmaps", "monitoring", "lbscrape-checkpoint")
    stored = json.loads(cm["data"]["checkpoint.json"])
    assert set(stored["load_balancers"]) == {alb.dimension, nlb.dimension}
