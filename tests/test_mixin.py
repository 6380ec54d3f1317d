"""`lbscrape mixin` without Prometheus: the --config file and --owner, what the catalog
decides, the PromQL rules every query follows, and the command."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml  # type: ignore[import-untyped,unused-ignore]
from click.testing import CliRunner

from lbscrape.cli import cli
from lbscrape.core.catalog import DEFAULT, KNOWN, prom_name
from lbscrape.core.errors import ConfigError
from lbscrape.core.metrics_config import tailor
from lbscrape.mixin import build
from lbscrape.mixin import config as mixin_config
from lbscrape.mixin.config import (
    ALERT_DEFAULTS,
    DEFAULT_CONFIG,
    OwnerRef,
    from_doc,
    parse_owner,
    parse_selector,
    parse_text,
)
from lbscrape.mixin.config import load as load_config


def exprs(bundle):
    """Every PromQL expression of a bundle: panel targets, alerts, recording rules."""
    out = [t.expr for d in bundle.dashboards for p in d.panels for t in p.targets]
    return out + [r["expr"] for r in (*bundle.alerts, *bundle.records)]


def panel(bundle, key, title):
    return next(p for d in bundle.dashboards if d.key == key for p in d.panels
                if p.title == title)


# --- --owner and --config ------------------------------------------------------------------

@pytest.mark.parametrize(("text", "ref"), [
    ("shop/ingress/web", OwnerRef("ingress", "web", "shop")),
    ("shop/service/echo", OwnerRef("service", "echo", "shop")),
    ("shop/svc/echo", OwnerRef("service", "echo", "shop")),
    ("ingress-group/shared", OwnerRef("ingress-group", "shared", None)),
    # A group spans namespaces and its series carry none: the namespace selects nothing.
    ("shop/ingress-group/shared", OwnerRef("ingress-group", "shared", None)),
])
def test_owner_forms(text, ref):
    assert parse_owner(text) == ref


def test_owner_selectors_are_the_labels_lbscrape_writes():
    assert [str(m) for m in parse_owner("shop/ingress/web").matchers()] == [
        'namespace="shop"', 'ingress="web"']
    assert [str(m) for m in parse_owner("shop/service/db").matchers()] == [
        'namespace="shop"', 'service="db"']
    assert [str(m) for m in parse_owner("ingress-group/shared").matchers()] == [
        'ingress_group="shared"']
    assert parse_owner("ingress-group/a.b").slug == "ingress-group-a-b"


@pytest.mark.parametrize(("text", "message"), [
    ("web", "cannot read 'web'"),
    ("shop/pod/web", "'pod' is not a kind"),
    ("shop/ingress/Web", "'Web' is not a Kubernetes object name"),
    ("Shop/ingress/web", "'Shop' is not a Kubernetes namespace"),
])
def test_bad_owners(text, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        parse_owner(text)


def test_selector_matchers():
    ms = parse_selector('{cluster=~"prod-.*", env!="dev",  team="a\\"b"}')
    assert [(m.name, m.op, m.value) for m in ms] == [
        ("cluster", "=~", "prod-.*"), ("env", "!=", "dev"), ("team", "=", 'a"b')]
    assert str(ms[2]) == 'team="a\\"b"'
    with pytest.raises(ValueError, match="cannot read a label matcher"):
        parse_selector("cluster=prod")


def test_the_documented_config_parses(tmp_path):
    doc = yaml.safe_load((mixin_config.__doc__ or "").split("YAML (or JSON) file:\n")[1]
                         .split("\n\nThe whole")[0])
    cfg = from_doc(doc, "mixin.yaml")
    assert [str(m) for m in cfg.selector] == ['cluster=~"prod-.*"']
    assert cfg.alert("AlbElb5xxRatioHigh").threshold == 0.02
    assert cfg.alert("AlbElb5xxRatioHigh").severity == "page"
    assert cfg.alert("AlbElb5xxRatioHigh").min_traffic == 100  # kept from the defaults
    assert not cfg.alert("ClassicElbSpillover").enabled
    assert cfg.kubernetes.labels == (("release", "kube-prometheus-stack"),)
    assert cfg.dashboards.tags == ("lbscrape", "edge")
    path = tmp_path / "mixin.json"
    path.write_text(json.dumps(doc))
    assert load_config(str(path)) == from_doc(doc, str(path))
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    assert load_config(str(empty)).alerts == DEFAULT_CONFIG.alerts


def test_the_readme_config_example_parses():
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    block = readme.split("**Configuration** (`--config FILE`")[1].split("```yaml\n")[1]
    cfg = from_doc(yaml.safe_load(block.split("```")[0]), "README.md")
    assert cfg.alert("AlbElb5xxRatioHigh").min_traffic == 500
    assert cfg.kubernetes.labels == (("release", "kube-prometheus-stack"),)


@pytest.mark.parametrize(("doc", "message"), [
    ({"alerts": {"AlbElb5xxRatio": {}}}, "alerts.AlbElb5xxRatio: unknown key "
                                         "'AlbElb5xxRatio' (did you mean AlbElb5xxRatioHigh?)"),
    ({"alerts": {"AlbElb5xxRatioHigh": {"for": "5 min"}}},
     "alerts.AlbElb5xxRatioHigh.for: '5 min' is not a Prometheus duration"),
    ({"alerts": {"AlbElb5xxRatioHigh": {"range": "2m"}}},
     "alerts.AlbElb5xxRatioHigh.range: 2m is too short"),
    ({"alerts": {"AlbElb5xxRatioHigh": {"threshold": "5%"}}},
     "alerts.AlbElb5xxRatioHigh.threshold: must be a number"),
    ({"alerts": {"AlbNoHealthyTargets": {"min_traffic": 5}}},
     "alerts.AlbNoHealthyTargets.min_traffic: unknown key"),
    ({"alerts": {"LbscrapeNotRunning": {"threshold": 1}}},
     "alerts.LbscrapeNotRunning.threshold: unknown key"),
    ({"labels": {"team-name": "a"}}, "labels.team-name: 'team-name' is not a Prometheus label"),
    ({"labels": {"severity": "page"}}, "labels.severity: severity is set by the alert"),
    ({"group_by": "team"}, "group_by: must be a list"),
    ({"selector": "cluster=prod"}, "selector: cannot read a label matcher"),
    ({"period": "90s"}, "period: 90s is not a multiple of 60s"),
    ({"interval": "90s"}, "interval: 90s is not a multiple of 60s, as a CronJob schedule is"),
    ({"alerts": {"AlbElb5xxRatioHigh": {"range": "5m"}}},
     "alerts.AlbElb5xxRatioHigh.range: 5m is too short: the newest 4m of data are not "
     "written yet (settle_delay + period + interval), so use at least 6m"),
    ({"period": "5m", "interval": "5m", "alerts": {"AlbNoHealthyTargets": {"range": "20m"}}},
     "alerts.AlbNoHealthyTargets.range: 20m is too short: the newest 15m of data"),
    ({"period": "5m", "alerts": {"AlbElb5xxRatioHigh": {"range": "27m"}}},
     "alerts.AlbElb5xxRatioHigh.range: 27m is not a whole number of periods (5m): a sum "
     "over it would count part of a period; e.g. 30m"),
    ({"interval": "5m", "alerts": {"LbscrapeNotRunning": {"range": "5m"}}},
     "alerts.LbscrapeNotRunning.range: 5m is too short: lbscrape runs every 5m"),
    ({"clusters": "prod"}, "clusters: must be a list"),
    ({"price_per_1000_metrics": -1}, "price_per_1000_metrics: must be a number"),
    ({"kubernetes": {"namespace": "Mon"}}, "kubernetes.namespace: 'Mon' is not a Kubernetes"),
    ({"kubernetes": {"labels": {"release": "a b"}}}, "'a b' is not a Kubernetes label value"),
    ({"dashbords": {}}, "dashbords: unknown key 'dashbords' (did you mean dashboards?)"),
])
def test_config_errors_name_the_file_and_entry(doc, message):
    with pytest.raises(ConfigError) as e:
        from_doc(doc, "mixin.yaml")
    assert str(e.value).startswith("--config: mixin.yaml: ")
    assert message in str(e.value)


def test_a_key_given_twice_is_an_error():
    with pytest.raises(ConfigError, match="key 'alerts' appears twice"):
        parse_text("alerts: {}\nalerts: {}\n", "m.yaml")
    with pytest.raises(ConfigError, match="key 'a' appears twice"):
        parse_text('{"a": 1, "a": 2}', "m.json")


# --- semantics of every query --------------------------------------------------------------

BUNDLES = [build(DEFAULT), build(DEFAULT, owner=parse_owner("shop/ingress/web")),
           build(DEFAULT, owner=parse_owner("shop/service/db"))]


RANGE = re.compile(r"\[([^\]]+)\]( offset \w+)?")
DATA_SUM = re.compile(r"sum_over_time\((?:alb|nlb|elb)_\w+(?:\{[^}]*\})?\[[^\]]+\]"
                      r"( offset \w+)")


@pytest.mark.parametrize("bundle", BUNDLES, ids=["fleet", "ingress", "service"])
def test_no_counter_functions_and_every_range_counts_each_period_once(bundle):
    for expr in exprs(bundle):
        assert not re.search(r"\b(i?rate|increase|delta|deriv)\(", expr), expr
        # Every range ends 1 ms early (queries.OFFSET), a sum's the lag back (4m by
        # default); a subquery's inner range holds only the sample at its step.
        for rng, offset in RANGE.findall(expr):
            if ":" in rng:
                assert (rng, offset) == ("10m:1m", " offset 4m1ms"), expr
            elif offset == "":
                assert rng == "59999ms", expr
            else:
                assert offset in (" offset 1ms", " offset 4m1ms"), expr
        # A mean of per-minute counts counts only the minutes that have a sample.
        assert not re.search(r"avg_over_time\(\w+_sum\b", expr), expr


@pytest.mark.parametrize("bundle", BUNDLES, ids=["fleet", "ingress", "service"])
def test_every_sum_in_a_rule_ends_where_the_data_is_complete(bundle):
    rules = [r["expr"] for r in (*bundle.alerts, *bundle.records)]
    sums = [o for e in rules for o in DATA_SUM.findall(e)]
    assert sums and set(sums) == {" offset 4m1ms"}
    panels = [t.expr for d in bundle.dashboards for p in d.panels for t in p.targets]
    assert {o for e in panels for o in DATA_SUM.findall(e)} == {" offset 1ms"}
    for d in bundle.dashboards:  # panels end at the lag instead, by shifting time
        shifts = {p.get("timeShift") for p in d.doc["panels"] if p["type"] != "row"}
        assert shifts == ({None} if d.key == "health" else {"4m"}), d.key


def test_ranges_follow_the_period_and_the_schedule():
    slow = build(DEFAULT, from_doc({"period": "5m", "interval": "5m"}, "m.yaml"))
    # The newest 2m + 5m + 5m, rounded up to periods, are not written yet: sums end 15m
    # back, and the shortest range holding two periods past that is 25m.
    rules = {r.get("alert") or r["record"]: r["expr"] for r in (*slow.alerts, *slow.records)}
    assert "[25m] offset 15m1ms" in rules["AlbElb5xxRatioHigh"]
    assert "[25m:5m] offset 15m1ms" in rules["AlbTargetResponseTimeHigh"]
    assert "[299999ms]" in rules["AlbTargetResponseTimeHigh"]
    assert "last_over_time(alb_tg_healthy_host_count_average[25m] offset 1ms)" in \
        rules["AlbNoHealthyTargets"]
    assert "owner:alb_request_count:rate25m" in rules
    assert "[25m] offset 15m1ms)) / 1500" in rules["owner:alb_request_count:rate25m"]
    assert "owner:alb_request_count:rate10m" not in rules
    assert "lbscrape_run_success[10m] offset 1ms" in rules["LbscrapeNotRunning"]
    hourly = build(DEFAULT, from_doc({"interval": "15m"}, "m.yaml"))
    not_running = next(r for r in hourly.alerts if r["alert"] == "LbscrapeNotRunning")
    assert "lbscrape_run_success[30m] offset 1ms" in not_running["expr"]
    board = next(d for d in slow.dashboards if d.key == "alb").doc["panels"][1]
    assert (board["interval"], board["timeShift"]) == ("5m", "15m")
    health = next(d for d in slow.dashboards if d.key == "health").doc["panels"]
    assert {p.get("interval") for p in health if p["type"] == "timeseries"} == {"5m"}


def test_no_load_balancer_id_or_arn_anywhere():
    from lbscrape.mixin.render import files, kubernetes

    for bundle in BUNDLES:
        for text in [*files(bundle).values(), *kubernetes(bundle).values()]:
            assert not re.search(r"arn:aws|\b(app|net)/[\w-]+/[0-9a-f]+", text)


def test_every_fetched_series_has_a_panel():
    tailored = tailor({"application": {"add": [
        {"metric": "TargetResponseTime", "stats": ["p99"]},
        {"metric": "RuleEvaluations", "stats": ["Sum"]},
        {"metric": "ActiveConnectionCount", "stats": ["Sum"]},
        {"metric": "HTTPCode_ELB_502_Count", "stats": ["Sum"]}]},
        "classic": {"add": [{"metric": "EstimatedProcessedBytes", "stats": ["Sum"]}]}},
        "m.yaml")
    for catalog in (DEFAULT, tailored):
        bundle = build(catalog)
        used = {n for d in bundle.dashboards for p in d.panels for n in p.uses}
        fetched = {s.prom_name for t in catalog.entries for per in ("load_balancer",
                   "target_group") for s in catalog.specs(t, per)}  # type: ignore[arg-type]
        assert fetched <= used
    bundle = build(tailored)
    latency = panel(bundle, "alb", "Target response time")
    assert [t.legend.rsplit(" ", 1)[1] for t in latency.targets] == ["Average", "p99"]
    assert "alb_target_response_time_p99" in latency.targets[1].expr
    assert "max_over_time(alb_target_response_time_p99" in latency.targets[1].expr
    codes = panel(bundle, "alb", "Load balancer 4xx and 5xx per second")
    assert [t.legend.rsplit(" ", 1)[1] for t in codes.targets] == ["4xx", "5xx", "502"]
    other = panel(bundle, "alb", "RuleEvaluations per second")
    assert "sum_over_time(alb_rule_evaluations_sum" in other.targets[0].expr
    assert other.targets[0].expr.endswith("offset 1ms)) / ($__interval_ms / 1000)")
    active = panel(bundle, "alb", "Active connections")
    assert "avg_over_time(alb_active_connection_count_sum" in active.targets[0].expr
    assert panel(bundle, "classic", "EstimatedProcessedBytes per second")


def test_variables_list_owners_from_metrics_published_every_minute():
    """Not from a sparse counter, which idle minutes leave without a sample (see
    test_mixin_queries for the idle owner it would lose)."""
    dropped = tailor({"application": {"drop": [{"metric": "RequestCount"}]},
                      "network": {"drop": [{"metric": "NewFlowCount"}]},
                      "classic": {"drop": [{"metric": "RequestCount"}]}}, "m.yaml")
    def names(query):
        named = re.findall(r'__name__=~"([^"]+)"', query)
        return named[0].split("|") if named else [re.split(r"[{,]", query[13:])[0]]

    sparse = {prom_name(t, m.name, "Sum", per) for t, known in KNOWN.items()
              for m in known.values() if m.sparse for per in m.dimensions}
    for catalog in (DEFAULT, dropped):
        for d in build(catalog).dashboards:
            for name, query in d.variables:
                assert names(query) and not set(names(query)) & sparse, (d.key, name, query)
    boards = {d.key: d for d in build(dropped).dashboards}
    assert "alb_consumed_lcus_average" in dict(boards["alb"].variables)["ingress"]
    assert "elb_healthy_host_count_average" in dict(boards["classic"].variables)["service"]
    assert "nlb_active_flow_count_average" in dict(boards["nlb"].variables)["service"]


def test_a_dropped_metric_leaves_no_panel_no_alert_and_says_so():
    catalog = tailor({"application": {"drop": [{"metric": "HTTPCode_ELB_5XX_Count"}]},
                      "network": {"drop": [{"metric": "HealthyHostCount"},
                                           {"metric": "UnHealthyHostCount"}]},
                      "classic": {"drop": [{"metric": e.metric} for e in
                                           DEFAULT.entries["classic"]]}}, "m.yaml")
    bundle = build(catalog)
    assert "classic" not in [d.key for d in bundle.dashboards]
    assert "dashboard classic: left out, the catalog fetches none of its metrics" in bundle.notes
    assert ("AlbElb5xxRatioHigh: left out, the application catalog does not fetch "
            "HTTPCode_ELB_5XX_Count Sum") in bundle.notes
    assert ("NlbNoHealthyTargets: left out, the network catalog does not fetch "
            "HealthyHostCount Average per target group") in bundle.notes
    alerts = {r["alert"] for r in bundle.alerts}
    assert "AlbElb5xxRatioHigh" not in alerts and "AlbTarget5xxRatioHigh" in alerts
    assert not any(a.startswith("ClassicElb") for a in alerts)
    ratio = panel(bundle, "alb", "5xx ratio")
    assert [t.legend.rsplit(" ", 1)[1] for t in ratio.targets] == ["targets"]
    nlb = next(d for d in bundle.dashboards if d.key == "nlb")
    assert "Target health" not in [r.title for r in nlb.rows]
    tg = next(d for d in bundle.dashboards if d.key == "target-groups")
    assert [r.title for r in tg.rows] == ["ALB target groups"]
    assert not [r for r in bundle.records if r["record"].startswith("owner:elb_")]
    assert not [e for e in exprs(bundle) if "nlb_tg_" in e or "elb_" in e.split("_")[0]]


def test_all_variables_keep_series_without_the_label():
    for d in build(DEFAULT).dashboards:
        for var in d.doc["templating"]["list"][1:]:
            assert var["allValue"] == ".*" and var["multi"] and var["includeAll"]


def test_owner_mode_narrows_and_names_everything():
    bundle = build(DEFAULT, owner=parse_owner("shop/ingress/web"))
    for expr in exprs(bundle):
        for sel in re.findall(r"\w+\{[^}]*\}", expr):
            assert 'namespace="shop",ingress="web"' in sel, sel
    assert [d.key for d in bundle.dashboards] == ["alb", "target-groups"]
    assert {d.uid for d in bundle.dashboards} == {"lbscrape-alb-shop-ingress-web",
                                                  "lbscrape-target-groups-shop-ingress-web"}
    assert all(d.title.endswith(" / shop/ingress/web") for d in bundle.dashboards)
    assert [g["name"] for g in bundle.alert_groups] == ["lbscrape-alb-shop-ingress-web",
                                                        "lbscrape-self-shop-ingress-web"]
    assert [r["alert"] for r in bundle.alert_groups[1]["rules"]] == ["LbscrapeDataLagging"]
    assert bundle.rule_groups == ()  # recorded once, by the fleet's rules
    names = [v["name"] for v in bundle.dashboards[0].doc["templating"]["list"]]
    assert names == ["datasource", "cluster", "load_balancer_name"]
    long = build(DEFAULT, owner=parse_owner(f"shop/ingress/{'x' * 60}"))
    assert all(len(d.uid) <= 40 for d in long.dashboards)


def test_ingress_group_owner_selects_by_ingress_group_only():
    bundle = build(DEFAULT, owner=parse_owner("shop/ingress-group/shared"))
    for expr in exprs(bundle):
        assert not re.search(r"\bnamespace=", expr) and 'ingress_group="shared"' in expr


def test_alert_settings_reach_the_rules():
    cfg = from_doc({"labels": {"team": "edge"}, "group_by": ["team"],
                    "alerts": {"AlbElb5xxRatioHigh": {"threshold": 0.1, "min_traffic": 500,
                                                      "severity": "page"},
                               "LbscrapeCloudWatchCostOverBudget": {"threshold": 250,
                                                                    "range": "6h"}}},
                   "m.yaml")
    rules = {r["alert"]: r for r in build(DEFAULT, cfg).alerts}
    rule = rules["AlbElb5xxRatioHigh"]
    assert rule["labels"] == {"severity": "page", "team": "edge"}
    assert rule["expr"].endswith(">= 500") and ") > 0.1\n" in rule["expr"]
    assert "threshold 10%, with at least 500 requests" in rule["annotations"]["description"]
    cost = rules["LbscrapeCloudWatchCostOverBudget"]["expr"]
    assert "[6h] offset 1ms" in cost and " * 120 * 0.01 / 1000 > 250" in cost
    assert all("team" in r["expr"] for r in rules.values())
    assert set(rules) == set(ALERT_DEFAULTS)


# --- the command -----------------------------------------------------------------------------

def test_mixin_writes_files(tmp_path):
    result = CliRunner().invoke(cli, ["mixin", "--output-dir", str(tmp_path)],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    written = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")
                     if p.is_file())
    assert written == [".lbscrape-mixin.sha256",
                       "dashboards/lbscrape-alb.json", "dashboards/lbscrape-classic.json",
                       "dashboards/lbscrape-health.json", "dashboards/lbscrape-nlb.json",
                       "dashboards/lbscrape-target-groups.json", "prometheus_alerts.yaml",
                       "prometheus_rules.yaml"]
    assert result.stdout.splitlines() == [str(tmp_path / "dashboards" / "lbscrape-alb.json"),
                                          *result.stdout.splitlines()[1:]]
    assert "mixin: 5 dashboards (56 panels), 21 alerts, 14 recording rules" in result.stderr
    assert json.loads((tmp_path / "dashboards/lbscrape-alb.json").read_text())["uid"] == \
        "lbscrape-alb"
    assert (tmp_path / "prometheus_alerts.yaml").read_text().startswith("# Generated by")


def _files(root):
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def test_regenerating_removes_what_it_wrote_before_and_nothing_else(tmp_path):
    def mixin(*args):
        result = CliRunner().invoke(cli, ["mixin", "--output-dir", str(tmp_path), *args],
                                    catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result

    (tmp_path / "dashboards").mkdir()
    (tmp_path / "dashboards" / "ours.json").write_text("{}")  # not lbscrape's
    (tmp_path / "README.md").write_text("team notes\n")
    mixin()
    fleet = _files(tmp_path)
    assert "prometheus_rules.yaml" in fleet and "dashboards/lbscrape-health.json" in fleet
    changed = tmp_path / "dashboards" / "lbscrape-nlb.json"
    changed.write_text(changed.read_text().replace("lbscrape / NLB", "our NLB"))
    # Switched to one owner in the same directory: the fleet's files go, except the one
    # changed since; files lbscrape never wrote stay.
    result = mixin("--owner", "shop/ingress/web")
    assert _files(tmp_path) == [
        ".lbscrape-mixin.sha256", "README.md", "dashboards/lbscrape-alb-shop-ingress-web.json",
        "dashboards/lbscrape-nlb.json", "dashboards/lbscrape-target-groups-shop-ingress-web.json",
        "dashboards/ours.json", "prometheus_alerts-shop-ingress-web.yaml"]
    assert f"removed: {tmp_path}/prometheus_rules.yaml (written by an earlier run" in \
        result.stderr
    assert result.stderr.count("removed: ") == 6
    assert f"note: kept {tmp_path}/dashboards/lbscrape-nlb.json: no longer generated, but " \
        "changed since" in result.stderr
    # The manifest is sha256sum's format and names what is there now.
    check = subprocess.run(["sha256sum", "-c", "--quiet", ".lbscrape-mixin.sha256"],
                           cwd=tmp_path, capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    result = mixin("--format", "kubernetes")  # and switching the format
    assert "dashboards/lbscrape-alb-shop-ingress-web.json" not in _files(tmp_path)
    assert {"README.md", "dashboards/ours.json", "dashboards/lbscrape-nlb.json",
            "kustomization.yaml", "prometheusrule.yaml"} <= set(_files(tmp_path))
    again = mixin("--format", "kubernetes")  # the same again removes nothing
    assert "removed: " not in again.stderr


def test_the_manifest_never_names_a_path_outside_the_directory():
    from lbscrape.mixin import manifest

    h = "a" * 64
    text = "".join(f"{h}  {p}\n" for p in (
        "ok.yaml", "dashboards/a.json", "../up.yaml", "/etc/passwd", "a/../../b", "a//b",
        "./c", ".lbscrape-mixin.sha256", "")) + "not a line\n" + f"{'z' * 64}  bad-hash\n"
    assert manifest.parse(text) == {"ok.yaml": h, "dashboards/a.json": h}
    written = {"b.yaml": "x", "a.yaml": "y"}
    assert manifest.parse(manifest.render(written)) == {
        p: manifest.digest(t) for p, t in written.items()}
    assert manifest.stale({"a.yaml": h, "z.yaml": h, "c.yaml": h}, written) == [
        "c.yaml", "z.yaml"]


def test_mixin_kubernetes_owner_and_env(tmp_path, monkeypatch):
    monkeypatch.setenv("LBSCRAPE_MIXIN_OWNER", "shop/service/db")
    result = CliRunner().invoke(cli, ["mixin", "--output-dir", str(tmp_path), "--format",
                                      "kubernetes"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in tmp_path.rglob("*.yaml")) == [
        "kustomization.yaml", "lbscrape-classic-shop-service-db.yaml",
        "lbscrape-nlb-shop-service-db.yaml", "lbscrape-target-groups-shop-service-db.yaml",
        "prometheusrule-shop-service-db.yaml"]
    rule = yaml.safe_load((tmp_path / "prometheusrule-shop-service-db.yaml").read_text())
    assert rule["metadata"]["name"] == "lbscrape-shop-service-db"
    assert "for shop/service/db" in result.stderr


@pytest.mark.parametrize(("args", "message"), [
    (["--owner", "web"], "lbscrape: error: --owner: cannot read 'web'"),
    (["--config", "/nonexistent.yaml"], "lbscrape: error: --config: cannot read"),
    (["--metrics-config", "/nonexistent.yaml"], "lbscrape: error: --metrics-config: cannot"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, args, message):
    result = CliRunner().invoke(cli, ["mixin", "--output-dir", str(tmp_path / "o"), *args])
    assert result.exit_code == 2
    assert result.stderr.startswith(message) and len(result.stderr.splitlines()) == 1
    assert not (tmp_path / "o").exists()


def test_an_unwritable_output_dir_is_exit_1(tmp_path):
    (tmp_path / "file").write_text("")
    result = CliRunner().invoke(cli, ["mixin", "--output-dir", str(tmp_path / "file")])
    assert result.exit_code == 1
    assert result.stderr.startswith("lbscrape: error: --output-dir: cannot write")


def test_mixin_takes_one_options_dataclass_like_the_other_commands(tmp_path):
    import dataclasses

    from lbscrape.cli.mixin import mixin
    from lbscrape.core.console import Console
    from lbscrape.core.options import MixinOptions
    from lbscrape.flows.mixin import execute

    params = {p.name: p for p in mixin.params}
    assert set(params) == {f.name for f in dataclasses.fields(MixinOptions)}
    assert {p.envvar for p in params.values()} == {
        "LBSCRAPE_MIXIN_OUTPUT_DIR", "LBSCRAPE_MIXIN_CONFIG", "LBSCRAPE_MIXIN_OWNER",
        "LBSCRAPE_MIXIN_FORMAT", "LBSCRAPE_METRICS_CONFIG"}
    assert all(p.show_default and p.show_envvar for p in params.values())
    out: list[str] = []
    err: list[str] = []
    code = execute(MixinOptions(str(tmp_path), fmt="kubernetes"), Console(out.append, err.append))
    assert code == 0 and f"{tmp_path}/kustomization.yaml" in out, err
    code = execute(MixinOptions(str(tmp_path / "x"), fmt="json"), Console(out.append, err.append))
    assert code == 2 and err[-1] == "lbscrape: error: --format: 'json' is not one of files, " \
        "kubernetes" and not (tmp_path / "x").exists()
    result = CliRunner().invoke(cli, ["mixin", "--help"])
    assert "[env var: LBSCRAPE_MIXIN_FORMAT;" in result.output
    assert "default: files]" in result.output


def test_mixin_help_has_an_example():
    result = CliRunner().invoke(cli, ["mixin", "--help"])
    assert "Example:" in result.output and "LBSCRAPE_MIXIN_OWNER" in result.output


def test_the_mixin_imports_no_cloud_or_cluster_client():
    code = ("import sys, lbscrape.cli.mixin, lbscrape.flows.mixin, lbscrape.mixin.render; "
            "print(sorted(m for m in ('boto3', 'botocore', 'kubernetes', 'google.protobuf', "
            "'snappy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"
