"""`lbscrape backfill` against the fake Kubernetes API, moto in server mode, a real
Prometheus and Debian's promtool. Every assertion compares raw stored samples with what
CloudWatch holds, value for value and timestamp for timestamp, plus the zeros zero-fill
(on by default, as for run) writes for sparse counters in minutes with traffic."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import boto3
import pytest
import snappy
from click.testing import CliRunner

from lbscrape.aws.session import AWS_CONFIG
from lbscrape.cli import cli
from lbscrape.core.catalog import DEFAULT, default_specs
from lbscrape.core.checkpoint import Checkpoint, FileStore
from lbscrape.core.config import RemoteWriteSettings
from lbscrape.core.errors import ConfigError
from lbscrape.core.model import Sample, Series, Window
from lbscrape.flows import backfill
from lbscrape.prom import remote_write
from lbscrape.prom.prompb import WriteRequest
from tests import world
from tests.faultproxy import FaultProxy, Rule

CLUSTER = "test-cluster"
HOURS = 4
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"


class World:
    """An ALB Ingress and an NLB Service with HOURS of per-minute CloudWatch data."""

    def __init__(self, aws, kube):
        self.kube = kube
        self.now = int(time.time())
        current = self.now // 60 * 60
        self.minutes = [current - 60 * i for i in range(HOURS * 60, -1, -1)]
        kube.put("networking.k8s.io/v1", "ingressclasses", world.ingress_class())
        self.alb = aws.create_lb("k8s-shop-web-0123456789")
        self.nlb = aws.create_lb("k8s-shop-db-0123456789", "network")
        kube.put("networking.k8s.io/v1", "ingresses",
                 world.ingress("shop", "web", self.alb.dns_name))
        kube.put("v1", "services", world.service("shop", "db", self.nlb.dns_name,
                                                 lb_class="service.k8s.aws/nlb"))
        self.requests = {ts: 100.0 + i for i, ts in enumerate(self.minutes)}
        self.errors = {ts: float(i % 5) for i, ts in enumerate(self.minutes) if i % 5}
        self.flows = {ts: 7.0 * i for i, ts in enumerate(self.minutes)}
        aws.put(self.alb, "RequestCount", self.requests.items())
        aws.put(self.alb, "HTTPCode_ELB_5XX_Count", self.errors.items())
        aws.put(self.nlb, "NewFlowCount", self.flows.items())
        self.start = self.minutes[0]
        self.end = (self.now - 120) // 60 * 60  # settled

    def expected(self, values):
        return [(ts, v) for ts, v in sorted(values.items()) if self.start <= ts < self.end]

    def series(self, zero_fill=True):
        """{(metric, load balancer name): [(ts, value)]} the backfill must write."""
        out = {("alb_request_count_sum", self.alb.name): self.requests,
               ("alb_http_code_elb_5xx_count_sum", self.alb.name): self.errors,
               ("nlb_new_flow_count_sum", self.nlb.name): self.flows}
        if zero_fill:  # 0 in every minute with traffic > 0 (the NLB's first has 0 flows)
            for lb, traffic in ((self.alb, self.requests), (self.nlb, self.flows)):
                for spec in DEFAULT.fill_plan(lb.type).sparse:
                    out[(spec.prom_name, lb.name)] = {
                        ts: 0.0 for ts, v in traffic.items() if v > 0} | out.get(
                        (spec.prom_name, lb.name), {})
        return {k: self.expected(v) for k, v in out.items()}

    def samples(self, zero_fill=True):
        """Every (metric, load balancer, ts) the backfill must write."""
        return {(metric, lb, ts) for (metric, lb), pts in self.series(zero_fill).items()
                for ts, _ in pts}

    def backfill(self, *args, expect=0):
        result = CliRunner().invoke(cli, [
            "backfill", "--cluster", CLUSTER, "--region", "us-east-1",
            "--kubeconfig", self.kube.kubeconfig_path, "--log-format", "json",
            "--now", str(self.now), "--start", str(self.start), *args,
        ], catch_exceptions=False)
        assert result.exit_code == expect, result.output + result.stderr
        return result


def stored(prom, metric):
    return {dict(k)["load_balancer_name"]: [(t // 1000, v) for t, v in pts]
            for k, pts in prom.raw(metric, lookback=f"{HOURS + 1}h").items()}


def assert_exact(prom, w, zero_fill=True):
    want = w.series(zero_fill)
    for metric in sorted({m for m, _ in want} | {"alb_http_code_target_5xx_count_sum",
                                                 "nlb_client_tls_negotiation_error_count_sum"}):
        assert stored(prom, metric) == {lb: pts for (m, lb), pts in want.items()
                                        if m == metric}, metric


def write_live_sample(prom):
    """What the CronJob does all the time: a sample at the current minute, which moves
    the head, so that anything older than about 1h is out of bounds without an
    out-of-order window."""
    client = remote_write.Client(RemoteWriteSettings(prom.write_url, retries=0))
    client.post(remote_write.encode([Series((("__name__", "live"),),
                                            (Sample(int(time.time()) * 1000, 1.0),))]))


@pytest.fixture
def w(aws, kube):
    return World(aws, kube)


@pytest.fixture
def ooo_prometheus():
    prom = world.Prometheus(ooo_window="1d").start()
    yield prom
    prom.cleanup()


def test_multi_hour_backfill_into_prometheus_with_an_out_of_order_window(w, ooo_prometheus,
                                                                         tmp_path, kube):
    write_live_sample(ooo_prometheus)
    state = tmp_path / "state.json"
    result = w.backfill("--remote-write-url", ooo_prometheus.write_url,
                        "--state-file", str(state))
    assert_exact(ooo_prometheus, w)
    # The plan: every (load balancer, metric, statistic) requested once, in one call.
    assert "GetMetricData: 1 calls, 23 metrics requested" in result.output
    assert "estimated cost: $0.0002" in result.output
    assert "zero-fill: sparse counters of 2 of 2 load balancers get 0 in periods with " \
           "traffic" in result.output
    zeros = len(w.samples()) - len(w.samples(zero_fill=False))
    assert zeros > 13 * 200 and f"samples_zero_filled={zeros}" in result.stderr
    assert "backfill: 1/1 calls written (100%)" in result.stderr
    labels = dict(next(iter(ooo_prometheus.raw("alb_request_count_sum", lookback="5h"))))
    assert labels == {"__name__": "alb_request_count_sum", "cluster": CLUSTER,
                      "region": "us-east-1", "namespace": "shop", "ingress": "web",
                      "load_balancer_name": w.alb.name, "load_balancer": w.alb.dimension}
    assert f"samples_written={len(w.samples())} " in result.stderr
    assert not state.exists()  # complete: nothing to resume, nothing to block the next one
    # It never touches the CronJob's checkpoint.
    assert not [s for s in kube.seen if s.resource == "configmaps"]


def test_refused_as_too_old_says_what_to_change_and_resumes_after_the_fix(w, prometheus,
                                                                          tmp_path):
    write_live_sample(prometheus)
    state = str(tmp_path / "state.json")
    args = ("--remote-write-url", prometheus.write_url, "--state-file", state,
            "--remote-write-retries", "0")
    result = w.backfill(*args, expect=1)
    assert "out of bounds" in result.stderr
    assert "out_of_order_time_window" in result.stderr
    assert "--resume" in result.stderr
    assert stored(prometheus, "alb_request_count_sum") == {}
    # The operator turns the out-of-order window on and carries on.
    prometheus.stop()
    prometheus.ooo_window = "1d"
    prometheus.start()
    w.backfill(*args, expect=2)  # the state file is there: --resume or delete it
    w.backfill(*args, "--resume")
    assert_exact(prometheus, w)


def decode(body: bytes) -> list[tuple[str, str, int]]:
    wr = WriteRequest()
    wr.ParseFromString(snappy.uncompress(body))
    out = []
    for ts in wr.timeseries:
        labels = {lb.name: lb.value for lb in ts.labels}
        out += [(labels["__name__"], labels["load_balancer_name"], s.timestamp // 1000)
                for s in ts.samples]
    return out


def test_resume_after_the_endpoint_failed_sends_no_sample_twice(w, ooo_prometheus, tmp_path):
    proxy = FaultProxy(ooo_prometheus.url)
    proxy.start()
    refused = []

    def down_after_three(req):
        forwarded = [r for r in proxy.seen if r.method == "POST" and id(r) not in refused]
        if len(forwarded) > 3:
            refused.append(id(req))
            return True
        return False

    proxy.add(Rule(down_after_three, status=503, body=b"maintenance"))
    state = str(tmp_path / "state.json")
    args = ("--remote-write-url", f"{proxy.url}/api/v1/write", "--state-file", state,
            "--remote-write-retries", "0", "--remote-write-max-samples", "200")
    try:
        result = w.backfill(*args, expect=1)
        assert "503" in result.stderr and "--resume" in result.stderr
        assert json.loads(Path(state).read_text())["partial"] == [0, 600]  # 3 requests
        proxy.rules.clear()
        # Resumed with bigger requests: the skip is counted in samples, not requests.
        w.backfill(*args[:-2], "--resume")
    finally:
        proxy.stop()
    sent = Counter(s for r in proxy.seen if r.method == "POST" and id(r) not in refused
                   for s in decode(r.body))
    assert set(sent) == w.samples()
    assert max(sent.values()) == 1, "a finished request was sent again"
    assert_exact(ooo_prometheus, w)


def assert_promtool_loads_exactly(path, w, zero_fill=True):
    """promtool turns the file into blocks; a real Prometheus on them serves exactly
    CloudWatch's data."""
    prom = world.Prometheus()
    try:
        proc = subprocess.run([PROMTOOL, "tsdb", "create-blocks-from", "openmetrics",
                               str(path), os.path.join(prom.dir, "data")],
                              capture_output=True, text=True)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        prom.start()
        assert_exact(prom, w, zero_fill)
    finally:
        prom.cleanup()


