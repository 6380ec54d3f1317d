"""Per-target-group series, labelled through TargetGroupBindings: the pure parts (listing,
join, bindings), then `run`, `discover`, `estimate` and `backfill` against the fake API
server, moto in server mode and a real Prometheus.

moto matches GetMetricData dimensions as an ordered list (CloudWatch: as a set), so the
datapoints are published in the order lbscrape asks (TargetGroup, LoadBalancer). Like
CloudWatch, a LoadBalancer-only query does not see them: the load balancer's own series
must not change when its target groups publish.
"""

from __future__ import annotations

import json

import boto3
import pytest
from botocore.stub import Stubber
from click.testing import CliRunner

from lbscrape.aws.cloudwatch import Call, Query, fetch
from lbscrape.aws.resolve import DescribedTg, attach, find_target_groups
from lbscrape.cli import cli
from lbscrape.core.catalog import DEFAULT
from lbscrape.core.errors import KubeError
from lbscrape.core.model import Binding, LoadBalancer, MetricSpec, TargetGroup, Window
from lbscrape.flows import backfill
from lbscrape.kube import discovery
from lbscrape.kube.client import make_api_client
from tests import world
from tests.test_run import CLUSTER, Scene, end_for, logs, summary

TGB = "elbv2.k8s.aws/v1beta1"
ARN = "arn:aws:elasticloadbalancing:us-east-1:123456789012:"


def lb(name, lb_type="application"):
    return LoadBalancer(f"{ARN}loadbalancer/app/{name}/1", name, lb_type, f"app/{name}/1", ())


# --- pure: listing and join ------------------------------------------------------------

def test_attach_joins_groups_to_their_load_balancers_and_bindings():
    a, b = lb("a"), lb("b", "network")
    clb = LoadBalancer(None, "c", "classic", "c", ())
    shared = DescribedTg(f"{ARN}targetgroup/shared/9", "shared", (a.arn, b.arn))
    only_a = DescribedTg(f"{ARN}targetgroup/a-web/7", "a-web", (a.arn,))
    idle = DescribedTg(f"{ARN}targetgroup/idle/8", "idle", ())
    bound = Binding("team", "web", "http")
    got = {x.name: x for x in attach([a, b, clb], [shared, only_a, idle],
                                     {only_a.arn: bound})}
    assert got["a"].target_groups == (TargetGroup("a-web", "targetgroup/a-web/7", bound),
                                      TargetGroup("shared", "targetgroup/shared/9"))
    assert got["b"].target_groups == (TargetGroup("shared", "targetgroup/shared/9"),)
    assert got["c"].target_groups == ()


def test_no_listing_when_nothing_needs_target_groups():
    client = boto3.client("elbv2", region_name="us-east-1")
    asked = []
    with Stubber(client):  # any call would fail: there is no response queued
        clb = LoadBalancer(None, "c", "classic", "c", ())
        assert find_target_groups([clb], client, lambda: asked.append(1) or {}) == (clb,)
        nlb = lb("n", "network")
        assert find_target_groups([nlb], client, lambda: asked.append(1) or {},
                                  lambda t: t == "application") == (nlb,)
    assert asked == []


def test_one_listing_of_400_a_page_and_bindings_only_when_a_group_is_ours():
    client = boto3.client("elbv2", region_name="us-east-1")
    a = lb("a")
    page = {"TargetGroups": [{"TargetGroupArn": f"{ARN}targetgroup/other/1",
                              "TargetGroupName": "other",
                              "LoadBalancerArns": [f"{ARN}loadbalancer/app/x/2"]}]}
    asked = []
    with Stubber(client) as stub:
        stub.add_response("describe_target_groups", {**page, "NextMarker": "m"},
                          {"PageSize": 400})
        stub.add_response("describe_target_groups", {"TargetGroups": []},
                          {"PageSize": 400, "Marker": "m"})
        assert find_target_groups([a], client, lambda: asked.append(1) or {}) == (a,)
        stub.assert_no_pending_responses()
    assert asked == []  # no group of ours: the cluster is not asked


