"""`lbscrape estimate` on the test world, checked against what a run really requests."""

from __future__ import annotations

import json

from click.testing import CliRunner

from lbscrape.cli import cli
from tests.faultproxy import FaultProxy
from tests.test_run import Scene


def estimate(scene, *args):
    result = CliRunner().invoke(cli, ["estimate", "--region", "us-east-1", "--kubeconfig",
                                      scene.kube.kubeconfig_path, *args])
    assert result.exit_code == 0, result.output + result.stderr
    return result.output


def test_estimate_matches_the_calls_a_steady_run_makes(aws, kube, prometheus, moto_server,
                                                       monkeypatch):
    scene = Scene(aws, kube, prometheus)
    est = json.loads(estimate(scene, "-o", "json"))
    scene.run(scene.clock - 60)  # first run: initial lookback
    proxy = FaultProxy(moto_server)
    proxy.start()
    monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
    try:
        scene.run(scene.clock)  # a steady run, one minute later
    finally:
        proxy.stop()
    gmd = [r for r in proxy.seen if r.mentions("GetMetricData")]
    queries = sum(len(json.loads(r.body)["MetricDataQueries"]) for r in gmd)
    assert est["per_run"] == {"get_metric_data_calls": len(gmd), "metrics_requested": queries}
    assert queries == 14 + 9
    assert est["load_balancers"] == {"alb": 1, "nlb": 1}
    assert est["per_month"]["metrics_requested"] == 23 * 43_200
    assert est["per_month"]["usd"] == 9.94
    assert sum(m["metrics_per_month"] for m in est["by_metric"]) == 23 * 43_200


def test_a_longer_interval_costs_less_and_the_table_states_the_assumption(aws, kube, prometheus):
    scene = Scene(aws, kube, prometheus)
    table = estimate(scene, "--interval", "5m")
    assert "per month (8,640 runs that fetch): 198,720 metrics requested, $1.99" in table
    assert "alb_request_count_sum" in table and "$0.01 per 1,000 metrics requested" in table
