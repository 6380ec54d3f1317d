"""cronjob/ grants exactly what the code uses: compare the RBAC rules with the verbs and
resources the fake API server saw, and the IAM policy with the AWS actions that reached
moto, over runs that take every path (first run creates the checkpoint, the next updates
it, a conflict re-reads it), and `lbscrape smoke`."""

from __future__ import annotations

import json
import re
from pathlib import Path

from click.testing import CliRunner

from lbscrape.cli import cli
from tests import world
from tests.faultproxy import FaultProxy
from tests.test_manifests import _grants, _one
from tests.test_run import Scene

CRONJOB = Path(__file__).resolve().parent.parent / "cronjob"
SIGNING_TO_IAM = {"monitoring": "cloudwatch", "elasticloadbalancing": "elasticloadbalancing"}
# Used only with --remote-write-sigv4 (Amazon Managed Prometheus): tests/test_sigv4.py.
REMOTE_WRITE_IAM = {"aps:RemoteWrite"}


def granted_rbac():
    return _grants(_one("ClusterRole")["rules"]) | _grants(_one("Role")["rules"])


def granted_iam():
    policy = json.loads((CRONJOB / "iam-policy.json").read_text())
    return {a for st in policy["Statement"] for a in st["Action"]}


def used_rbac(seen):
    """(group, resource, verb) of the requests the fake API server saw, without
    SelfSubjectAccessReviews: Kubernetes' default ClusterRole system:basic-user lets every
    authenticated user create them, so `lbscrape smoke` needs no grant for them and
    cronjob/rbac.yaml must not add one."""
    return {(s.api.split("/")[0] if "/" in s.api else "", s.resource, s.verb) for s in seen
            if (s.api, s.resource) != ("authorization.k8s.io/v1", "selfsubjectaccessreviews")}


def aws_action(req):
    service = re.search(r"Credential=[^/]+/[^/]+/[^/]+/([^/]+)/aws4_request",
                        req.headers.get("Authorization", ""))
    target = req.headers.get("X-Amz-Target", "")
    if target:  # JSON protocols: Service.Operation
        op = target.rsplit(".", 1)[1]
    elif "/operation/" in req.path:  # smithy rpc-v2-cbor
        op = req.path.rstrip("/").rsplit("/", 1)[1]
    else:
        m = re.search(rb"Action=([A-Za-z]+)", req.body)
        op = m.group(1).decode() if m else "?"
    return f"{SIGNING_TO_IAM.get(service.group(1), service.group(1)) if service else '?'}:{op}"


def test_rbac_and_iam_match_what_a_run_uses(aws, kube, prometheus, moto_server, monkeypatch):
    scene = Scene(aws, kube, prometheus)  # seeded through moto directly, not the proxy
    # Every resolution path: a classic ELB (its own API), and a stale hostname that only
    # the controller's tags resolve (DescribeTags).
    clb = aws.create_classic("a1b2c3d4e5f60718293a4b5c6d7e8f90")
    kube.put("v1", "services", world.service("legacy", "web", clb.dns_name))
    aws.create_lb("k8s-shop-api-5555555555", tags={"ingress.k8s.aws/stack": "shop/api"})
    kube.put("networking.k8s.io/v1", "ingresses", world.ingress(
        "shop", "api", "k8s-shop-api-4444444444-1.us-east-1.elb.amazonaws.com"))
    # An owner whose load balancer is gone and one with an invalid annotation: Events.
    kube.put("networking.k8s.io/v1", "ingresses",
             world.ingress("blog", "gone", "k8s-blog-gone-1.us-east-1.elb.amazonaws.com"))
    # A target group bound to its Service: DescribeTargetGroups and the bindings' list.
    tg = aws.create_tg(scene.alb, "k8s-shop-web-aaaaaaaaaa")
    kube.put("elbv2.k8s.aws/v1beta1", "targetgroupbindings",
             world.target_group_binding("shop", tg.name, tg.arn, "web", 80))
    svc = kube.get("v1", "services", "shop", "db")
    svc["metadata"]["annotations"]["lbscrape.io/labels"] = "namespace=evil"
    kube.put("v1", "services", svc)
    proxy = FaultProxy(moto_server)
    proxy.start()
    monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
    try:
        kube.seen.clear()
        scene.run(scene.clock - 180)  # creates the checkpoint
        kube.inject("PUT", "/configmaps/lbscrape-checkpoint", 409)
        scene.run(scene.clock)  # updates it, after a conflict and a re-read
    finally:
        proxy.stop()
    assert used_rbac(kube.seen) == granted_rbac()
    # Namespaced access stays in lbscrape's own namespace, but for Events on the owners;
    # cluster-wide access is lists.
    assert {s.namespace for s in kube.seen if s.resource == "configmaps"} == {"monitoring"}
    assert {s.namespace for s in kube.seen if s.resource == "events"} == {"blog", "shop"}
    assert {s.verb for s in kube.seen if s.namespace is None} == {"list"}
    assert {aws_action(r) for r in proxy.seen} == granted_iam() - REMOTE_WRITE_IAM
    # Both ELB APIs sign as elasticloadbalancing: the classic listing must really happen.
    assert any(r.mentions("Action=DescribeLoadBalancers") and r.mentions("Version=2012-06-01")
               for r in proxy.seen)


def test_smoke_needs_nothing_the_cronjob_is_not_granted(kube, prometheus, moto_server,
                                                       monkeypatch, aws):
    aws.create_lb("k8s-shop-web-0123456789")
    proxy = FaultProxy(moto_server)
    proxy.start()
    monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
    try:
        result = CliRunner().invoke(cli, [
            "smoke", "--cluster", "c", "--region", "us-east-1", "--kubeconfig",
            kube.kubeconfig_path, "--remote-write-url", prometheus.write_url])
    finally:
        proxy.stop()
    assert result.exit_code == 0, result.output
    # Only reviews: it asks about the permissions, it does not use them.
    assert {(s.verb, s.resource) for s in kube.seen} == {("create", "selfsubjectaccessreviews")}
    assert used_rbac(kube.seen) == set()
    assert {aws_action(r) for r in proxy.seen} == granted_iam() - REMOTE_WRITE_IAM