def test_a_failed_target_group_query_fails_its_load_balancer():
    client = boto3.client("cloudwatch", region_name="us-east-1")
    win = Window(1_800_000_000, 1_800_000_120, 60)
    spec = MetricSpec("AWS/ApplicationELB", "RequestCount", "Sum", "x")
    tg_spec = MetricSpec("AWS/ApplicationELB", "RequestCount", "Sum", "y")
    call = Call(win, (Query("q0", "app/a/1", (("LoadBalancer", "app/a/1"),), spec),
                      Query("q1", "app/a/1", (("TargetGroup", "targetgroup/t/1"),
                                              ("LoadBalancer", "app/a/1")), tg_spec,
                            "targetgroup/t/1")))
    with Stubber(client) as stub:
        stub.add_response("get_metric_data", {"MetricDataResults": [
            {"Id": "q0", "Timestamps": [], "Values": [], "StatusCode": "Complete"},
            {"Id": "q1", "Timestamps": [], "Values": [], "StatusCode": "Forbidden",
             "Messages": [{"Code": "Forbidden", "Value": "no"}]}]})
        res = fetch(client, [call])
    assert set(res.failed) == {"app/a/1"} and "RequestCount: Forbidden" in res.failed["app/a/1"]
    assert list(res.tg_samples) == [("app/a/1", "targetgroup/t/1", tg_spec)]


# --- bindings through the real kubernetes client -----------------------------------------

def bindings(kube):
    api, _ = make_api_client(kube.kubeconfig_path, None)
    return discovery.target_group_bindings(api)


def test_bindings_by_arn_with_numeric_and_named_ports_and_conflicts(kube, caplog):
    kube.put(TGB, "targetgroupbindings", world.target_group_binding("a", "x", "arn:1", "web", 80))
    kube.put(TGB, "targetgroupbindings", world.target_group_binding("b", "y", "arn:2", "api",
                                                                     "http"))
    for ns in ("c", "d"):  # one group bound to two Services: neither label would be true
        kube.put(TGB, "targetgroupbindings", world.target_group_binding(ns, "z", "arn:3", ns, 1))
    kube.put(TGB, "targetgroupbindings", {"metadata": {"namespace": "e", "name": "bad"},
                                          "spec": {"targetGroupARN": "arn:4"}})
    assert bindings(kube) == {"arn:1": Binding("a", "web", "80"),
                              "arn:2": Binding("b", "api", "http")}
    assert "target group arn:3 is bound by 2 TargetGroupBindings" in caplog.text
    assert [(s.verb, s.api, s.resource, s.namespace) for s in kube.seen] == [
        ("list", TGB, "targetgroupbindings", None)]


def test_no_crd_means_no_bindings_and_forbidden_is_an_error(kube):
    kube.remove_api("elbv2.k8s.aws/v1beta1")
    assert bindings(kube) == {}
    kube.inject("GET", "/targetgroupbindings", 403)
    with pytest.raises(KubeError, match=r"list targetgroupbindings.elbv2.k8s.aws: forbidden "
                                        r"\(403\).*cronjob/rbac.yaml"):
        bindings(kube)


# --- run, discover, estimate, backfill ----------------------------------------------------

