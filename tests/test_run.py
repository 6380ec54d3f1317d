"""`lbscrape run` end to end: the fake Kubernetes API, moto in server mode, a real Prometheus.

Times: CloudWatch holds one datapoint per minute up to the current minute; runs use
--now at or before the real clock, and every assertion compares the raw samples in
Prometheus with what CloudWatch holds, value for value and timestamp for timestamp.
"""

from __future__ import annotations

import json
import shlex
import time
from dataclasses import replace

import pytest
from click.testing import CliRunner

from lbscrape.cli import cli
from lbscrape.core.catalog import DEFAULT, Catalog
from lbscrape.core.config import CheckpointLocation, RunConfig, WindowSettings
from lbscrape.core.model import Window
from lbscrape.flows import pipeline
from tests import world
from tests.faultproxy import FaultProxy, Rule

CLUSTER = "test-cluster"
SETTLE = 120


class Scene:
    def __init__(self, aws, kube, prometheus):
        self.aws, self.kube, self.prom = aws, kube, prometheus
        self.clock = int(time.time())
        current_minute = self.clock // 60 * 60
        self.minutes = [current_minute - 60 * i for i in range(60, -1, -1)]
        kube.put("networking.k8s.io/v1", "ingressclasses", world.ingress_class())
        self.alb = aws.create_lb("k8s-shop-web-0123456789")
        self.nlb = aws.create_lb("k8s-shop-db-0123456789", "network")
        kube.put("networking.k8s.io/v1", "ingresses", world.ingress("shop", "web", self.alb.dns_name))
        kube.put("v1", "services", world.service("shop", "db", self.nlb.dns_name,
                                                 lb_class="service.k8s.aws/nlb"))
        # RequestCount 100+i, sparse 5xx, latency; NLB flows. Value i identifies the minute.
        self.requests = {ts: 100.0 + i for i, ts in enumerate(self.minutes)}
        self.flows = {ts: 7.0 * i for i, ts in enumerate(self.minutes)}
        aws.put(self.alb, "RequestCount", self.requests.items())
        aws.put(self.alb, "HTTPCode_ELB_5XX_Count",
                [(ts, float(i % 3)) for i, ts in enumerate(self.minutes) if i % 3])
        aws.put(self.alb, "TargetResponseTime",
                [(ts, 0.25 + i / 100) for i, ts in enumerate(self.minutes)])
        aws.put(self.nlb, "NewFlowCount", self.flows.items())

    def run(self, now, *extra, expect=0, remote_write_url=None):
        args = ["run", "--cluster", CLUSTER, "--region", "us-east-1",
                "--kubeconfig", self.kube.kubeconfig_path,
                "--remote-write-url", remote_write_url or self.prom.write_url,
                "--now", str(now), "--log-format", "json", "--remote-write-retries", "1", *extra]
        result = CliRunner().invoke(cli, args, catch_exceptions=False)
        assert result.exit_code == expect, result.output + result.stderr
        return result

    def checkpoint(self):
        cm = self.kube.get("v1", "configmaps", "monitoring", "lbscrape-checkpoint")
        return json.loads(cm["data"]["checkpoint.json"])["load_balancers"] if cm else None

    def stored(self, metric):
        """{load_balancer_name: [(ts_s, value)]} of everything Prometheus holds."""
        return {dict(k)["load_balancer_name"]: [(t // 1000, v) for t, v in pts]
                for k, pts in self.prom.raw(metric).items()}

    def expected(self, values, start, end):
        return [(ts, v) for ts, v in sorted(values.items()) if start <= ts < end]


def end_for(now):
    return (now - SETTLE) // 60 * 60


def logs(result):
    return [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]


def summary(result):
    return logs(result)[-1]["msg"]


@pytest.fixture
def scene(aws, kube, prometheus):
    return Scene(aws, kube, prometheus)


def test_exact_settled_samples_names_and_labels(scene):
    now = scene.clock
    result = scene.run(now)
    end = end_for(now)
    got = scene.prom.raw("alb_request_count_sum")
    assert list(got) == [tuple(sorted({
        "__name__": "alb_request_count_sum", "cluster": CLUSTER, "region": "us-east-1",
        "load_balancer_name": scene.alb.name, "load_balancer": scene.alb.dimension,
        "namespace": "shop", "ingress": "web"}.items()))]
    # Only whole periods that ended at least the settle delay ago; 10m initial lookback.
    assert scene.stored("alb_request_count_sum")[scene.alb.name] == scene.expected(
        scene.requests, end - 600, end)
    assert all(ts + 60 <= now - SETTLE for ts, _ in scene.stored("alb_request_count_sum")[
        scene.alb.name])
    rt = scene.stored("alb_target_response_time_average")[scene.alb.name]
    assert [v for _, v in rt] == [0.25 + scene.minutes.index(ts) / 100 for ts, _ in rt]
    # Sparse in CloudWatch (only non-zero minutes); zero-filled, as every minute had requests.
    assert scene.stored("alb_http_code_elb_5xx_count_sum")[scene.alb.name] == [
        (ts, float(scene.minutes.index(ts) % 3)) for ts in range(end - 600, end, 60)]
    flows = scene.prom.raw("nlb_new_flow_count_sum")
    labels = dict(next(iter(flows)))
    assert labels["service"] == "db" and "ingress" not in labels and labels["namespace"] == "shop"
    assert scene.stored("nlb_new_flow_count_sum")[scene.nlb.name] == scene.expected(
        scene.flows, end - 600, end)
    assert "lbs_found=2 lbs_resolved=2 unresolved=0 lbs_written=2 gmd_calls=1 " \
           "metrics_requested=23" in summary(result)
    assert scene.checkpoint() == {scene.alb.dimension: _iso(end), scene.nlb.dimension: _iso(end)}


def test_static_labels_and_env_configuration(scene, monkeypatch):
    monkeypatch.setenv("LBSCRAPE_LABEL", "env=prod team=sre")
    scene.run(scene.clock)
    labels = dict(next(iter(scene.prom.raw("nlb_new_flow_count_sum"))))
    assert labels["env"] == "prod" and labels["team"] == "sre"


def test_second_run_right_after_writes_nothing_new(scene):
    now = scene.clock
    scene.run(now)
    before = scene.stored("alb_request_count_sum")
    result = scene.run(now + 0)
    assert scene.stored("alb_request_count_sum") == before
    assert "gmd_calls=0 metrics_requested=0 samples_written=0 samples_rejected=0" in summary(result)


def test_consecutive_runs_leave_no_gap_and_no_duplicate(scene):
    start_now = scene.clock - 25 * 60
    nows = [start_now + d for d in (0, 61, 90, 250, 251, 600, 905, 1499)]
    for now in nows:
        scene.run(now)
    first_end, last_end = end_for(nows[0]), end_for(nows[-1])
    for metric, values, lb in (("alb_request_count_sum", scene.requests, scene.alb),
                               ("nlb_new_flow_count_sum", scene.flows, scene.nlb)):
        got = scene.stored(metric)[lb.name]
        assert got == scene.expected(values, first_end - 600, last_end)
        assert len({ts for ts, _ in got}) == len(got)


def test_remote_write_down_keeps_checkpoint_then_fills_every_minute(scene):
    first = scene.clock - 10 * 60
    scene.run(first)
    before = scene.checkpoint()
    scene.prom.stop()
    result = scene.run(first + 300, expect=1)
    assert "lbs_failed=2" in summary(result) and scene.alb.name in summary(result)
    assert scene.checkpoint() == before
    scene.prom.start()
    scene.run(scene.clock)
    assert scene.stored("alb_request_count_sum")[scene.alb.name] == scene.expected(
        scene.requests, end_for(first) - 600, end_for(scene.clock))


def test_a_login_page_answering_200_moves_no_checkpoint(scene):
    proxy = FaultProxy(scene.prom.url)
    proxy.start()
    proxy.add(Rule(lambda r: r.method == "POST", status=200, headers={
        "Content-Type": "text/html"}, body=b"<html><body>Sign in</body></html>"))
    try:
        result = scene.run(scene.clock, expect=1,
                           remote_write_url=f"{proxy.url}/api/v1/write")
    finally:
        proxy.stop()
    assert "with an HTML page" in summary(result)
    assert scene.checkpoint() is None  # nothing landed, so nothing is skipped next time


def test_checkpoint_store_failure_repeats_the_same_window_with_the_same_values(scene):
    now = scene.clock - 120
    scene.kube.inject("POST", "/configmaps", 500, times=5)
    result = scene.run(now, expect=1)  # samples accepted, checkpoint could not be stored
    assert "cannot store checkpoint" in result.stderr
    assert scene.checkpoint() is None
    written = scene.stored("alb_request_count_sum")
    result = scene.run(scene.clock)  # repeats the window: same values, nothing doubled
    after = scene.stored("alb_request_count_sum")[scene.alb.name]
    assert after[: len(written[scene.alb.name])] == written[scene.alb.name]
    assert after == scene.expected(scene.requests, end_for(now) - 600, end_for(scene.clock))
    # The repeated samples were already there: Prometheus refuses them as out of order,
    # bisection isolates them, and the new minutes still land.
    rejected = int(summary(result).split("samples_rejected=")[1].split()[0])
    assert rejected > 0


def test_transient_checkpoint_store_error_is_retried(scene):
    scene.kube.inject("POST", "/configmaps", 503, times=1)
    scene.run(scene.clock)
    assert scene.checkpoint() is not None
    assert [s.verb for s in scene.kube.seen if s.resource == "configmaps"] == [
        "get", "create", "create"]


def test_checkpoint_conflict_is_merged(scene):
    scene.run(scene.clock - 300)
    scene.kube.inject("PUT", "/configmaps/lbscrape-checkpoint", 409)
    scene.run(scene.clock)
    end = _iso(end_for(scene.clock))
    assert scene.checkpoint() == {scene.alb.dimension: end, scene.nlb.dimension: end}


def test_checkpoint_older_than_max_catchup_is_clamped_with_a_warning(scene, tmp_path):
    old = scene.clock - 58 * 60
    scene.run(old, "--initial-lookback", "1m")
    result = scene.run(scene.clock, "--max-catchup", "20m", "--exclude-namespace", "kube-system",
                       "--label-from", "app=job")
    warnings = [e["msg"] for e in logs(result) if e["level"] == "warning"]
    gap_lines = [w for w in warnings if "--max-catchup" in w]
    assert len(gap_lines) == 1  # one line per gap, naming every load balancer in it
    assert scene.alb.name in gap_lines[0] and scene.nlb.name in gap_lines[0]
    assert "for 2 load balancers" in gap_lines[0] and "gap" in gap_lines[0]
    end = end_for(scene.clock)
    got = scene.stored("alb_request_count_sum")[scene.alb.name]
    assert got == scene.expected(scene.requests, end_for(old) - 60, end_for(old)) + \
        scene.expected(scene.requests, end - 20 * 60, end)

    # The command the warning names fills the gap exactly, once the receiver takes
    # samples older than its newest (an out-of-order window).
    command = gap_lines[0].split("fill it with: ")[1].split(" --remote-write-url URL")[0]
    args = shlex.split(command)
    assert args[:2] == ["lbscrape", "backfill"]
    assert "--exclude-namespace kube-system --label-from app=job" in command or \
        "--label-from app=job --exclude-namespace kube-system" in command
    scene.prom.stop()
    scene.prom.ooo_window = "1d"
    scene.prom.start()
    filled = CliRunner().invoke(cli, [
        *args[1:], "--kubeconfig", scene.kube.kubeconfig_path, "--remote-write-url",
        scene.prom.write_url, "--state-file", str(tmp_path / "backfill.json")])
    assert filled.exit_code == 0, filled.output + filled.stderr
    got = scene.stored("alb_request_count_sum")[scene.alb.name]
    assert got == scene.expected(scene.requests, end_for(old) - 60, end)
    # The gap got the same zero-filled sparse series as the runs wrote around it.
    assert scene.stored("alb_http_code_elb_5xx_count_sum")[scene.alb.name] == [
        (ts, float(scene.minutes.index(ts) % 3))
        for ts, _ in scene.expected(scene.requests, end_for(old) - 60, end)]


def test_the_suggested_backfill_uses_the_same_metrics_config_and_zero_fill():
    cfg = RunConfig(
        cluster="c", region="us-east-1", window=WindowSettings(120, 60, 600, 3000),
        remote_write=None, checkpoint=CheckpointLocation("monitoring", "cp"),
        catalog=Catalog(DEFAULT.entries, source="/etc/lbscrape/metrics.yaml"), zero_fill=False)
    args = shlex.split(pipeline.backfill_command(Window(0, 3600, 60), ["lb"], cfg)
                       .split(" --remote-write-url")[0])
    assert args[args.index("--metrics-config") + 1] == "/etc/lbscrape/metrics.yaml"
    assert "--no-zero-fill" in args
    plain = pipeline.backfill_command(Window(0, 3600, 60), ["lb"], replace(
        cfg, catalog=DEFAULT, zero_fill=True))
    assert "--metrics-config" not in plain and "zero-fill" not in plain


def test_unresolvable_owner_is_a_warning_and_the_others_are_written(scene):
    scene.kube.put("networking.k8s.io/v1", "ingresses",
                   world.ingress("blog", "gone", "k8s-blog-gone-1.us-east-1.elb.amazonaws.com"))
    result = scene.run(scene.clock)
    warnings = [e["msg"] for e in logs(result) if e["level"] == "warning"]
    assert any("Ingress blog/gone" in w and "k8s-blog-gone-1.us-east-1.elb.amazonaws.com" in w
               for w in warnings)
    assert "lbs_found=3 lbs_resolved=2 unresolved=1 lbs_written=2" in summary(result)
    assert set(scene.stored("alb_request_count_sum")) == {scene.alb.name}


def test_owners_without_hostname_or_of_other_controllers_are_skipped(scene):
    kube = scene.kube
    kube.put("networking.k8s.io/v1", "ingressclasses",
             world.ingress_class("nginx", "k8s.io/ingress-nginx"))
    kube.put("networking.k8s.io/v1", "ingresses", world.ingress("a", "pending", None))
    kube.put("networking.k8s.io/v1", "ingresses",
             world.ingress("a", "nginx", scene.alb.dns_name, class_name="nginx"))
    kube.put("v1", "services", world.service("a", "other", scene.nlb.dns_name,
                                             lb_class="example.com/lb"))  # another controller's
    kube.put("v1", "services", world.service("a", "internal", None, svc_type="ClusterIP"))
    result = scene.run(scene.clock)
    assert "lbs_found=2 lbs_resolved=2 unresolved=0" in summary(result)
    assert not [e for e in logs(result) if e["level"] == "warning"]
    labels = dict(next(iter(scene.prom.raw("nlb_new_flow_count_sum"))))
    assert labels["service"] == "db"  # the other controller's Service is no second owner


def test_dry_run_prints_samples_and_writes_nothing(scene):
    result = scene.run(scene.clock, "--dry-run")
    lines = [line for line in result.stdout.splitlines() if line.startswith("alb_request_count_sum{")]
    assert len(lines) == 10
    assert f'load_balancer_name="{scene.alb.name}"' in lines[0]
    assert scene.prom.raw("alb_request_count_sum") == {}
    assert scene.checkpoint() is None
    assert not [s for s in scene.kube.seen if s.verb in ("create", "update", "patch")]


def test_secrets_in_the_remote_write_url_are_not_logged(scene):
    url = scene.prom.write_url.replace("http://", "http://scraper:s3cr3t-pass@")
    result = scene.run(scene.clock, remote_write_url=url)
    assert "s3cr3t-pass" not in result.stderr + result.stdout
    assert "***@" in result.stderr


def _iso(ts):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def test_checkpoint_update_keeps_labels_annotations_and_other_keys(scene):
    scene.kube.put("v1", "configmaps", {
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "lbscrape-checkpoint", "namespace": "monitoring",
                     "labels": {"team": "sre"}, "annotations": {"note": "keep me"}},
        "data": {"README": "managed by lbscrape"}})
    scene.run(scene.clock)
    cm = scene.kube.get("v1", "configmaps", "monitoring", "lbscrape-checkpoint")
    assert cm["metadata"]["labels"] == {"team": "sre"}
    assert cm["metadata"]["annotations"] == {"note": "keep me"}
    assert cm["data"]["README"] == "managed by lbscrape"
    assert set(json.loads(cm["data"]["checkpoint.json"])["load_balancers"]) == {
        scene.alb.dimension, scene.nlb.dimension}


def test_unparseable_checkpoint_stops_the_run_and_writes_nothing(scene):
    scene.kube.put("v1", "configmaps", {
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "lbscrape-checkpoint", "namespace": "monitoring"},
        "data": {"checkpoint.json": "{not json"}})
    result = scene.run(scene.clock, "--log-format", "text", expect=1)
    errors = [line for line in result.stderr.splitlines() if "ERROR" in line]
    assert len(errors) == 1 and "monitoring/lbscrape-checkpoint" in errors[0]
    assert "delete the ConfigMap" in errors[0]
    assert scene.prom.raw("alb_request_count_sum") == {}
