"""`lbscrape discover` on the test world."""

from __future__ import annotations

import json

from click.testing import CliRunner

from lbscrape.cli import cli
from tests import world
from tests.test_run import Scene


def discover(scene, *args, expect=0):
    result = CliRunner().invoke(cli, ["discover", "--cluster", "c", "--region", "us-east-1",
                                      "--kubeconfig", scene.kube.kubeconfig_path, *args])
    assert result.exit_code == expect, result.output + result.stderr
    return result.output


def test_discover_shows_resolution_labels_lag_and_skips(aws, kube, prometheus):
    scene = Scene(aws, kube, prometheus)
    kube.put("networking.k8s.io/v1", "ingresses", world.ingress("a", "pending", None))
    out = json.loads(discover(scene, "-o", "json", "--label", "env=prod"))
    web = next(r for r in out["resolved"] if r["name"] == "web")
    assert web["load_balancer_name"] == scene.alb.name and web["arn"] == scene.alb.arn
    assert web["load_balancer"] == scene.alb.dimension and web["type"] == "application"
    assert web["labels"] == {"cluster": "c", "region": "us-east-1", "env": "prod",
                             "namespace": "shop", "ingress": "web",
                             "load_balancer_name": scene.alb.name,
                             "load_balancer": scene.alb.dimension}
    assert web["lag_seconds"] is None
    assert out["skipped"] == [{"kind": "Ingress", "namespace": "a", "name": "pending",
                               "reason": "no load balancer hostname in its status yet"}]
    scene.run(scene.clock)
    table = discover(scene)
    assert "Ingress shop/web" in table and "Service shop/db" in table
    assert "skipped Ingress a/pending: no load balancer hostname in its status yet" in table


def test_discover_exits_non_zero_when_an_owner_cannot_be_resolved(aws, kube, prometheus):
    scene = Scene(aws, kube, prometheus)
    kube.put("networking.k8s.io/v1", "ingresses",
             world.ingress("blog", "gone", "k8s-blog-gone-1.us-east-1.elb.amazonaws.com"))
    out = discover(scene, expect=3)
    assert ("skipped Ingress blog/gone: no load balancer in us-east-1 has DNS name "
            "k8s-blog-gone-1.us-east-1.elb.amazonaws.com") in out