def test_openmetrics_file_loads_with_promtool_and_reads_back_exactly(w, tmp_path):
    out = tmp_path / "backfill.om"
    result = w.backfill("--output", str(out), "--state-file", str(tmp_path / "s.json"))
    assert "promtool tsdb create-blocks-from openmetrics" in result.output
    text = out.read_text()
    assert text.endswith("# EOF\n")
    assert len(text.splitlines()) == len(w.samples()) + 1
    assert_promtool_loads_exactly(out, w)


def test_openmetrics_resume_retries_a_failed_call_and_drops_a_torn_write(w, moto_server,
                                                                         tmp_path):
    """Library level, to get many calls from a small world: 4 queries per call."""
    targets = tuple(
        backfill.Target(lb.dimension, lb.name, (("LoadBalancer", lb.dimension),),
                        (("cluster", CLUSTER), ("load_balancer_name", lb.name)),
                        default_specs(lb.type))
        for lb in (w.alb, w.nlb))
    window = Window(w.start, w.end, 60)
    plan = backfill.make_plan(window, targets, max_queries=4)
    assert len(plan.calls) == 6  # 14 ALB + 9 NLB queries, each requested once
    assert plan.metrics_requested == 23
    proxy = FaultProxy(moto_server)
    proxy.start()
    # The call carrying the ALB's 5xx count is refused (not a throttle, so no retry).
    proxy.add(Rule(lambda r: r.mentions("HTTPCode_ELB_5XX_Count"), status=400,
                   body=b'{"__type":"InvalidParameterValue","message":"injected"}',
                   headers={"Content-Type": "application/x-amz-json-1.0"}))
    cw = boto3.client("cloudwatch", region_name="us-east-1", endpoint_url=proxy.url,
                      config=AWS_CONFIG)
    out = str(tmp_path / "b.om")
    store = backfill.StateFile(str(tmp_path / "state.json"))
    state = backfill.State(window, targets, f"file {out}")
    store.save(state)
    try:
        sink = backfill.OpenMetricsSink(out, state, False)
        first = backfill.run(plan, state, store, cw, sink)
        sink.close()
        # It stops at the failed call, so a series' pieces stay in time order in the file.
        k = next(i for i, c in enumerate(plan.calls)
                 if any(q.spec.metric == "HTTPCode_ELB_5XX_Count" for q in c.queries))
        assert list(first.failed) == [k] and state.done == set(range(k))
        assert not Path(out).read_text().endswith("# EOF\n")
        with open(out, "a") as f:  # an interrupted call's lines, past the recorded offset
            f.write('alb_request_count_sum{load_balancer_name="torn"} 1.0 1\n')
        proxy.rules.clear()
        state = store.load()
        sink = backfill.OpenMetricsSink(out, state, True)
        second = backfill.run(plan, state, store, cw, sink)
        sink.close()
    finally:
        proxy.stop()
    assert second.calls_done == len(plan.calls) - k
    assert second.metrics_requested == sum(len(c.queries) for c in plan.calls[k:])
    text = Path(out).read_text()
    assert "torn" not in text and text.endswith("# EOF\n")
    lines = text.splitlines()[:-1]
    assert len(lines) == len(set(lines)) == len(w.samples(zero_fill=False))
    assert_promtool_loads_exactly(out, w, zero_fill=False)