class TgScene(Scene):
    """The ALB serves two teams' target groups, bound to their Services; the NLB one
    unbound group. Values identify group and minute."""

    def __init__(self, aws, kube, prometheus, crd=True):
        super().__init__(aws, kube, prometheus)
        self.web = aws.create_tg(self.alb, "k8s-shop-web-aaaaaaaaaa")
        self.api = aws.create_tg(self.alb, "k8s-team-api-bbbbbbbbbb", port=8080)
        self.db = aws.create_tg(self.nlb, "k8s-shop-db-cccccccccc", port=5432)
        if crd:
            for ns, tg, svc, port in (("shop", self.web, "web", 80),
                                      ("team", self.api, "api", "http")):
                kube.put(TGB, "targetgroupbindings",
                         world.target_group_binding(ns, tg.name, tg.arn, svc, port))
        else:
            kube.remove_api(TGB)
        m = self.minutes
        self.web_requests = {ts: 10.0 + i for i, ts in enumerate(m)}
        self.api_requests = {ts: 3.0 for i, ts in enumerate(m) if i % 2 == 0}  # every other
        self.api_5xx = {ts: 1.0 for i, ts in enumerate(m) if i % 4 == 0}
        aws.put_tg(self.alb, self.web, "RequestCount", self.web_requests.items())
        aws.put_tg(self.alb, self.api, "RequestCount", self.api_requests.items())
        aws.put_tg(self.alb, self.api, "HTTPCode_Target_5XX_Count", self.api_5xx.items())
        aws.put_tg(self.nlb, self.db, "HealthyHostCount", [(ts, 2.0) for ts in m])

    def tg_stored(self, metric):
        return {dict(k)["target_group"]: (dict(k), [(t // 1000, v) for t, v in pts])
                for k, pts in self.prom.raw(metric).items()}


def test_target_group_series_with_binding_labels(aws, kube, prometheus):
    scene = TgScene(aws, kube, prometheus)
    now = scene.clock
    result = scene.run(now)
    end = end_for(now)
    window = range(end - 600, end, 60)
    alb_base = {"cluster": CLUSTER, "region": "us-east-1", "load_balancer_name": scene.alb.name,
                "load_balancer": scene.alb.dimension, "namespace": "shop", "ingress": "web"}
    got = scene.tg_stored("alb_tg_request_count_sum")
    assert got == {
        scene.web.name: ({**alb_base, "__name__": "alb_tg_request_count_sum",
                          "target_group": scene.web.name, "target_namespace": "shop",
                          "target_service": "web", "target_port": "80"},
                         scene.expected(scene.web_requests, end - 600, end)),
        scene.api.name: ({**alb_base, "__name__": "alb_tg_request_count_sum",
                          "target_group": scene.api.name, "target_namespace": "team",
                          "target_service": "api", "target_port": "http"},
                         scene.expected(scene.api_requests, end - 600, end)),
    }
    # Zero-filled from the group's own RequestCount: 0 in its quiet-but-busy minutes, and
    # nothing in the minutes it had no request, although the ALB had traffic in all.
    five = scene.tg_stored("alb_tg_http_code_target_5xx_count_sum")
    assert five[scene.api.name][1] == [(ts, scene.api_5xx.get(ts, 0.0)) for ts in window
                                       if ts in scene.api_requests]
    assert five[scene.web.name][1] == [(ts, 0.0) for ts in window]
    # An unbound group: its name only.
    (labels, pts), = scene.tg_stored("nlb_tg_healthy_host_count_average").values()
    assert labels == {"__name__": "nlb_tg_healthy_host_count_average", "cluster": CLUSTER,
                      "region": "us-east-1", "load_balancer_name": scene.nlb.name,
                      "load_balancer": scene.nlb.dimension, "namespace": "shop",
                      "service": "db", "target_group": scene.db.name}
    assert pts == [(ts, 2.0) for ts in window]
    # The load balancer's own series are untouched by its groups' datapoints.
    assert scene.stored("alb_request_count_sum")[scene.alb.name] == scene.expected(
        scene.requests, end - 600, end)
    # One checkpoint per load balancer: its target groups ride in its window.
    assert set(scene.checkpoint()) == {scene.alb.dimension, scene.nlb.dimension}
    assert "lbs_written=2 gmd_calls=1 metrics_requested=45" in summary(result)
    assert "target_groups=3" in summary(result)

    # discover shows each group and the Service bound to it.
    out = CliRunner().invoke(cli, ["discover", "--cluster", CLUSTER, "--region", "us-east-1",
                                   "--kubeconfig", kube.kubeconfig_path, "-o", "json"])
    assert out.exit_code == 0, out.output
    web = next(r for r in json.loads(out.stdout)["resolved"] if r["name"] == "web")
    assert web["target_groups"] == [
        {"name": scene.web.name, "target_group": scene.web.dimension,
         "binding": {"namespace": "shop", "service": "web", "port": "80"}},
        {"name": scene.api.name, "target_group": scene.api.dimension,
         "binding": {"namespace": "team", "service": "api", "port": "http"}}]
    table = CliRunner().invoke(cli, ["discover", "--cluster", CLUSTER, "--region", "us-east-1",
                                     "--kubeconfig", kube.kubeconfig_path]).stdout
    assert [line.split() for line in table.splitlines() if scene.db.name in line] == [
        [scene.db.name, scene.nlb.name, "-"]]

    # estimate counts what the run requested: 10 per ALB group, 2 per NLB group.
    est = CliRunner().invoke(cli, ["estimate", "--region", "us-east-1", "--kubeconfig",
                                   kube.kubeconfig_path, "-o", "json"])
    assert est.exit_code == 0, est.output
    doc = json.loads(est.stdout)
    assert doc["target_groups"] == {"alb_tg": 2, "nlb_tg": 1}
    assert doc["per_run"]["metrics_requested"] == 23 + 2 * 10 + 2
    tg_rows = {m["metric"]: m["metrics_per_month"] for m in doc["by_metric"]
               if m["type"] == "alb_tg"}
    assert tg_rows["alb_tg_request_count_sum"] == 2 * 43_200


def test_without_the_crd_groups_get_their_name_only(aws, kube, prometheus):
    scene = TgScene(aws, kube, prometheus, crd=False)
    result = scene.run(scene.clock)
    got = scene.tg_stored("alb_tg_request_count_sum")
    assert set(got) == {scene.web.name, scene.api.name}
    assert not any(k.startswith("target_") and k != "target_group"
                   for labels, _ in got.values() for k in labels)
    assert [e for e in logs(result) if e["level"] in ("warning", "error")] == []
    assert ("list", TGB, "targetgroupbindings", None) in {
        (s.verb, s.api, s.resource, s.namespace) for s in kube.seen}


def test_dropping_the_target_group_metrics_costs_no_call(aws, kube, prometheus, tmp_path):
    scene = TgScene(aws, kube, prometheus)
    path = tmp_path / "m.yaml"
    path.write_text("application:\n  drop:\n" + "".join(
        f"    - metric: {e.metric}\n      per: target_group\n"
        for e in DEFAULT.entries["application"] if e.dimensions == "target_group")
        + "network:\n  drop:\n    - metric: HealthyHostCount\n"
          "    - metric: UnHealthyHostCount\n")
    kube.seen.clear()
    result = scene.run(scene.clock, "--metrics-config", str(path))
    assert "metrics_requested=23" in summary(result) and "target_groups=0" in summary(result)
    assert scene.prom.raw("{target_group!=''}") == {}
    assert all(s.resource != "targetgroupbindings" for s in kube.seen)


def test_backfill_writes_the_same_target_group_series(aws, kube, prometheus, tmp_path):
    scene = TgScene(aws, kube, prometheus)
    end = end_for(scene.clock)
    start = end - 900
    out = tmp_path / "b.om"
    result = CliRunner().invoke(cli, [
        "backfill", "--cluster", CLUSTER, "--region", "us-east-1", "--kubeconfig",
        kube.kubeconfig_path, "--now", str(scene.clock), "--start", str(start),
        "--end", str(end), "--output", str(out), "--state-file", str(tmp_path / "s.json"),
        "--load-balancer", scene.alb.name], catch_exceptions=False)
    assert result.exit_code == 0, result.output + result.stderr
    assert "for 1 load balancers and 2 of their target groups" in result.output
    lines = [line for line in out.read_text().splitlines()
             if line.startswith("alb_tg_request_count_sum{")]
    web = [line for line in lines if f'target_group="{scene.web.name}"' in line]
    assert 'target_namespace="shop"' in web[0] and 'target_port="80"' in web[0]
    assert [float(line.split()[-2]) for line in web] == [
        v for _, v in scene.expected(scene.web_requests, start, end)]
    assert not (tmp_path / "s.json").exists()  # complete: removed
    # An unfinished one keeps a target group as one more target, readable by --resume.
    window = Window(start, end, 60)
    tg = backfill.Target(
        f"{scene.alb.dimension}|targetgroup/{scene.web.name}/x", scene.alb.name,
        (("TargetGroup", f"targetgroup/{scene.web.name}/x"),
         ("LoadBalancer", scene.alb.dimension)),
        (("cluster", CLUSTER), ("target_group", scene.web.name)),
        DEFAULT.specs("application", "target_group"),
        DEFAULT.fill_plan("application", "target_group"))
    state = backfill.State(window, (tg,), "file x", done={0}, partial=(1, 5))
    assert backfill.State.from_json(state.to_json(), "s.json") == state
