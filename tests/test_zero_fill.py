"""Zero-filling sparse counters: the pure rule, then `lbscrape run` with it on and off against
moto, the fake Kubernetes API and a real Prometheus.

The rule: a sparse counter that was fetched gets 0 for a period in which the load
balancer's traffic metric (RequestCount, NewFlowCount for NLB) has a datapoint > 0 and the
counter has none. Never for a counter that was not fetched, a period without traffic, or
when the traffic metric was not fetched or its fetch failed.
"""

from __future__ import annotations

import json
import random

import boto3
import pytest

from lbscrape.core.catalog import FillPlan
from lbscrape.core.errors import ExitStatus
from lbscrape.core.model import MetricSpec, Sample
from lbscrape.flows import pipeline
from lbscrape.prom.series import zero_fill
from tests import world
from tests.test_pipeline import clients, config
from tests.test_run import Scene, end_for, logs, summary

NS = "AWS/ApplicationELB"
REQ = MetricSpec(NS, "RequestCount", "Sum", "alb_request_count_sum")
E5 = MetricSpec(NS, "HTTPCode_ELB_5XX_Count", "Sum", "alb_http_code_elb_5xx_count_sum")
T5 = MetricSpec(NS, "HTTPCode_Target_5XX_Count", "Sum", "alb_http_code_target_5xx_count_sum")
RT = MetricSpec(NS, "TargetResponseTime", "Average", "alb_target_response_time_average")
PLAN = FillPlan(traffic=REQ, sparse=(E5, T5))


def pts(*pairs):
    return [Sample(t * 1000, float(v)) for t, v in pairs]


def test_fills_only_periods_with_traffic_and_keeps_real_values():
    data = {
        REQ: pts((0, 5), (60, 0), (180, 3), (240, 7)),  # 120: no datapoint
        E5: pts((120, 1), (180, 2)),
        T5: [],
        RT: pts((0, 0.2)),
    }
    out, added = zero_fill(data, PLAN)
    assert out[E5] == pts((0, 0), (120, 1), (180, 2), (240, 0))
    assert out[T5] == pts((0, 0), (180, 0), (240, 0))
    assert out[REQ] == data[REQ] and out[RT] == data[RT]  # never the traffic or a gauge
    assert added == 5
    assert data[E5] == pts((120, 1), (180, 2)) and data[T5] == []  # input untouched


def test_a_counter_that_was_not_fetched_is_not_invented():
    out, added = zero_fill({REQ: pts((0, 5)), E5: []}, PLAN)
    assert T5 not in out
    assert out[E5] == pts((0, 0)) and added == 1


@pytest.mark.parametrize("plan", [FillPlan(None, (E5, T5)), PLAN])
def test_nothing_is_filled_without_the_traffic_metric(plan):
    data = {E5: pts((60, 1)), T5: []}  # RequestCount not fetched
    out, added = zero_fill(data, plan)
    assert out == data and added == 0


def test_filling_is_per_period_so_split_and_repeated_windows_agree():
    rng = random.Random(7)
    for _ in range(200):
        ts = range(0, 60 * 30, 60)
        data = {
            REQ: pts(*[(t, rng.choice([0, 1, 9])) for t in ts if rng.random() < 0.8]),
            E5: pts(*[(t, rng.randint(1, 3)) for t in ts if rng.random() < 0.3]),
            T5: pts(*[(t, 1) for t in ts if rng.random() < 0.1]),
        }
        whole, added = zero_fill(data, PLAN)
        cut = rng.randrange(0, 30) * 60 * 1000
        parts = [zero_fill({k: [s for s in v if (s.timestamp_ms < cut) == early]
                            for k, v in data.items()}, PLAN) for early in (True, False)]
        for spec in data:
            assert parts[0][0][spec] + parts[1][0][spec] == whole[spec]
        assert parts[0][1] + parts[1][1] == added
        assert zero_fill(whole, PLAN) == (whole, 0)  # a second pass adds nothing


# --- end to end -------------------------------------------------------------------------

