"""IngressGroups, in-tree Services (classic ELB, NLB) and resolution when a hostname
matches nothing, end to end: the fake Kubernetes API, moto in server mode, a real
Prometheus; every value is compared with what CloudWatch holds."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from lbscrape.cli import cli
from tests import world
from tests.faultproxy import FaultProxy
from tests.test_run import CLUSTER, Scene, end_for, logs, summary

NET = "networking.k8s.io/v1"
GROUP = "alb.ingress.kubernetes.io/group.name"
LB_TYPE = "service.beta.kubernetes.io/aws-load-balancer-type"


@pytest.fixture
def scene(aws, kube, prometheus):
    return Scene(aws, kube, prometheus)


def cli_json(scene, *args, expect=0):
    result = CliRunner().invoke(cli, [*args, "--kubeconfig", scene.kube.kubeconfig_path,
                                      "-o", "json"])
    assert result.exit_code == expect, result.output + result.stderr
    return json.loads(result.stdout)


def discover(scene, expect=0):
    return cli_json(scene, "discover", "--cluster", CLUSTER, "--region", "us-east-1",
                    expect=expect)


def test_an_ingress_group_across_namespaces_is_written_once_with_stable_labels(scene):
    aws, kube = scene.aws, scene.kube
    alb = aws.create_lb("k8s-public-0123456789", tags={"ingress.k8s.aws/stack": "public"})
    values = {ts: 1000.0 + i for i, ts in enumerate(scene.minutes)}
    aws.put(alb, "RequestCount", values.items())
    for ns, name in (("shop", "storefront"), ("blog", "posts")):
        kube.put(NET, "ingresses", world.ingress(ns, name, alb.dns_name,
                                                 annotations={GROUP: "public"}))
    first = scene.clock - 300
    result = scene.run(first)
    assert "owners=4 lbs_found=3 lbs_resolved=3" in summary(result)
    got = scene.prom.raw(f'alb_request_count_sum{{load_balancer_name="{alb.name}"}}')
    assert list(got) == [tuple(sorted({
        "__name__": "alb_request_count_sum", "cluster": CLUSTER, "region": "us-east-1",
        "load_balancer_name": alb.name, "load_balancer": alb.dimension,
        "ingress_group": "public"}.items()))]
    # Once, not once per member: every minute holds CloudWatch's value, not twice it.
    assert scene.stored("alb_request_count_sum")[alb.name] == scene.expected(
        values, end_for(first) - 600, end_for(first))
    # A third member in a third namespace joins: the same single series carries on.
    kube.put(NET, "ingresses", world.ingress("docs", "site", alb.dns_name,
                                             annotations={GROUP: "public"}))
    scene.run(scene.clock)
    got = scene.prom.raw(f'alb_request_count_sum{{load_balancer_name="{alb.name}"}}')
    assert len(got) == 1
    assert scene.stored("alb_request_count_sum")[alb.name] == scene.expected(
        values, end_for(first) - 600, end_for(scene.clock))
    assert sorted(scene.checkpoint()) == sorted(
        [scene.alb.dimension, scene.nlb.dimension, alb.dimension])
    rows = [r for r in discover(scene)["resolved"] if r["load_balancer_name"] == alb.name]
    assert sorted((r["namespace"], r["name"]) for r in rows) == [
        ("blog", "posts"), ("docs", "site"), ("shop", "storefront")]
    assert all(r["labels"]["ingress_group"] == "public" and "namespace" not in r["labels"]
               for r in rows)


def test_a_classic_elb_service_is_read_from_aws_elb(scene, moto_server, monkeypatch):
    aws, kube = scene.aws, scene.kube
    clb = aws.create_classic("a1b2c3d4e5f60718293a4b5c6d7e8f90")
    # moto names a classic ELB's DNS after the name alone (AWS appends "-<digits>").
    assert clb.dns_name == f"{clb.name}.us-east-1.elb.amazonaws.com"
    requests = {ts: 50.0 + i for i, ts in enumerate(scene.minutes)}
    latency = {ts: 0.01 * i for i, ts in enumerate(scene.minutes)}
    backend_5xx = {ts: float(i % 4) for i, ts in enumerate(scene.minutes) if i % 4}
    aws.put(clb, "RequestCount", requests.items())
    aws.put(clb, "Latency", latency.items())
    aws.put(clb, "HTTPCode_Backend_5XX", backend_5xx.items())
    kube.put("v1", "services", world.service("legacy", "web", clb.dns_name))
    proxy = FaultProxy(moto_server)
    proxy.start()
    monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
    try:
        result = scene.run(scene.clock)
    finally:
        proxy.stop()
        monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server)
    end = end_for(scene.clock)
    assert "lbs_resolved=3 unresolved=0 lbs_written=3" in summary(result)
    got = scene.prom.raw("elb_request_count_sum")
    assert list(got) == [tuple(sorted({
        "__name__": "elb_request_count_sum", "cluster": CLUSTER, "region": "us-east-1",
        "load_balancer_name": clb.name, "load_balancer": clb.name,
        "namespace": "legacy", "service": "web"}.items()))]
    assert scene.stored("elb_request_count_sum")[clb.name] == scene.expected(
        requests, end - 600, end)
    assert scene.stored("elb_latency_average")[clb.name] == scene.expected(
        latency, end - 600, end)
    # A sparse counter: zero-filled (on by default) in every minute with requests.
    assert scene.stored("elb_http_code_backend_5xx_sum")[clb.name] == scene.expected(
        {ts: backend_5xx.get(ts, 0.0) for ts in requests}, end - 600, end)
    # moto ignores the namespace of a query that has dimensions; check what was asked.
    queries = [q["MetricStat"]["Metric"] for r in proxy.seen if r.mentions("GetMetricData")
               for q in json.loads(r.body)["MetricDataQueries"]]
    classic = [m for m in queries if m["Dimensions"][0]["Value"] == clb.name]
    assert len(classic) == 13
    assert {m["Namespace"] for m in classic} == {"AWS/ELB"}
    assert {d["Name"] for m in classic for d in m["Dimensions"]} == {"LoadBalancerName"}
    # The checkpoint key cannot collide with an ELBv2 dimension; tools still name it.
    assert f"elb/{clb.name}" in scene.checkpoint()
    shown = cli_json(scene, "checkpoint", "show")
    assert {"load_balancer_name": clb.name, "load_balancer": f"elb/{clb.name}"}.items() <= \
        next(c for c in shown if c["load_balancer"] == f"elb/{clb.name}").items()
    (row,) = [r for r in discover(scene)["resolved"] if r["namespace"] == "legacy"]
    assert (row["type"], row["arn"], row["load_balancer"], row["matched_by"]) == (
        "classic", None, clb.name, "dns")
    est = cli_json(scene, "estimate", "--region", "us-east-1")
    assert est["load_balancers"] == {"alb": 1, "nlb": 1, "elb": 1}
    assert est["per_run"]["metrics_requested"] == 14 + 9 + 13
    assert {"type": "elb", "metric": "elb_latency_average", "metrics_per_month": 43_200,
            "usd_per_month": 0.43} in est["by_metric"]


def test_an_in_tree_nlb_service(scene):
    nlb = scene.aws.create_lb("a0f1e2d3c4b5a69788796a5b4c3d2e1f", "network")
    flows = {ts: 3.0 * i for i, ts in enumerate(scene.minutes)}
    scene.aws.put(nlb, "NewFlowCount", flows.items())
    scene.kube.put("v1", "services", world.service("legacy", "tcp", nlb.dns_name,
                                                   annotations={LB_TYPE: "nlb"}))
    scene.run(scene.clock)
    end = end_for(scene.clock)
    labels = {dict(k)["load_balancer_name"]: dict(k)
              for k in scene.prom.raw("nlb_new_flow_count_sum")}
    assert labels[nlb.name]["service"] == "tcp" and labels[nlb.name]["namespace"] == "legacy"
    assert scene.stored("nlb_new_flow_count_sum")[nlb.name] == scene.expected(
        flows, end - 600, end)


def test_a_hostname_that_matches_nothing_is_resolved_by_tags_or_name(scene):
    aws, kube = scene.aws, scene.kube
    # The Ingress's status still shows an older load balancer's hostname.
    api = aws.create_lb("k8s-shop-api-5555555555", tags={
        "ingress.k8s.aws/stack": "shop/api", "elbv2.k8s.aws/cluster": CLUSTER})
    api_values = {ts: 7.0 + i for i, ts in enumerate(scene.minutes)}
    aws.put(api, "RequestCount", api_values.items())
    kube.put(NET, "ingresses", world.ingress(
        "shop", "api", "k8s-shop-api-4444444444-1.us-east-1.elb.amazonaws.com"))
    # An in-tree Service, found by the name the in-tree controller gives its ELB.
    kube.put("v1", "services", world.service("legacy", "web", "old.us-east-1.elb.amazonaws.com"))
    uid = kube.get("v1", "services", "legacy", "web")["metadata"]["uid"]
    clb = aws.create_classic(("a" + uid.replace("-", ""))[:32])
    aws.put(clb, "RequestCount", [(ts, 2.0) for ts in scene.minutes])
    # Two load balancers of other clusters carry blog/web's tags: not guessed.
    for i, cluster in enumerate(("other-a", "other-b")):
        aws.create_lb(f"k8s-blog-web-{i}", tags={"ingress.k8s.aws/stack": "blog/web",
                                                 "elbv2.k8s.aws/cluster": cluster})
    kube.put(NET, "ingresses", world.ingress("blog", "web", "gone-1.us-east-1.elb.amazonaws.com"))

    result = scene.run(scene.clock)
    end = end_for(scene.clock)
    assert "lbs_resolved=4 unresolved=1 lbs_written=4" in summary(result)
    assert scene.stored("alb_request_count_sum")[api.name] == scene.expected(
        api_values, end - 600, end)
    labels = {dict(k)["load_balancer_name"]: dict(k)
              for k in scene.prom.raw("alb_request_count_sum")}
    assert labels[api.name]["ingress"] == "api" and labels[api.name]["namespace"] == "shop"
    assert {"k8s-blog-web-0", "k8s-blog-web-1"}.isdisjoint(labels)
    assert len(scene.stored("elb_request_count_sum")[clb.name]) == 10
    entries = logs(result)
    assert any(e["level"] == "info" and "Ingress shop/api" in e["msg"] and "tags" in e["msg"]
               for e in entries)
    (warning,) = [e["msg"] for e in entries if e["level"] == "warning"]
    assert warning.startswith("Ingress blog/web: no load balancer in us-east-1 has DNS name "
                              "gone-1.us-east-1.elb.amazonaws.com, and 2 carry its controller's "
                              "tags (k8s-blog-web-0, k8s-blog-web-1)")

    out = discover(scene, expect=3)
    by_owner = {(r["namespace"], r["name"]): r for r in out["resolved"]}
    assert (by_owner["shop", "api"]["load_balancer_name"],
            by_owner["shop", "api"]["matched_by"]) == (api.name, "tag")
    assert (by_owner["legacy", "web"]["load_balancer_name"],
            by_owner["legacy", "web"]["matched_by"]) == (clb.name, "name")
    assert by_owner["shop", "web"]["matched_by"] == "dns"
    assert [(s["namespace"], s["name"]) for s in out["skipped"]] == [("blog", "web")]