def test_no_zero_fill_writes_only_what_cloudwatch_holds(w, tmp_path):
    out = tmp_path / "backfill.om"
    result = w.backfill("--output", str(out), "--state-file", str(tmp_path / "s.json"),
                        "--no-zero-fill")
    assert "zero-fill: off" in result.output and "samples_zero_filled=0" in result.stderr
    assert len(out.read_text().splitlines()) == len(w.samples(zero_fill=False)) + 1
    assert_promtool_loads_exactly(out, w, zero_fill=False)


def test_backfill_follows_the_metrics_config(w, ooo_prometheus, tmp_path):
    config = tmp_path / "metrics.yaml"
    config.write_text("application:\n  drop:\n    - metric: HTTPCode_Target_5XX_Count\n"
                      "    - metric: RequestCount\n")
    write_live_sample(ooo_prometheus)
    result = w.backfill("--remote-write-url", ooo_prometheus.write_url, "--state-file",
                        str(tmp_path / "s.json"), "--metrics-config", str(config))
    assert "GetMetricData: 1 calls, 21 metrics requested" in result.output
    # Without RequestCount there is nothing to key zeros off for the ALB: said once.
    assert [json.loads(line)["msg"] for line in result.stderr.splitlines()
            if '"warning"' in line] == [
        "zero-fill: RequestCount Sum is not in the application catalog (dropped by "
        "--metrics-config), so sparse counters of ALBs are not zero-filled; keep it to have "
        "quiet periods written as 0"]
    assert stored(ooo_prometheus, "alb_request_count_sum") == {}
    assert stored(ooo_prometheus, "alb_http_code_elb_5xx_count_sum") == {
        w.alb.name: w.expected(w.errors)}
    assert stored(ooo_prometheus, "alb_http_code_target_4xx_count_sum") == {}
    assert stored(ooo_prometheus, "nlb_client_tls_negotiation_error_count_sum") == {
        w.nlb.name: w.series()[("nlb_client_tls_negotiation_error_count_sum", w.nlb.name)]}


