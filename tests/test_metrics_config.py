"""--metrics-config: tailoring the catalog (pure), percentiles through GetMetricData (Stubber),
`lbscrape metrics`, and `run`/`estimate` with a good and a bad file against moto, the fake
Kubernetes API and a real Prometheus.

moto's GetMetricData cannot compute percentiles (the reference notes: a TypeError in
process, HTTP 500 in server mode), so percentiles are checked with botocore's Stubber.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import boto3
import pytest
from botocore.stub import Stubber
from click.testing import CliRunner

from lbscrape.aws.cloudwatch import FetchTarget, fetch, plan_calls
from lbscrape.cli import cli
from lbscrape.core.catalog import DEFAULT, DEFAULT_CATALOG, KINDS, KNOWN, STAT_SUFFIX, prom_name
from lbscrape.core.config import RESERVED_PREFIX
from lbscrape.core.errors import ConfigError
from lbscrape.core.metrics_config import load, tailor
from lbscrape.core.model import LoadBalancer, Owner, Sample, Window
from lbscrape.prom.series import build_series
from tests.faultproxy import FaultProxy
from tests.test_run import Scene, summary

GOOD_YAML = """\
# what a team adds for its dashboards, and what it does not pay for
application:
  add:
    - metric: TargetResponseTime
      stats: [p99, p99.9]
    - metric: HTTPCode_ELB_502_Count
      stats: [Sum]
  drop:
    - metric: ConsumedLCUs          # whole metric
    - metric: ProcessedBytes
      stats: [Sum]
network:
  add:
    - metric: ActiveFlowCount
      stats: [Maximum]