# The quiet ALB's ten minutes of the first window: RequestCount (None: no datapoint),
# and the sparse counters CloudWatch published.
QUIET_REQUESTS = [5, 0, None, 3, 7, None, 1, 2, 0, 4]
QUIET_5XX = {2: 1.0, 3: 2.0, 6: 1.0}  # minute 2: a 5xx without RequestCount (ALB 460/5xx)
QUIET_2XX = {0: 5.0}


class Quiet(Scene):
    """The test_run world plus an ALB with quiet minutes, written by one run at `clock`."""

    def __init__(self, aws, kube, prometheus):
        super().__init__(aws, kube, prometheus)
        self.quiet = aws.create_lb("k8s-shop-quiet-0123456789")
        kube.put("networking.k8s.io/v1", "ingresses",
                 world.ingress("shop", "quiet", self.quiet.dns_name))
        self.start = end_for(self.clock) - 600
        self.w = [self.start + 60 * i for i in range(10)]
        aws.put(self.quiet, "RequestCount",
                [(t, float(v)) for t, v in zip(self.w, QUIET_REQUESTS, strict=True)
                 if v is not None])
        aws.put(self.quiet, "HTTPCode_ELB_5XX_Count", [(self.w[i], v) for i, v in QUIET_5XX.items()])
        aws.put(self.quiet, "HTTPCode_Target_2XX_Count",
                [(self.w[i], v) for i, v in QUIET_2XX.items()])

    def busy(self):
        return [i for i, v in enumerate(QUIET_REQUESTS) if v]

    def series(self, metric, lb=None):
        return self.stored(metric).get((lb or self.quiet).name, [])


@pytest.fixture
def quiet(aws, kube, prometheus):
    return Quiet(aws, kube, prometheus)


def test_zero_fill_is_on_by_default(quiet):
    result = quiet.run(quiet.clock)
    w = quiet.w
    assert quiet.series("alb_http_code_elb_5xx_count_sum") == [
        (w[0], 0.0), (w[2], 1.0), (w[3], 2.0), (w[4], 0.0), (w[6], 1.0), (w[7], 0.0),
        (w[9], 0.0)]  # nothing for minutes 1 and 8 (0 requests) or 5 (no datapoint)
    assert quiet.series("alb_http_code_target_2xx_count_sum") == [
        (w[i], 5.0 if i == 0 else 0.0) for i in quiet.busy()]
    # A counter CloudWatch never published for this ALB: 0 exactly where there was traffic.
    assert quiet.series("alb_http_code_target_5xx_count_sum") == [(w[i], 0.0) for i in quiet.busy()]
    # The traffic metric is written as published, and a latency is never filled.
    assert quiet.series("alb_request_count_sum") == [
        (t, float(v)) for t, v in zip(w, QUIET_REQUESTS, strict=True) if v is not None]
    assert quiet.series("alb_target_response_time_average") == []
    # The busy web ALB: every minute has traffic, so its 5xx are a dense series.
    web = quiet.series("alb_http_code_elb_5xx_count_sum", quiet.alb)
    assert web == [(t, float(quiet.minutes.index(t) % 3)) for t in w]
    # The NLB keys off NewFlowCount.
    assert quiet.series("nlb_client_tls_negotiation_error_count_sum", quiet.nlb) == [
        (t, 0.0) for t in w]
    # 11 sparse ALB counters, 6 busy minutes, 4 real datapoints among them; the web ALB's
    # 10 minutes minus its non-zero 5xx minutes; the NLB's 2 counters x 10 minutes.
    web_5xx = sum(1 for t in w if quiet.minutes.index(t) % 3)
    expected = (11 * 6 - 3) + (11 * 10 - web_5xx) + 2 * 10
    assert f"samples_zero_filled={expected}" in summary(result)
    start = logs(result)[0]["msg"]
    assert "metrics_config=- metrics=alb:14,nlb:9,elb:13 zero_fill=on" in start