def test_load_balancer_filter_and_no_checkpoint(w, ooo_prometheus, tmp_path, kube):
    w.backfill("--remote-write-url", ooo_prometheus.write_url, "--state-file",
               str(tmp_path / "s.json"), "--load-balancer", w.nlb.name)
    assert stored(ooo_prometheus, "nlb_new_flow_count_sum") == {w.nlb.name:
                                                                w.expected(w.flows)}
    assert stored(ooo_prometheus, "alb_request_count_sum") == {}
    assert kube.get("v1", "configmaps", "monitoring", "lbscrape-checkpoint") is None


@pytest.mark.parametrize("args, message", [
    (["--start", "-20d"], "--period 5m (5-minute data is kept for 63 days)"),
    (["--start", "-100d", "--period", "5m"], "--period 1h (1-hour data is kept for 455 days)"),
    (["--start", "-500d", "--period", "1h"], "no ELB data is kept longer than 455 days"),
    (["--start", "yesterday"], "--start: cannot read time 'yesterday'"),
    (["--start", "-1h", "--end", "-2h"], "holds no settled 60s period"),
    (["--start", "-1h", "--period", "90s"], "--period: 90s is not a positive multiple"),
])
def test_bad_ranges_are_one_line_usage_errors(w, tmp_path, args, message):
    result = CliRunner().invoke(cli, [
        "backfill", "--cluster", CLUSTER, "--region", "us-east-1", "--kubeconfig",
        w.kube.kubeconfig_path, "--output", str(tmp_path / "x.om"), "--state-file",
        str(tmp_path / "s.json"), *args])
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "x.om").exists() and not (tmp_path / "s.json").exists()


