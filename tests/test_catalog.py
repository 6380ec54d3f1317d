"""The metric catalog: CloudWatch names -> Prometheus names (the metric-name contract)."""

from __future__ import annotations

import re

import pytest

from lbscrape.catalog import (
    DEFAULT_METRICS,
    KINDS,
    STAT_SUFFIX,
    default_specs,
    prom_name,
    snake_case,
)


@pytest.mark.parametrize(("metric", "expected"), [
    ("RequestCount", "request_count"),
    ("HTTPCode_ELB_5XX_Count", "http_code_elb_5xx_count"),
    ("HTTPCode_ELB_4XX_Count", "http_code_elb_4xx_count"),
    ("HTTPCode_Target_2XX_Count", "http_code_target_2xx_count"),
    ("TargetResponseTime", "target_response_time"),
    ("NewFlowCount", "new_flow_count"),
    ("ActiveFlowCount", "active_flow_count"),
    ("ProcessedBytes", "processed_bytes"),
    ("ConsumedLCUs", "consumed_lcus"),
    ("TCP_Client_Reset_Count", "tcp_client_reset_count"),
    ("TCP_ELB_Reset_Count", "tcp_elb_reset_count"),
    ("ClientTLSNegotiationErrorCount", "client_tls_negotiation_error_count"),
    ("TargetTLSNegotiationErrorCount", "target_tls_negotiation_error_count"),
    ("UnHealthyHostCount", "un_healthy_host_count"),
    ("HealthyHostCount", "healthy_host_count"),
    ("RequestCountPerTarget", "request_count_per_target"),
    ("RejectedConnectionCount", "rejected_connection_count"),
    ("HTTP_Redirect_Count", "http_redirect_count"),
])
def test_snake_case(metric, expected):
    assert snake_case(metric) == expected


@pytest.mark.parametrize(("lb_type", "metric", "stat", "expected"), [
    ("application", "RequestCount", "Sum", "alb_request_count_sum"),
    ("application", "HTTPCode_ELB_5XX_Count", "Sum", "alb_http_code_elb_5xx_count_sum"),
    ("application", "HTTPCode_Target_2XX_Count", "Sum", "alb_http_code_target_2xx_count_sum"),
    ("application", "TargetResponseTime", "Average", "alb_target_response_time_average"),
    ("application", "ConsumedLCUs", "Average", "alb_consumed_lcus_average"),
    ("network", "NewFlowCount", "Sum", "nlb_new_flow_count_sum"),
    ("network", "ProcessedBytes", "Sum", "nlb_processed_bytes_sum"),
    ("network", "ActiveFlowCount", "Maximum", "nlb_active_flow_count_maximum"),
    ("network", "UnHealthyHostCount", "SampleCount", "nlb_un_healthy_host_count_sample_count"),
])
def test_prom_name(lb_type, metric, stat, expected):
    assert prom_name(lb_type, metric, stat) == expected


PROM_NAME_RE = re.compile(r"^[a-z_][a-z0-9_]*$")


@pytest.mark.parametrize("lb_type", ["application", "network"])
def test_default_specs_names_and_namespaces(lb_type):
    specs = default_specs(lb_type)
    assert specs, "no default metrics"
    namespace = {"application": "AWS/ApplicationELB", "network": "AWS/NetworkELB"}[lb_type]
    prefix = {"application": "alb_", "network": "nlb_"}[lb_type]
    assert {s.namespace for s in specs} == {namespace}
    names = [s.prom_name for s in specs]
    assert len(names) == len(set(names)), "duplicate Prometheus names"
    for s in specs:
        assert PROM_NAME_RE.match(s.prom_name), s.prom_name
        assert "__" not in s.prom_name
        assert s.prom_name.startswith(prefix)
        assert s.prom_name.endswith("_" + STAT_SUFFIX[s.stat])
        assert s.prom_name == prom_name(lb_type, s.metric, s.stat)
    # Every catalog entry and statistic appears once.
    expected = [(m, st) for m, stats in DEFAULT_METRICS[lb_type] for st in stats]
    assert [(s.metric, s.stat) for s in specs] == expected
    assert len(set(expected)) == len(expected)


def test_default_specs_do_not_collide_across_types():
    alb = {s.prom_name for s in default_specs("application")}
    nlb = {s.prom_name for s in default_specs("network")}
    assert not alb & nlb


def test_default_specs_contain_the_contract_metrics():
    alb = {s.prom_name for s in default_specs("application")}
    nlb = {s.prom_name for s in default_specs("network")}
    assert {"alb_request_count_sum", "alb_http_code_elb_5xx_count_sum",
            "alb_http_code_target_2xx_count_sum", "alb_target_response_time_average"} <= alb
    assert {"nlb_new_flow_count_sum", "nlb_processed_bytes_sum"} <= nlb


def test_snake_case_keeps_every_character_of_the_default_metrics():
    # No letter or digit is lost: joining the words back gives the original (minus '_').
    for specs in DEFAULT_METRICS.values():
        for metric, _ in specs:
            assert snake_case(metric).replace("_", "") == metric.replace("_", "").lower()


def test_kinds_cover_both_types():
    assert KINDS["application"].namespace == "AWS/ApplicationELB"
    assert KINDS["network"].namespace == "AWS/NetworkELB"
