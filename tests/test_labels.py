"""Filters, labels from the owner and Kubernetes Events, end to end: `lbscrape run`
against the fake API server, moto in server mode and a real Prometheus."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from lbscrape.cli import cli
from tests import world
from tests.test_run import CLUSTER, Scene, logs, summary

NET = "networking.k8s.io/v1"
GONE = "k8s-blog-gone-1.us-east-1.elb.amazonaws.com"


@pytest.fixture
def scene(aws, kube, prometheus):
    return Scene(aws, kube, prometheus)


def edit(kube, api, resource, ns, name, labels=None, annotations=None):
    obj = kube.get(api, resource, ns, name)
    obj["metadata"].setdefault("labels", {}).update(labels or {})
    obj["metadata"].setdefault("annotations", {}).update(annotations or {})
    kube.put(api, resource, obj)


def warnings(result):
    return [e["msg"] for e in logs(result) if e["level"] == "warning"]


def stored_events(kube):
    return [kube.get("v1", "events", ns, name) for (api, res), objs in kube._objects.items()
            if res == "events" for (ns, name) in objs]


def event_posts(kube):
    return [s for s in kube.seen if s.resource == "events" and s.verb == "create"]


def series_labels(scene, metric):
    return [dict(k) for k in scene.prom.raw(metric)]


# --- filters ---------------------------------------------------------------------------

def test_opted_out_object_is_not_scraped(scene):
    edit(scene.kube, "v1", "services", "shop", "db",
         annotations={"lbscrape.io/scrape": "false"})
    result = scene.run(scene.clock)
    assert scene.prom.raw("nlb_new_flow_count_sum") == {}
    assert set(scene.stored("alb_request_count_sum")) == {scene.alb.name}
    assert set(scene.checkpoint()) == {scene.alb.dimension}
    assert "owners=1 lbs_found=1 lbs_resolved=1 unresolved=0 lbs_written=1" in summary(result)
    assert "owners_skipped=1" in summary(result)
    assert not warnings(result)


def test_namespace_filters(scene, aws):
    other = aws.create_lb("k8s-blog-www-0123456789")
    scene.kube.put(NET, "ingresses", world.ingress("blog", "www", other.dns_name))
    aws.put(other, "RequestCount", scene.requests.items())
    scene.run(scene.clock, "--exclude-namespace", "shop")
    assert set(scene.stored("alb_request_count_sum")) == {other.name}
    assert scene.prom.raw("nlb_new_flow_count_sum") == {}
    scene.run(scene.clock, "--namespace", "shop", "--namespace", "kube-system")
    assert set(scene.stored("alb_request_count_sum")) == {other.name, scene.alb.name}
    assert set(scene.checkpoint()) == {other.dimension, scene.alb.dimension,
                                       scene.nlb.dimension}


def test_namespace_filters_from_the_environment(scene, aws, monkeypatch):
    other = aws.create_lb("k8s-blog-www-0123456789")
    scene.kube.put(NET, "ingresses", world.ingress("blog", "www", other.dns_name))
    aws.put(other, "RequestCount", scene.requests.items())
    monkeypatch.setenv("LBSCRAPE_NAMESPACE", "blog kube-system")
    result = scene.run(scene.clock)
    assert set(scene.stored("alb_request_count_sum")) == {other.name}
    assert "namespaces=blog,kube-system exclude_namespaces= " in result.stderr
    monkeypatch.delenv("LBSCRAPE_NAMESPACE")
    monkeypatch.setenv("LBSCRAPE_EXCLUDE_NAMESPACE", "blog kube-system")
    scene.run(scene.clock)
    assert set(scene.stored("nlb_new_flow_count_sum")) == {scene.nlb.name}
    assert set(scene.checkpoint()) == {other.dimension, scene.alb.dimension,
                                       scene.nlb.dimension}


def test_a_namespace_both_selected_and_excluded_is_a_usage_error(scene):
    result = scene.run(scene.clock, "--namespace", "shop", "--exclude-namespace", "shop",
                       expect=2)
    assert "lbscrape: error: --exclude-namespace: shop also given to --namespace" in \
        result.stderr
    assert not scene.kube.seen


def test_filtered_and_opted_out_unresolvable_owners_get_no_warning_and_no_event(scene):
    scene.kube.put(NET, "ingresses", world.ingress("blog", "gone", GONE))
    scene.kube.put(NET, "ingresses", world.ingress(
        "shop", "gone", GONE, annotations={"lbscrape.io/scrape": "false",
                                           "lbscrape.io/labels": "broken"}))
    result = scene.run(scene.clock, "--exclude-namespace", "blog")
    assert "unresolved=0" in summary(result) and "owners_skipped=2" in summary(result)
    assert not warnings(result)
    assert not event_posts(scene.kube)


# --- labels ----------------------------------------------------------------------------

def test_labels_copied_from_the_owner_and_its_annotation(scene):
    edit(scene.kube, NET, "ingresses", "shop", "web",
         labels={"app.kubernetes.io/name": "web-frontend", "env": "staging"},
         annotations={"example.com/team": "payments",
                      "lbscrape.io/labels": "tier=edge, cost-center=42"})
    scene.run(scene.clock, "--label", "env=prod", "--label", "region_group=eu",
              "--label-from", "app.kubernetes.io/name=job", "--label-from", "env=env",
              "--label-from", "annotation:example.com/team=team")
    (alb,) = series_labels(scene, "alb_request_count_sum")
    assert alb == {
        "__name__": "alb_request_count_sum", "cluster": CLUSTER, "region": "us-east-1",
        "load_balancer_name": scene.alb.name, "load_balancer": scene.alb.dimension,
        "namespace": "shop", "ingress": "web",
        "region_group": "eu",  # --label
        "env": "staging",  # --label-from wins over --label
        "job": "web-frontend", "team": "payments",  # a label and an annotation copied
        "tier": "edge", "cost_center": "42",  # lbscrape.io/labels, name sanitised
    }
    # The Service has none of them: no label, not an empty one.
    (nlb,) = series_labels(scene, "nlb_new_flow_count_sum")
    assert nlb["env"] == "prod" and not {"job", "team", "tier"} & set(nlb)


def test_label_from_in_the_environment(scene, monkeypatch):
    edit(scene.kube, "v1", "services", "shop", "db", labels={"app": "postgres"},
         annotations={"example.com/team": "data"})
    monkeypatch.setenv("LBSCRAPE_LABEL_FROM", "app=job annotation:example.com/team=team")
    scene.run(scene.clock)
    (nlb,) = series_labels(scene, "nlb_new_flow_count_sum")
    assert (nlb["job"], nlb["team"]) == ("postgres", "data")


def test_annotation_cannot_override_contract_labels_and_says_so(scene):
    edit(scene.kube, NET, "ingresses", "shop", "web", annotations={
        "lbscrape.io/labels": "namespace=evil,load_balancer_name=x,__name__=y,"
                              "target_group=z,team=payments"})
    result = scene.run(scene.clock, "--log-format", "json")
    (alb,) = series_labels(scene, "alb_request_count_sum")
    assert (alb["__name__"], alb["namespace"], alb["load_balancer_name"], alb["team"]) == (
        "alb_request_count_sum", "shop", scene.alb.name, "payments")
    assert "target_group" not in alb
    w = warnings(result)
    assert w == [
        "Ingress shop/web: annotation lbscrape.io/labels: label namespace is set by lbscrape "
        "itself and cannot be overridden; ignored",
        "Ingress shop/web: annotation lbscrape.io/labels: label load_balancer_name is set by "
        "lbscrape itself and cannot be overridden; ignored",
        "Ingress shop/web: annotation lbscrape.io/labels: label name '__name__' starts with "
        "__, which Prometheus reserves; ignored",
        "Ingress shop/web: annotation lbscrape.io/labels: label target_group is set by "
        "lbscrape itself and cannot be overridden; ignored",
    ]
    assert "lbs_written=2" in summary(result)


def test_label_from_a_reserved_or_invalid_name_is_a_usage_error(scene):
    for args, message in (
            (["--label-from", "app=namespace"], "--label-from: 'namespace' is set by lbscrape"),
            (["--label-from", "app=ingress_group"], "--label-from: 'ingress_group' is set by"),
            (["--label-from", "app"], "--label-from: 'app' is not SOURCE=LABEL"),
            (["--label-from", "app=job-name"], "not a valid Prometheus label name")):
        result = scene.run(scene.clock, *args, expect=2)
        assert message in result.stderr, result.stderr
    assert not scene.kube.seen


def test_a_shared_load_balancer_gets_only_the_labels_all_owners_agree_on(scene):
    """Two Ingresses on one ALB (an IngressGroup): the same rule as namespace/ingress."""
    edit(scene.kube, NET, "ingresses", "shop", "web",
         labels={"team": "payments", "app": "web"},
         annotations={"lbscrape.io/labels": "tier=edge,zone=a"})
    scene.kube.put(NET, "ingresses", world.ingress("shop", "api", scene.alb.dns_name))
    edit(scene.kube, NET, "ingresses", "shop", "api",
         labels={"team": "payments", "app": "api"},
         annotations={"lbscrape.io/labels": "tier=edge,zone=b"})
    scene.run(scene.clock, "--label-from", "team=team", "--label-from", "app=app")
    (alb,) = series_labels(scene, "alb_request_count_sum")
    assert alb["team"] == "payments" and alb["tier"] == "edge"
    assert "app" not in alb and "zone" not in alb and "ingress" not in alb
    assert alb["namespace"] == "shop"


def test_bad_label_values_are_dropped_and_the_load_balancer_is_written(scene):
    edit(scene.kube, NET, "ingresses", "shop", "web", annotations={
        "example.com/owner": "x" * 1500,
        "lbscrape.io/labels": "team=payments,note=" + "n" * 2000 + ",bad,ok=1"})
    edit(scene.kube, "v1", "services", "shop", "db",
         annotations={"example.com/owner": "line1\nline2"})
    result = scene.run(scene.clock, "--label-from", "annotation:example.com/owner=owner")
    (alb,) = series_labels(scene, "alb_request_count_sum")
    assert (alb["team"], alb["ok"]) == ("payments", "1")
    assert "note" not in alb and "owner" not in alb
    (nlb,) = series_labels(scene, "nlb_new_flow_count_sum")
    assert "owner" not in nlb
    assert sorted(warnings(result)) == sorted([
        "Ingress shop/web: annotation example.com/owner (--label-from "
        "annotation:example.com/owner=owner): value is 1500 bytes, longer than the 1024 "
        "lbscrape writes; label owner not set",
        "Ingress shop/web: annotation lbscrape.io/labels: label note: value is 2000 bytes, "
        "longer than the 1024 lbscrape writes; not set",
        "Ingress shop/web: annotation lbscrape.io/labels: 'bad' is not KEY=VALUE; ignored",
        "Service shop/db: annotation example.com/owner (--label-from "
        "annotation:example.com/owner=owner): value has a control character (a newline, a "
        "tab, ...); label owner not set",
    ])
    assert "lbs_written=2" in summary(result) and result.exit_code == 0


def test_an_unreadable_opt_out_annotation_scrapes_and_warns(scene):
    edit(scene.kube, "v1", "services", "shop", "db", annotations={"lbscrape.io/scrape": "no"})
    result = scene.run(scene.clock)
    assert scene.stored("nlb_new_flow_count_sum")
    assert warnings(result) == ["Service shop/db: annotation lbscrape.io/scrape: 'no' is "
                                'neither "true" nor "false"; scraped as if "true"']


# --- events ----------------------------------------------------------------------------

def test_events_recorded_once_per_change_of_state(scene):
    kube = scene.kube
    kube.put(NET, "ingresses", world.ingress("blog", "gone", GONE))
    edit(kube, "v1", "services", "shop", "db", annotations={"lbscrape.io/labels": "oops"})
    first = scene.run(scene.clock - 120)
    assert "events_recorded=2" in summary(first)
    gone_uid = kube.get(NET, "ingresses", "blog", "gone")["metadata"]["uid"]
    db_uid = kube.get("v1", "services", "shop", "db")["metadata"]["uid"]
    got = {(e["metadata"]["namespace"], e["involvedObject"]["kind"],
            e["involvedObject"]["apiVersion"], e["involvedObject"]["name"],
            e["involvedObject"]["uid"], e["type"], e["reason"], e["message"])
           for e in stored_events(kube)}
    assert got == {
        ("blog", "Ingress", "networking.k8s.io/v1", "gone", gone_uid, "Warning",
         "LoadBalancerNotFound", f"no load balancer in us-east-1 has DNS name {GONE}"),
        ("shop", "Service", "v1", "db", db_uid, "Warning", "InvalidAnnotation",
         "annotation lbscrape.io/labels: 'oops' is not KEY=VALUE; ignored"),
    }
    assert all(e["source"]["component"] == "lbscrape" for e in stored_events(kube))

    # Unchanged: the same Events, not new ones, however many runs.
    for now in (scene.clock - 60, scene.clock):
        again = scene.run(now)
        assert "events_recorded=0" in summary(again)
    assert len(stored_events(kube)) == 2
    assert len(event_posts(kube)) == 6  # one create per object and run, 409 after the first

    # A change of state is a new Event; the others stay as they were.
    edit(kube, "v1", "services", "shop", "db", annotations={"lbscrape.io/labels": "x=1,y"})
    changed = scene.run(scene.clock)
    assert "events_recorded=1" in summary(changed)
    assert sorted(e["message"] for e in stored_events(kube) if e["reason"] ==
                  "InvalidAnnotation") == [
        "annotation lbscrape.io/labels: 'oops' is not KEY=VALUE; ignored",
        "annotation lbscrape.io/labels: 'y' is not KEY=VALUE; ignored"]

    # Once the API server has expired an Event (--event-ttl), a lasting problem is
    # recorded again, so `kubectl describe` keeps showing it.
    for e in stored_events(kube):
        if e["reason"] == "LoadBalancerNotFound":
            kube.delete("v1", "events", e["metadata"]["namespace"], e["metadata"]["name"])
    assert "events_recorded=1" in summary(scene.run(scene.clock))
    assert len([e for e in stored_events(kube) if e["reason"] == "LoadBalancerNotFound"]) == 1


def test_events_that_cannot_be_recorded_never_fail_the_run(scene):
    scene.kube.put(NET, "ingresses", world.ingress("blog", "gone", GONE))
    scene.kube.put(NET, "ingresses", world.ingress("blog", "gone2", GONE.replace("1", "2")))
    scene.kube.inject("POST", "/events", 403, times=10)
    result = scene.run(scene.clock)  # exit 0
    assert "lbs_written=2" in summary(result) and "events_recorded=0" in summary(result)
    assert len(event_posts(scene.kube)) == 1  # a 403 stops the others
    (line,) = [w for w in warnings(result) if "Events" in w]
    assert "cannot record Kubernetes Events" in line and "forbidden (403)" in line
    assert "rbac.yaml" in line and "2 Events not recorded this run" in line
    assert not stored_events(scene.kube)


def test_no_events_and_dry_run_record_none(scene, monkeypatch):
    scene.kube.put(NET, "ingresses", world.ingress("blog", "gone", GONE))
    scene.run(scene.clock, "--no-events")
    assert not event_posts(scene.kube)
    monkeypatch.setenv("LBSCRAPE_EVENTS", "false")
    scene.run(scene.clock)
    assert not event_posts(scene.kube)
    monkeypatch.delenv("LBSCRAPE_EVENTS")
    scene.run(scene.clock, "--dry-run")
    assert not event_posts(scene.kube)
    assert "events=off" in scene.run(scene.clock, "--no-events").stderr
    scene.run(scene.clock)  # the same scene with Events on records one: the test can fail
    assert len(event_posts(scene.kube)) == 1


def test_events_still_recorded_when_the_run_aborts(scene):
    scene.kube.put(NET, "ingresses", world.ingress("blog", "gone", GONE))
    scene.kube.put("v1", "configmaps", {
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "lbscrape-checkpoint", "namespace": "monitoring"},
        "data": {"checkpoint.json": "{not json"}})
    scene.run(scene.clock, expect=1)
    assert [e["reason"] for e in stored_events(scene.kube)] == ["LoadBalancerNotFound"]


# --- the other commands ----------------------------------------------------------------

def run_cli(scene, *args, expect=0):
    result = CliRunner().invoke(cli, [*args, "--region", "us-east-1",
                                      "--kubeconfig", scene.kube.kubeconfig_path])
    assert result.exit_code == expect, result.output + result.stderr
    return result.stdout


def test_discover_shows_copied_labels_skip_reasons_and_warnings(scene):
    kube = scene.kube
    edit(kube, NET, "ingresses", "shop", "web", labels={"app.kubernetes.io/name": "web"},
         annotations={"lbscrape.io/labels": "tier=edge,namespace=evil"})
    edit(kube, "v1", "services", "shop", "db", annotations={"lbscrape.io/scrape": "false"})
    kube.put(NET, "ingresses", world.ingress("blog", "gone", GONE))
    kube.put(NET, "ingresses", world.ingress("kube-system", "x", GONE))
    out = json.loads(run_cli(scene, "discover", "--cluster", "c", "-o", "json",
                             "--label-from", "app.kubernetes.io/name=job",
                             "--exclude-namespace", "kube-system", expect=3))
    (web,) = out["resolved"]
    assert web["labels"] == {"cluster": "c", "region": "us-east-1", "namespace": "shop",
                             "ingress": "web", "load_balancer_name": scene.alb.name,
                             "load_balancer": scene.alb.dimension, "job": "web",
                             "tier": "edge"}
    assert out["skipped"] == [
        {"kind": "Ingress", "namespace": "kube-system", "name": "x",
         "reason": "namespace excluded by --exclude-namespace"},
        {"kind": "Service", "namespace": "shop", "name": "db",
         "reason": 'opted out with annotation lbscrape.io/scrape: "false"'},
        {"kind": "Ingress", "namespace": "blog", "name": "gone",
         "reason": f"no load balancer in us-east-1 has DNS name {GONE}"},
    ]
    assert out["warnings"] == [{
        "kind": "Ingress", "namespace": "shop", "name": "web", "event": "InvalidAnnotation",
        "message": "annotation lbscrape.io/labels: label namespace is set by lbscrape itself "
                   "and cannot be overridden; ignored"}]
    table = run_cli(scene, "discover", "--namespace", "shop", expect=0)
    assert "Ingress shop/web" in table and "tier=edge" in table
    assert ('skipped Service shop/db: opted out with annotation lbscrape.io/scrape: "false"'
            in table)
    assert "skipped Ingress blog/gone: namespace not selected by --namespace" in table
    assert "warning Ingress shop/web: annotation lbscrape.io/labels: label namespace" in table
    assert not event_posts(kube)  # discover only looks


def test_estimate_counts_only_what_run_would_scrape(scene):
    edit(scene.kube, "v1", "services", "shop", "db",
         annotations={"lbscrape.io/scrape": "false"})
    assert json.loads(run_cli(scene, "estimate", "-o", "json"))["load_balancers"] == {
        "alb": 1}
    assert json.loads(run_cli(scene, "estimate", "-o", "json", "--exclude-namespace",
                              "shop"))["load_balancers"] == {}


def test_backfill_writes_the_labels_run_writes(scene, tmp_path):
    edit(scene.kube, NET, "ingresses", "shop", "web", labels={"app": "web"},
         annotations={"lbscrape.io/labels": "tier=edge"})
    edit(scene.kube, "v1", "services", "shop", "db",
         annotations={"lbscrape.io/scrape": "false"})
    scene.run(scene.clock, "--label-from", "app=job")
    run_labels = series_labels(scene, "alb_request_count_sum")
    out = tmp_path / "backfill.om"
    result = CliRunner().invoke(cli, [
        "backfill", "--cluster", CLUSTER, "--region", "us-east-1", "--kubeconfig",
        scene.kube.kubeconfig_path, "--start", "-30m", "--output", str(out), "--state-file",
        str(tmp_path / "state.json"), "--label-from", "app=job", "--yes"])
    assert result.exit_code == 0, result.output + result.stderr
    text = out.read_text()
    assert "nlb_" not in text  # opted out
    (line,) = {ln.split(" ")[0] for ln in text.splitlines()
               if ln.startswith("alb_request_count_sum{")}
    (want,) = run_labels
    assert line == "alb_request_count_sum{" + ",".join(
        f'{k}="{v}"' for k, v in sorted(want.items()) if k != "__name__") + "}"


def test_the_gap_warning_backfill_command_carries_label_from():
    from lbscrape.core.config import (
        CheckpointLocation,
        RunConfig,
        WindowSettings,
        parse_labels_from,
    )
    from lbscrape.core.model import Window
    from lbscrape.flows import pipeline

    cfg = RunConfig(
        cluster="c", region="us-east-1", window=WindowSettings(120, 60, 600, 3000),
        remote_write=None, checkpoint=CheckpointLocation("monitoring", "cp"),
        label_from=parse_labels_from(("app=job", "annotation:example.com/team=team")))
    command = pipeline.backfill_command(Window(0, 600, 60), ["lb"], cfg)
    assert " --label-from app=job --label-from annotation:example.com/team=team " in command