classic:
"""


def names(catalog, lb_type):
    return [s.prom_name for s in catalog.specs(lb_type)]


def test_drops_then_adds_and_leaves_other_types_alone(tmp_path):
    path = tmp_path / "metrics.yaml"
    path.write_text(GOOD_YAML)
    catalog = load(str(path))
    alb = names(DEFAULT, "application")
    alb.remove("alb_consumed_lcus_average")
    alb.remove("alb_processed_bytes_sum")
    assert names(catalog, "application") == alb + [
        "alb_target_response_time_p99", "alb_target_response_time_p99_9",
        "alb_http_code_elb_502_count_sum"]
    assert names(catalog, "network") == names(DEFAULT, "network") + [
        "nlb_active_flow_count_maximum"]
    assert names(catalog, "classic") == names(DEFAULT, "classic")
    assert catalog.source == str(path)
    stats = {(s.metric, s.stat) for s in catalog.specs("application")}
    assert {("TargetResponseTime", "p99.9"), ("TargetResponseTime", "Average")} <= stats
    # The defaults themselves are untouched.
    assert DEFAULT.entries == DEFAULT_CATALOG and DEFAULT.source is None


def test_json_gives_the_same_catalog_as_yaml(tmp_path):
    yaml_path, json_path = tmp_path / "m.yaml", tmp_path / "m.json"
    yaml_path.write_text(GOOD_YAML)
    json_path.write_text(json.dumps({
        "application": {
            "add": [{"metric": "TargetResponseTime", "stats": ["p99", "p99.9"]},
                    {"metric": "HTTPCode_ELB_502_Count", "stats": ["Sum"]}],
            "drop": [{"metric": "ConsumedLCUs"},
                     {"metric": "ProcessedBytes", "stats": ["Sum"]}]},
        "network": {"add": [{"metric": "ActiveFlowCount", "stats": ["Maximum"]}]}}))
    a, b = load(str(yaml_path)), load(str(json_path))
    for t in KINDS:
        assert a.specs(t) == b.specs(t)


def test_a_metric_can_be_dropped_whole_and_re_added_with_other_statistics():
    catalog = tailor({"application": {
        "drop": [{"metric": "TargetResponseTime"}],
        "add": [{"metric": "TargetResponseTime", "stats": ["p50", "p99.90"]}]}}, "f.yaml")
    rt = [(s.stat, s.prom_name) for s in catalog.specs("application")
          if s.metric == "TargetResponseTime"]
    assert rt == [("p50", "alb_target_response_time_p50"),
                  ("p99.9", "alb_target_response_time_p99_9")]


def test_target_group_entries_are_tailored_apart_from_the_load_balancers():
    catalog = tailor({"application": {
        "drop": [{"metric": "RequestCountPerTarget"},  # only per target group: found there
                 {"metric": "TargetResponseTime", "per": "target_group"}],
        "add": [{"metric": "TargetResponseTime", "per": "target_group", "stats": ["p99"]}]}},
        "f.yaml")
    lb = {s.prom_name for s in catalog.specs("application")}
    tg = {s.prom_name for s in catalog.specs("application", "target_group")}
    assert lb == {s.prom_name for s in DEFAULT.specs("application")}
    assert "alb_target_response_time_average" in lb
    assert "alb_tg_target_response_time_p99" in tg
    assert not {"alb_tg_target_response_time_average",
                "alb_tg_request_count_per_target_sum"} & tg
    # Without `per`, a metric published both ways is the load balancer's.
    only_lb = tailor({"application": {"drop": [{"metric": "RequestCount"}]}}, "f.yaml")
    assert "alb_request_count_sum" not in {s.prom_name for s in only_lb.specs("application")}
    assert "alb_tg_request_count_sum" in {
        s.prom_name for s in only_lb.specs("application", "target_group")}
    none = tailor({"network": {"drop": [{"metric": "HealthyHostCount"},
                                        {"metric": "UnHealthyHostCount"}]}}, "f.yaml")
    assert not none.has_target_groups("network") and none.has_target_groups("application")


def test_dropping_every_statistic_of_a_metric_removes_it():
    catalog = tailor({"network": {"drop": [{"metric": "ActiveFlowCount",
                                            "stats": ["Average"]}]}}, "f.yaml")
    assert "ActiveFlowCount" not in {s.metric for s in catalog.specs("network")}
    assert len(catalog.specs("network")) == len(DEFAULT.specs("network")) - 1


BAD = [
    # (document, where the error points, what it says)
    ({"alb": {}}, "alb:", "use application, network or classic (did you mean application?)"),
    ({"zero_fill": True}, "zero_fill:", "--zero-fill/--no-zero-fill"),
    ({"application": {"ad": []}}, "application.ad:", "did you mean add?"),
    ({"application": []}, "application:", "must be a mapping with add and drop"),
    ({"application": {"add": {"metric": "RequestCount"}}}, "application.add:",
     "must be a list"),
    ({"application": {"add": [{"metric": "RequestCounts", "stats": ["Sum"]}]}},
     "application.add[0].metric:", "did you mean RequestCount?"),
    ({"application": {"add": [{"metric": "NewFlowCount", "stats": ["Sum"]}]}},
     "application.add[0].metric:", "but in AWS/NetworkELB: put it under network"),
    ({"application": {"add": [{"metric": "HealthyHostCount", "per": "load_balancer",
                                "stats": ["Average"]}]}},
     "application.add[0].per:", "publishes HealthyHostCount only per target group"),
    ({"application": {"add": [{"metric": "HealthyHostCount", "stats": ["Average"]}]}},
     "application.add[0].stats[0]:", "already in the application catalog per target group "
     "(as alb_tg_healthy_host_count_average)"),
    ({"application": {"add": [{"metric": "RequestCount", "per": "tg", "stats": ["Sum"]}]}},
     "application.add[0].per:", "use load_balancer or target_group"),
    ({"classic": {"add": [{"metric": "RequestCount", "per": "target_group",
                           "stats": ["Sum"]}]}},
     "classic.add[0].per:", "Classic ELBs have no target groups"),
    ({"network": {"drop": [{"metric": "NewFlowCount", "per": "target_group"}]}},
     "network.drop[0].per:", "only per load balancer"),
    ({"application": {"add": [{"metric": "TargetResponseTime"}]}}, "application.add[0]:",
     "missing 'stats'"),
    ({"application": {"add": [{"metric": "TargetResponseTime", "stats": []}]}},
     "application.add[0].stats:", "is empty"),
    ({"application": {"add": [{"metric": "TargetResponseTime", "stats": "p99"}]}},
     "application.add[0].stats:", "must be a list, e.g. [p99]"),
    ({"application": {"add": [{"metric": "TargetResponseTime", "stats": ["p99", "p999"]}]}},
     "application.add[0].stats[1]:", "'p999' is not a statistic"),
    ({"application": {"add": [{"metric": "TargetResponseTime", "stats": ["p99", "average"]}]}},
     "application.add[0].stats[1]:", "case-sensitive: Average"),
    ({"application": {"add": [{"metric": "TargetResponseTime", "stats": ["tm99"]}]}},
     "application.add[0].stats[0]:", "a percentile p0..p100"),
    ({"application": {"add": [{"metric": "TargetResponseTime", "stats": [99]}]}},
     "application.add[0].stats[0]:", "99 is not a statistic"),
    ({"application": {"add": [{"metric": "TargetResponseTime", "stats": ["Average"]}]}},
     "application.add[0].stats[0]:", "already in the application catalog (as "
     "alb_target_response_time_average)"),
    ({"application": {"add": [
        {"metric": "TargetResponseTime", "stats": ["p99.9"]},
        {"metric": "TargetResponseTime", "stats": ["Maximum", "p99.90"]}]}},
     "application.add[1].stats[1]:", "would be written as alb_target_response_time_p99_9, as "
     "application.add[0].stats[0] already is"),
    ({"application": {"add": [{"metric": "RequestCount", "stats": ["Sum"], "sparse": True}]}},
     "application.add[0].sparse:", "unknown key 'sparse'"),
    ({"application": {"drop": [{"metric": "HTTP_Redirect_Count"}]}},
     "application.drop[0].metric:", "not in the application catalog; nothing to drop"),
    ({"application": {"drop": [{"metric": "ConsumedLCUs"}, {"metric": "ConsumedLCUs"}]}},
     "application.drop[1].metric:", "already dropped by application.drop[0]"),
    ({"application": {"drop": [{"metric": "ConsumedLCUs", "stats": ["Sum"]}]}},
     "application.drop[0].stats[0]:", "ConsumedLCUs has: Average"),
    ({"application": {"drop": [{"metric": "ConsumedLCUs", "stats": ["Average", "Average"]}]}},
     "application.drop[0].stats[1]:", "already dropped by application.drop[0]"),
    ({"classic": {"add": [{"metric": "TargetResponseTime", "stats": ["p99"]}]}},
     "classic.add[0].metric:", "put it under application"),
    (None, "bad.yaml: is empty", "leave --metrics-config unset"),
    ([{"application": {}}], "bad.yaml: must be a mapping", "application, network or classic"),
]


@pytest.mark.parametrize(("doc", "where", "what"), BAD)
def test_bad_config_is_one_line_naming_file_entry_and_fix(doc, where, what):
    with pytest.raises(ConfigError) as e:
        tailor(doc, "bad.yaml")
    msg = str(e.value)
    assert "\n" not in msg
    assert msg.startswith("--metrics-config: bad.yaml: ")
    assert where in msg, msg
    assert what in msg, msg


@pytest.mark.parametrize(("name", "text", "what"), [
    ("dup.yaml", "application:\n  add: []\napplication:\n  drop: []\n",
     "line 3: key 'application' appears twice"),
    ("dup.yaml", "application:\n  add:\n    - metric: RequestCount\n      metric: Foo\n",
     "line 4: key 'metric' appears twice"),
    ("bad.yaml", "application:\n  add: [\n", "not valid YAML"),
    ("bad.json", '{"application": {"add": [], "add": []}}', "key 'add' appears twice"),
    ("bad.json", '{"application": ', "line 1, column 17: not valid JSON"),
    ("empty.yaml", "", "is empty"),
])
def test_unparseable_or_ambiguous_files(tmp_path, name, text, what):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ConfigError) as e:
        load(str(path))
    assert str(e.value).startswith(f"--metrics-config: {path}: ")
    assert what in str(e.value) and "\n" not in str(e.value)


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match=r"--metrics-config: cannot read '.*nope.yaml': No such"):
        load(str(tmp_path / "nope.yaml"))


def test_no_metrics_config_can_name_a_series_like_lbscrapes_own():
    """The lbscrape_ prefix is reserved (issue 13): every name a file can ask for has the
    prefix of its load balancer type."""
    names = {prom_name(kind, metric, stat, per)
             for kind, known in KNOWN.items() for metric, k in known.items()
             for per in k.dimensions for stat in (*STAT_SUFFIX, "p0", "p99.99", "p100")}
    assert len(names) > 500
    assert not [n for n in names if n.startswith(RESERVED_PREFIX)]
    assert {n.split("_")[0] for n in names} == {k.prefix for k in KINDS.values()}


# --- percentiles through GetMetricData, with Stubber -----------------------------------


def test_percentiles_are_requested_as_written_and_named_with_underscores(tmp_path):
    path = tmp_path / "m.yaml"
    path.write_text("application:\n  add:\n    - metric: TargetResponseTime\n"
                    "      stats: [p99, p99.90]\n")
    catalog = load(str(path))
    specs = tuple(s for s in catalog.specs("application") if s.stat.startswith("p"))
    lb = LoadBalancer("arn:aws:elasticloadbalancing:us-east-1:1:loadbalancer/app/web/0abc",
                      "web", "application", "app/web/0abc",
                      (Owner("Ingress", "shop", "web", ()),))
    window = Window(1_795_392_000, 1_795_392_000 + 180, 60)
    (call,) = plan_calls([FetchTarget(lb.key, (("LoadBalancer", lb.dimension),), window,
                                      specs)])
    request = call.request()
    assert [q["MetricStat"]["Stat"] for q in request["MetricDataQueries"]] == ["p99", "p99.9"]
    client = boto3.client("cloudwatch", region_name="us-east-1",
                          aws_access_key_id="testing", aws_secret_access_key="testing")
    ts = [window.start + 60 * i for i in range(3)]
    response = {"MetricDataResults": [
        {"Id": q.id, "Timestamps": [datetime.fromtimestamp(t, UTC) for t in ts],
         "Values": [0.5 + i + (0.25 if q.spec.stat == "p99.9" else 0) for i in range(3)],
         "StatusCode": "Complete"} for q in call.queries]}
    with Stubber(client) as stub:
        stub.add_response("get_metric_data", response, request)
        fetched = fetch(client, [call])
        stub.assert_no_pending_responses()
    assert fetched.failed == {}
    data = {spec: pts for (_, spec), pts in fetched.samples.items()}
    series = {s.name: s.samples for s in build_series(data, {"cluster": "c"})}
    assert series == {
        "alb_target_response_time_p99": tuple(Sample(t * 1000, 0.5 + i) for i, t in enumerate(ts)),
        "alb_target_response_time_p99_9": tuple(Sample(t * 1000, 0.75 + i)
                                                for i, t in enumerate(ts))}


# --- lbscrape metrics -------------------------------------------------------------------


def test_metrics_command_shows_the_tailored_catalog(tmp_path):
    path = tmp_path / "m.yaml"
    path.write_text(GOOD_YAML)
    result = CliRunner().invoke(cli, ["metrics", "--metrics-config", str(path), "-o", "json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    by_name = {r["name"]: r for r in rows}
    assert by_name["alb_target_response_time_p99_9"] == {
        "type": "application", "namespace": "AWS/ApplicationELB",
        "metric": "TargetResponseTime", "stat": "p99.9", "name": "alb_target_response_time_p99_9",
        "dimensions": ["LoadBalancer"], "zero_fill": None}
    assert by_name["alb_http_code_elb_502_count_sum"]["zero_fill"] == "yes"
    assert by_name["alb_request_count_sum"]["zero_fill"] == "traffic"
    assert by_name["elb_request_count_sum"]["dimensions"] == ["LoadBalancerName"]
    assert "alb_consumed_lcus_average" not in by_name
    assert by_name["alb_tg_request_count_sum"]["zero_fill"] == "traffic"
    assert by_name["alb_tg_http_code_target_5xx_count_sum"]["dimensions"] == [
        "TargetGroup", "LoadBalancer"]
    assert by_name["nlb_tg_healthy_host_count_average"]["zero_fill"] is None
    assert len(rows) == sum(len(DEFAULT.specs(t, d)) for t in KINDS
                            for d in ("load_balancer", "target_group")) - 2 + 3 + 1


def test_metrics_command_table_and_known_metrics():
    result = CliRunner().invoke(cli, ["metrics", "--known"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["TYPE", "PROMETHEUS", "NAME", "CLOUDWATCH", "METRIC", "STAT",
                                "ZERO-FILL"]
    assert any(line.split()[:5] == ["application", "alb_http_code_elb_5xx_count_sum",
                                    "AWS/ApplicationELB", "HTTPCode_ELB_5XX_Count", "Sum"]
               and line.split()[-1] == "yes" for line in lines)
    # Known but not fetched: listed without a name, with where it is published.
    assert any(line.split()[:3] == ["application", "-", "AWS/ApplicationELB"]
               and "RuleEvaluations" in line for line in lines)
    assert "source: the default catalog" in result.stdout


def test_metrics_command_says_when_zero_fill_cannot_apply(tmp_path):
    path = tmp_path / "m.yaml"
    path.write_text("network:\n  drop:\n    - metric: NewFlowCount\n")
    result = CliRunner().invoke(cli, ["metrics", "--metrics-config", str(path)])
    assert result.exit_code == 0
    assert "zero-fill: NewFlowCount Sum is not in the network catalog (dropped by " \
           "--metrics-config), so sparse counters of NLBs are not zero-filled" in result.stdout


def test_metrics_command_with_a_bad_file_exits_2(tmp_path):
    path = tmp_path / "m.yaml"
    path.write_text("application:\n  add:\n    - metric: TargetResponseTime\n      stats: [p99x]\n")
    result = CliRunner().invoke(cli, ["metrics", "--metrics-config", str(path)])
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [
        f"lbscrape: error: --metrics-config: {path}: application.add[0].stats[0]: 'p99x' is "
        "not a statistic lbscrape supports: use Sum, Average, Minimum, Maximum, SampleCount "
        "or a percentile p0..p100 with up to two decimals (p99, p99.9)"]


# --- run and estimate, end to end -------------------------------------------------------


def test_bad_config_stops_run_before_anything_is_contacted(aws, kube, prometheus, moto_server,
                                                           monkeypatch, tmp_path):
    scene = Scene(aws, kube, prometheus)
    path = tmp_path / "metrics.yaml"
    path.write_text("application:\n  drop:\n    - metric: ConsumedLCUs\n"
                    "  add:\n    - metric: HTTPCode_ELB_502_Count\n      stats: [Sum]\n"
                    "    - metric: TargetResponseTime\n      stats: [p99, P99.9]\n")
    proxy = FaultProxy(moto_server)
    proxy.start()
    monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
    try:
        result = scene.run(scene.clock, "--metrics-config", str(path), expect=2)
        # The same from the environment, as the CronJob would set it.
        monkeypatch.setenv("LBSCRAPE_METRICS_CONFIG", str(path))
        again = scene.run(scene.clock, expect=2)
    finally:
        proxy.stop()
    for r in (result, again):
        assert r.stderr.strip().splitlines() == [
            f"lbscrape: error: --metrics-config: {path}: application.add[1].stats[1]: 'P99.9' "
            "is not a statistic lbscrape supports: use Sum, Average, Minimum, Maximum, "
            "SampleCount or a percentile p0..p100 with up to two decimals (p99, p99.9) "
            "(statistics are case-sensitive: p99.9)"]
    assert proxy.seen == []  # no AWS request at all
    assert kube.seen == []
    assert prometheus.raw('{__name__=~".+"}') == {}


def test_run_and_estimate_follow_the_config(aws, kube, prometheus, moto_server, monkeypatch,
                                            tmp_path):
    scene = Scene(aws, kube, prometheus)
    path = tmp_path / "metrics.json"
    path.write_text(json.dumps({"application": {
        "drop": [{"metric": "ConsumedLCUs"}],
        "add": [{"metric": "TargetResponseTime", "stats": ["Maximum", "Minimum"]},
                {"metric": "HTTPCode_ELB_502_Count", "stats": ["Sum"]}]}}))
    estimated = CliRunner().invoke(cli, [
        "estimate", "--region", "us-east-1", "--kubeconfig", kube.kubeconfig_path,
        "--metrics-config", str(path), "-o", "json"])
    assert estimated.exit_code == 0, estimated.output
    est = json.loads(estimated.stdout)
    assert est["per_run"]["metrics_requested"] == 14 - 1 + 3 + 9
    by_metric = {m["metric"] for m in est["by_metric"]}
    assert "alb_target_response_time_maximum" in by_metric
    assert "alb_consumed_lcus_average" not in by_metric

    scene.run(scene.clock - 60, "--metrics-config", str(path))
    proxy = FaultProxy(moto_server)
    proxy.start()
    monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
    try:
        result = scene.run(scene.clock, "--metrics-config", str(path))  # a steady run
    finally:
        proxy.stop()
    queries = [q for r in proxy.seen if r.mentions("GetMetricData")
               for q in json.loads(r.body)["MetricDataQueries"]]
    assert len(queries) == est["per_run"]["metrics_requested"]
    stats = {(q["MetricStat"]["Metric"]["MetricName"], q["MetricStat"]["Stat"]) for q in queries
             if q["MetricStat"]["Metric"]["Namespace"] == "AWS/ApplicationELB"}
    assert {("TargetResponseTime", "Maximum"), ("TargetResponseTime", "Minimum"),
            ("TargetResponseTime", "Average"), ("HTTPCode_ELB_502_Count", "Sum")} <= stats
    assert ("ConsumedLCUs", "Average") not in stats
    assert f"metrics_requested={len(queries)}" in summary(result)
    start = [json.loads(line) for line in result.stderr.splitlines()
             if line.startswith("{")][0]["msg"]
    assert f"metrics_config={path} metrics=alb:16,nlb:9,elb:13 zero_fill=on" in start
    # One datapoint a minute, so Maximum, Minimum and Average are the same value.
    rt_max = scene.stored("alb_target_response_time_maximum")[scene.alb.name]
    assert rt_max and rt_max == scene.stored("alb_target_response_time_minimum")[scene.alb.name]
    assert [v for _, v in rt_max] == [0.25 + scene.minutes.index(ts) / 100 for ts, _ in rt_max]
    assert prometheus.raw("alb_consumed_lcus_average") == {}