def test_bad_destination_state_and_filters(w, tmp_path, prometheus):
    state = tmp_path / "s.json"
    both = ("--output", str(tmp_path / "x.om"), "--remote-write-url", prometheus.write_url)
    assert "either --remote-write-url or --output" in w.backfill(*both, expect=2).stderr
    assert "either --remote-write-url or --output" in w.backfill(expect=2).stderr
    out = ("--output", str(tmp_path / "x.om"), "--state-file", str(state))
    r = w.backfill(*out, "--resume", expect=2)
    assert f"no state file {state}" in r.stderr
    r = w.backfill(*out, "--load-balancer", "nope", expect=2)
    assert "--load-balancer: no discovered load balancer matches nope" in r.stderr
    state.write_text('{"format": 99}')
    r = w.backfill(*out, "--resume", expect=2)
    assert f"state file {state} has format 99" in r.stderr and "delete" in r.stderr
    state.write_text("{not json")
    assert "cannot be read" in w.backfill(*out, "--resume", expect=2).stderr


def test_resume_with_another_destination_is_refused(w, tmp_path):
    state = str(tmp_path / "s.json")
    backfill.StateFile(state).save(backfill.State(Window(w.start, w.end, 60), (),
                                                  f"file {tmp_path / 'a.om'}"))
    r = w.backfill("--output", str(tmp_path / "b.om"), "--state-file", state, "--resume",
                   expect=2)
    assert "was writing to file" in r.stderr


def test_a_complete_backfill_hands_over_to_run_through_its_checkpoint_file(w, tmp_path):
    state, ckpt = tmp_path / "s.json", tmp_path / "checkpoint.json"
    # The NLB's checkpoint ends before the range: moving it would hide that gap from run.
    FileStore(str(ckpt)).save(Checkpoint(), {w.nlb.dimension: w.start - 3600})
    r = w.backfill("--output", str(tmp_path / "a.om"), "--state-file", str(state),
                   "--checkpoint-file", str(ckpt))
    assert "checkpoint file" in r.output and "1 load balancers continue from" in r.output
    assert FileStore(str(ckpt)).load().ends == {w.alb.dimension: w.end,
                                                 w.nlb.dimension: w.start - 3600}
    assert not state.exists()
    w.backfill("--output", str(tmp_path / "b.om"), "--state-file", str(state))  # not blocked


def test_a_run_checkpoint_file_is_never_taken_for_a_state_file(w, tmp_path):
    ckpt = tmp_path / "checkpoint.json"
    FileStore(str(ckpt)).save(Checkpoint(), {w.alb.dimension: w.end})
    before = ckpt.read_text()
    for extra in ((), ("--resume",)):
        r = w.backfill("--output", str(tmp_path / "a.om"), "--state-file", str(ckpt), *extra,
                       expect=2)
        assert "is a checkpoint file of 'lbscrape run', not a backfill state file" in r.stderr
        assert "delete" not in r.stderr
    assert ckpt.read_text() == before