@pytest.mark.parametrize("how", ["flag", "env"])
def test_no_zero_fill_writes_only_what_cloudwatch_published(quiet, monkeypatch, how):
    if how == "env":
        monkeypatch.setenv("LBSCRAPE_ZERO_FILL", "false")
        result = quiet.run(quiet.clock)
    else:
        result = quiet.run(quiet.clock, "--no-zero-fill")
    w = quiet.w
    assert quiet.series("alb_http_code_elb_5xx_count_sum") == [
        (w[i], v) for i, v in sorted(QUIET_5XX.items())]
    assert quiet.series("alb_http_code_target_2xx_count_sum") == [(w[0], 5.0)]
    assert quiet.prom.raw("alb_http_code_target_5xx_count_sum") == {}
    assert quiet.prom.raw("nlb_client_tls_negotiation_error_count_sum") == {}
    web = quiet.series("alb_http_code_elb_5xx_count_sum", quiet.alb)
    assert web and all(v in (1.0, 2.0) for _, v in web)
    assert "samples_zero_filled=0" in summary(result)
    assert "zero_fill=off" in logs(result)[0]["msg"]


def test_without_the_traffic_metric_there_is_no_fill_and_one_warning(quiet, tmp_path):
    path = tmp_path / "metrics.yaml"
    path.write_text("application:\n  drop:\n    - metric: RequestCount\n")
    result = quiet.run(quiet.clock, "--metrics-config", str(path))
    warnings = [e["msg"] for e in logs(result) if e["level"] == "warning"]
    assert warnings == [
        "zero-fill: RequestCount Sum is not in the application catalog (dropped by "
        "--metrics-config), so sparse counters of ALBs are not zero-filled; keep it to have "
        "quiet periods written as 0"]
    assert quiet.series("alb_http_code_elb_5xx_count_sum") == [
        (quiet.w[i], v) for i, v in sorted(QUIET_5XX.items())]
    assert quiet.prom.raw("alb_http_code_target_5xx_count_sum") == {}
    assert quiet.prom.raw("alb_request_count_sum") == {}
    # The NLB still has its traffic metric, so it is still filled.
    assert quiet.series("nlb_client_tls_negotiation_error_count_sum", quiet.nlb) == [
        (t, 0.0) for t in quiet.w]


class TrafficFails:
    """moto's CloudWatch, except that every RequestCount result comes back InternalError."""

    def __init__(self):
        self.real = boto3.client("cloudwatch", region_name="us-east-1")

    def get_metric_data(self, **kwargs):
        resp = self.real.get_metric_data(**kwargs)
        ids = {q["Id"] for q in kwargs["MetricDataQueries"]
               if q["MetricStat"]["Metric"]["MetricName"] == "RequestCount"}
        for r in resp["MetricDataResults"]:
            if r["Id"] in ids:
                r.update(StatusCode="InternalError", Timestamps=[], Values=[],
                         Messages=[{"Code": "InternalError", "Value": "try again"}])
        return resp


def test_a_failed_traffic_fetch_fills_nothing_and_keeps_the_checkpoint(quiet):
    result = pipeline.run(config(), clients(quiet, TrafficFails()), quiet.clock,
                          emit=lambda _: None)
    assert result.status == ExitStatus.PARTIAL
    assert set(result.failed) == {quiet.alb.name, quiet.quiet.name}
    assert quiet.prom.raw('{__name__=~"alb_.+"}') == {}
    assert quiet.series("nlb_client_tls_negotiation_error_count_sum", quiet.nlb) == [
        (t, 0.0) for t in quiet.w]
    assert result.counters["samples_zero_filled"] == 2 * 10
    cm = quiet.kube.get("v1", "configmaps", "monitoring", "lbscrape-checkpoint")
    assert set(json.loads(cm["data"]["checkpoint.json"])["load_balancers"]) == {
        quiet.nlb.dimension}


def test_a_repeated_window_writes_the_same_zeros(quiet):
    quiet.kube.inject("POST", "/configmaps", 500, times=5)
    quiet.run(quiet.clock, expect=1)  # written, but the checkpoint could not be stored
    first = quiet.stored("alb_http_code_target_5xx_count_sum")
    assert first[quiet.quiet.name]
    result = quiet.run(quiet.clock)  # the same window again
    assert quiet.stored("alb_http_code_target_5xx_count_sum") == first
    # Prometheus refuses the repeats as older than what it holds; had a zero changed, the
    # last minute would be refused as a conflicting value instead.
    assert "duplicate sample" not in result.stderr
    assert int(summary(result).split("samples_rejected=")[1].split()[0]) > 0