# --- pure parts -------------------------------------------------------------------------

NOW = int(datetime(2026, 11, 23, 12, 0, 30, tzinfo=UTC).timestamp())


@pytest.mark.parametrize("text, want", [
    ("2026-11-01", "2026-11-01T00:00:00+00:00"),
    ("2026-11-01T06:30:00Z", "2026-11-01T06:30:00+00:00"),
    ("2026-11-01T07:30:00+01:00", "2026-11-01T06:30:00+00:00"),
    ("-6h", "2026-11-23T06:00:30+00:00"),
    ("-1d2h", "2026-11-22T10:00:30+00:00"),
    ("now", "2026-11-23T12:00:30+00:00"),
    ("1793232000", "2026-10-29T00:00:00+00:00"),
])
def test_parse_when(text, want):
    assert datetime.fromtimestamp(backfill.parse_when(text, NOW, "--start"), UTC) \
        .isoformat() == want


@pytest.mark.parametrize("text", ["", "-", "2026-11-01T06:30:00", "-6x", "tomorrow"])
def test_parse_when_refuses(text):
    with pytest.raises(ConfigError, match="--start: cannot read time"):
        backfill.parse_when(text, NOW, "--start")


def test_plan_range_rounds_to_whole_settled_periods():
    w = backfill.plan_range(NOW - 3600 + 10, NOW, 60, 120, NOW)
    assert (w.start, w.end) == (NOW // 60 * 60 - 3600, (NOW - 120) // 60 * 60)
    w = backfill.plan_range(NOW - 10 * 86400, NOW - 9 * 86400, 300, 120, NOW)
    assert w.start % 300 == 0 and w.end % 300 == 0 and w.periods == 288


def test_plan_range_knows_how_long_each_period_is_kept():
    assert [backfill.kept_for(p) // 86400 for p in (60, 120, 300, 600, 3600, 7200)] == \
        [15, 15, 63, 63, 455, 455]
    backfill.plan_range(NOW - 15 * 86400 + 60, NOW, 60, 120, NOW)  # just inside
    with pytest.raises(ConfigError, match="use --period 5m"):
        backfill.plan_range(NOW - 15 * 86400 - 60, NOW, 120, 120, NOW)


def test_a_15_day_plan_requests_each_metric_once():
    targets = [backfill.Target(f"app/lb{i}/x", f"lb{i}", (("LoadBalancer", f"app/lb{i}/x"),),
                               (), default_specs("application")) for i in range(50)]
    window = Window(NOW // 60 * 60 - 15 * 86400 + 60, NOW // 60 * 60 - 120, 60)
    plan = backfill.make_plan(window, targets)
    assert plan.metrics_requested == 50 * 14
    assert all(c.datapoints <= 100_800 and len(c.queries) <= 500 for c in plan.calls)
    assert len(plan.calls) == -(-700 // (100_800 // window.periods))
    assert abs(plan.dollars - 0.007) < 1e-9


def filled_targets(n):
    out = []
    for i in range(n):
        lb_type = "application" if i % 2 == 0 else "network"
        dim = f"app/lb{i}/x"
        out.append(backfill.Target(dim, f"lb{i}", (("LoadBalancer", dim),), (),
                                   DEFAULT.specs(lb_type), DEFAULT.fill_plan(lb_type)))
    return out


@pytest.mark.parametrize("days, max_queries", [(0.1, 500), (0.1, 30), (3, 500), (15, 500)])
def test_with_zero_fill_each_call_carries_whole_load_balancers(days, max_queries):
    # Zero-fill needs the traffic metric in the same call as the sparse counters.
    targets = filled_targets(51)
    end = NOW // 60 * 60 - 120
    window = Window(end - int(days * 86400) // 60 * 60, end, 60)
    plan = backfill.make_plan(window, targets, max_queries)
    pieces = -(-window.periods // (100_800 // 14))
    assert plan.metrics_requested == (26 * 14 + 25 * 9) * pieces
    for c in plan.calls:
        assert c.datapoints <= 100_800 and len(c.queries) <= max_queries
        assert len({q.id for q in c.queries}) == len(c.queries)
        for t in targets:
            assert {q.spec for q in c.queries if q.lb_key == t.key} in (set(), set(t.specs))
    # Every (target, metric) covers the window exactly once.
    for t in targets:
        for spec in t.specs:
            covered = sorted((c.window.start, c.window.end) for c in plan.calls
                             for q in c.queries if q.lb_key == t.key and q.spec == spec)
            assert covered[0][0] == window.start and covered[-1][1] == window.end
            assert all(a[1] == b[0] for a, b in zip(covered, covered[1:], strict=False))
    # Without zero-fill, 15 days are still one request of each metric.
    plain = backfill.make_plan(window, [backfill.Target(t.key, t.name, t.dimensions, t.labels,
                                                        t.specs) for t in targets], max_queries)
    assert plain.metrics_requested == 26 * 14 + 25 * 9


def test_state_keeps_the_fill_plan_for_resume(tmp_path):
    targets = tuple(filled_targets(2)) + (backfill.Target(
        "app/off/x", "off", (("LoadBalancer", "app/off/x"),), (("cluster", "c"),),
        default_specs("application")),)
    state = backfill.State(Window(0, 600, 60), targets, "file x.om", {1}, (2, 3))
    back = backfill.State.from_json(state.to_json(), "s.json")
    assert back.targets == targets and back.done == {1} and back.partial == (2, 3)
    assert back.targets[0].fill.traffic.metric == "RequestCount"
    assert back.targets[1].fill.traffic.metric == "NewFlowCount"
    assert back.targets[2].fill is None


def test_requests_pack_and_cut_series_deterministically():
    series = [Series((("__name__", f"m{i}"),), tuple(Sample(t * 1000, 1.0) for t in range(7)))
              for i in range(3)]
    reqs = list(backfill.requests(series, 5))
    assert [sum(len(s.samples) for s in r) for r in reqs] == [5, 5, 5, 5, 1]
    assert [(s.name, x.timestamp_ms) for r in reqs for s in r for x in s.samples] == \
        [(s.name, x.timestamp_ms) for s in series for x in s.samples]
    assert list(backfill.requests(series, 5)) == reqs


def test_resume_refuses_an_output_file_shorter_than_it_wrote(tmp_path):
    out = tmp_path / "a.om"
    out.write_text("x\n")
    state = backfill.State(Window(0, 60, 60), (), f"file {out}", file_offset=100)
    with pytest.raises(ConfigError, match="is shorter than the backfill wrote"):
        backfill.OpenMetricsSink(str(out), state, True)
    assert out.read_text() == "x\n"  # not padded with NULs


def test_resume_refuses_a_range_that_aged_out_of_retention():
    window = Window(NOW // 60 * 60 - 16 * 86400, NOW // 60 * 60 - 15 * 86400, 60)
    targets = [backfill.Target("app/a/x", "a", (("LoadBalancer", "app/a/x"),), (),
                               default_specs("application"))]
    plan = backfill.make_plan(window, targets)
    with pytest.raises(ConfigError, match="older than CloudWatch keeps 60s-period data"):
        backfill.check_still_kept(plan, set(), NOW)
    backfill.check_still_kept(plan, set(range(len(plan.calls))), NOW)  # nothing left: fine


def test_an_unresolved_owner_is_named_not_silently_left_out(w, tmp_path):
    w.kube.put("networking.k8s.io/v1", "ingresses",
               world.ingress("blog", "gone", "k8s-blog-gone-1.us-east-1.elb.amazonaws.com"))
    r = w.backfill("--output", str(tmp_path / "a.om"), "--state-file", str(tmp_path / "s"))
    assert "Ingress blog/gone" in r.stderr and "not backfilled" in r.stderr
