"""The metric catalog: CloudWatch names -> Prometheus names (the metric-name contract)."""

from __future__ import annotations

import re

import pytest

from lbscrape.core.catalog import (
    DEFAULT,
    DEFAULT_CATALOG,
    KINDS,
    KNOWN,
    Catalog,
    Entry,
    default_specs,
    parse_stat,
    prom_name,
    snake_case,
    stat_suffix,
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
    ("application", "TargetResponseTime", "p99", "alb_target_response_time_p99"),
    ("application", "TargetResponseTime", "p99.9", "alb_target_response_time_p99_9"),
    ("application", "TargetResponseTime", "p50", "alb_target_response_time_p50"),
    ("classic", "Latency", "p99.99", "elb_latency_p99_99"),
    ("classic", "RequestCount", "Sum", "elb_request_count_sum"),
    ("classic", "Latency", "Average", "elb_latency_average"),
    ("classic", "HTTPCode_Backend_5XX", "Sum", "elb_http_code_backend_5xx_sum"),
    ("classic", "UnHealthyHostCount", "Average", "elb_un_healthy_host_count_average"),
])
def test_prom_name(lb_type, metric, stat, expected):
    assert prom_name(lb_type, metric, stat) == expected


PROM_NAME_RE = re.compile(r"^[a-z_][a-z0-9_]*$")


@pytest.mark.parametrize("lb_type", ["application", "network", "classic"])
def test_default_specs_names_and_namespaces(lb_type):
    specs = default_specs(lb_type)
    assert specs, "no default metrics"
    namespace = {"application": "AWS/ApplicationELB", "network": "AWS/NetworkELB",
                 "classic": "AWS/ELB"}[lb_type]
    prefix = {"application": "alb_", "network": "nlb_", "classic": "elb_"}[lb_type]
    assert {s.namespace for s in specs} == {namespace}
    names = [s.prom_name for s in specs]
    assert len(names) == len(set(names)), "duplicate Prometheus names"
    for s in specs:
        assert PROM_NAME_RE.match(s.prom_name), s.prom_name
        assert "__" not in s.prom_name
        assert s.prom_name.startswith(prefix)
        assert s.prom_name.endswith("_" + stat_suffix(s.stat))
        assert s.prom_name == prom_name(lb_type, s.metric, s.stat)
        # Every default is a known metric, published per load balancer.
        assert "load_balancer" in KNOWN[lb_type][s.metric].dimensions
    # Every catalog entry and statistic appears once, in its dimension set.
    for dims in ("load_balancer", "target_group"):
        expected = [(e.metric, st) for e in DEFAULT_CATALOG[lb_type] if e.dimensions == dims
                    for st in e.stats]
        got = DEFAULT.specs(lb_type, dims)
        assert [(s.metric, s.stat) for s in got] == expected
        assert len(set(expected)) == len(expected)


# The lists: what a team needs of its own Service behind a shared load balancer.
TG_DEFAULTS = {
    "application": {"RequestCount", "RequestCountPerTarget", "HTTPCode_Target_2XX_Count",
                    "HTTPCode_Target_3XX_Count", "HTTPCode_Target_4XX_Count",
                    "HTTPCode_Target_5XX_Count", "TargetResponseTime", "HealthyHostCount",
                    "UnHealthyHostCount", "TargetConnectionErrorCount"},
    "network": {"HealthyHostCount", "UnHealthyHostCount"},
    "classic": set(),
}


@pytest.mark.parametrize("lb_type", ["application", "network", "classic"])
def test_target_group_defaults_have_their_own_names(lb_type):
    specs = DEFAULT.specs(lb_type, "target_group")
    assert {s.metric for s in specs} == TG_DEFAULTS[lb_type]
    assert DEFAULT.has_target_groups(lb_type) == bool(TG_DEFAULTS[lb_type])
    prefix = {"application": "alb_tg_", "network": "nlb_tg_"}.get(lb_type, "")
    lb_names = {s.prom_name for t in KINDS for s in DEFAULT.specs(t)}
    for s in specs:
        assert "target_group" in KNOWN[lb_type][s.metric].dimensions
        assert s.prom_name == prom_name(lb_type, s.metric, s.stat, "target_group")
        assert s.prom_name.startswith(prefix) and PROM_NAME_RE.match(s.prom_name)
        # A sum over a load balancer's series must never add its target groups' too.
        assert s.prom_name not in lb_names


def test_target_group_zero_fill_keys_off_the_groups_own_requests():
    alb = DEFAULT.fill_plan("application", "target_group")
    assert alb.traffic is not None and alb.traffic.prom_name == "alb_tg_request_count_sum"
    assert {s.metric for s in alb.sparse} == {f"HTTPCode_Target_{c}XX_Count" for c in "2345"} \
        | {"TargetConnectionErrorCount"}
    # An NLB target group publishes no flow count: nothing to fill, nothing to warn about.
    nlb = DEFAULT.fill_plan("network", "target_group")
    assert nlb.traffic is None and nlb.sparse == ()
    assert DEFAULT.no_fill_reason("network", "target_group") is None
    dropped = Catalog({"application": tuple(
        e for e in DEFAULT_CATALOG["application"]
        if (e.metric, e.dimensions) != ("RequestCount", "target_group"))})
    assert "per target group" in (dropped.no_fill_reason("application", "target_group") or "")
    assert dropped.no_fill_reason("application") is None


def test_default_specs_do_not_collide_across_types():
    names = [{s.prom_name for s in default_specs(t)} for t in KINDS]
    assert sum(len(n) for n in names) == len(set().union(*names))


def test_default_specs_contain_the_contract_metrics():
    alb = {s.prom_name for s in default_specs("application")}
    nlb = {s.prom_name for s in default_specs("network")}
    assert {"alb_request_count_sum", "alb_http_code_elb_5xx_count_sum",
            "alb_http_code_target_2xx_count_sum", "alb_target_response_time_average"} <= alb
    assert {"nlb_new_flow_count_sum", "nlb_processed_bytes_sum"} <= nlb


def test_snake_case_keeps_every_character_of_the_default_metrics():
    # No letter or digit is lost: joining the words back gives the original (minus '_').
    for known in KNOWN.values():
        for metric in known:
            assert snake_case(metric).replace("_", "") == metric.replace("_", "").lower()


@pytest.mark.parametrize("lb_type", ["application", "network", "classic"])
def test_no_two_known_metrics_share_a_prometheus_name(lb_type):
    names = [snake_case(m) for m in KNOWN[lb_type]]
    assert len(names) == len(set(names))


def test_kinds_cover_three_types_with_their_dimension_and_traffic_metric():
    assert (KINDS["application"].namespace, KINDS["application"].dimension,
            KINDS["application"].traffic) == ("AWS/ApplicationELB", "LoadBalancer", "RequestCount")
    assert (KINDS["network"].namespace, KINDS["network"].dimension,
            KINDS["network"].traffic) == ("AWS/NetworkELB", "LoadBalancer", "NewFlowCount")
    assert (KINDS["classic"].namespace, KINDS["classic"].dimension,
            KINDS["classic"].traffic) == ("AWS/ELB", "LoadBalancerName", "RequestCount")
    for t, kind in KINDS.items():
        assert not KNOWN[t][kind.traffic].sparse  # never zero-filled itself


def test_classic_defaults_are_the_lean_set():
    assert [(s.metric, s.stat) for s in default_specs("classic")] == [
        ("RequestCount", "Sum"), ("Latency", "Average"), ("HTTPCode_ELB_4XX", "Sum"),
        ("HTTPCode_ELB_5XX", "Sum"), ("HTTPCode_Backend_2XX", "Sum"),
        ("HTTPCode_Backend_3XX", "Sum"), ("HTTPCode_Backend_4XX", "Sum"),
        ("HTTPCode_Backend_5XX", "Sum"), ("BackendConnectionErrors", "Sum"),
        ("SurgeQueueLength", "Maximum"), ("SpilloverCount", "Sum"),
        ("HealthyHostCount", "Average"), ("UnHealthyHostCount", "Average")]


@pytest.mark.parametrize(("text", "canonical"), [
    ("Sum", "Sum"), ("Average", "Average"), ("Minimum", "Minimum"), ("Maximum", "Maximum"),
    ("SampleCount", "SampleCount"), ("p99", "p99"), ("p99.9", "p99.9"), ("p99.99", "p99.99"),
    ("p99.90", "p99.9"), ("p50.0", "p50"), ("p050", "p50"), ("p0", "p0"), ("p0.5", "p0.5"),
    ("p100", "p100"), ("p100.00", "p100"),
    ("sum", None), ("SUM", None), ("P99", None), ("p", None), ("p100.01", None), ("p101", None),
    ("p99.999", None), ("p99.", None), ("p-1", None), ("p 99", None), ("tm99", None),
    ("IQM", None), ("", None), ("p99\n", None),
])
def test_parse_stat(text, canonical):
    assert parse_stat(text) == canonical


def test_percentile_names_follow_the_canonical_statistic():
    # Two spellings of one percentile are one statistic and one name, never two series.
    assert prom_name("application", "TargetResponseTime", parse_stat("p99.90")) == \
        prom_name("application", "TargetResponseTime", parse_stat("p99.9")) == \
        "alb_target_response_time_p99_9"


def test_fill_plan_of_the_defaults():
    alb = DEFAULT.fill_plan("application")
    assert (alb.traffic.metric, alb.traffic.stat) == ("RequestCount", "Sum")
    assert {s.metric for s in alb.sparse} == {
        "HTTPCode_ELB_4XX_Count", "HTTPCode_ELB_5XX_Count", "HTTPCode_Target_2XX_Count",
        "HTTPCode_Target_3XX_Count", "HTTPCode_Target_4XX_Count", "HTTPCode_Target_5XX_Count",
        "TargetConnectionErrorCount", "ClientTLSNegotiationErrorCount",
        "TargetTLSNegotiationErrorCount", "RejectedConnectionCount", "ProcessedBytes"}
    nlb = DEFAULT.fill_plan("network")
    assert (nlb.traffic.metric, nlb.traffic.stat) == ("NewFlowCount", "Sum")
    assert {s.metric for s in nlb.sparse} == {"ClientTLSNegotiationErrorCount",
                                               "TargetTLSNegotiationErrorCount"}
    elb = DEFAULT.fill_plan("classic")
    assert {s.metric for s in elb.sparse} == {
        "HTTPCode_ELB_4XX", "HTTPCode_ELB_5XX", "HTTPCode_Backend_2XX", "HTTPCode_Backend_3XX",
        "HTTPCode_Backend_4XX", "HTTPCode_Backend_5XX", "BackendConnectionErrors",
        "SpilloverCount"}


def test_fill_plan_only_zero_fills_statistics_that_are_zero_over_no_data():
    catalog = Catalog({"application": (
        Entry("RequestCount", ("Sum", "Average")),
        Entry("HTTPCode_ELB_5XX_Count", ("Sum", "SampleCount", "Average", "Maximum", "p99")),
        Entry("TargetResponseTime", ("Average", "Sum")),  # not a counter: never filled
    )})
    plan = catalog.fill_plan("application")
    assert plan.traffic.stat == "Sum"
    assert [(s.metric, s.stat) for s in plan.sparse] == [
        ("HTTPCode_ELB_5XX_Count", "Sum"), ("HTTPCode_ELB_5XX_Count", "SampleCount")]
    # Without RequestCount Sum there is no traffic to key off: no plan to fill.
    no_traffic = Catalog({"application": (Entry("RequestCount", ("Average",)),
                                           Entry("HTTPCode_ELB_5XX_Count", ("Sum",)))})
    assert no_traffic.fill_plan("application").traffic is None


def test_target_group_entries_are_not_fetched_per_load_balancer():
    catalog = Catalog({"application": (
        Entry("RequestCount", ("Sum",)),
        Entry("HealthyHostCount", ("Minimum",), dimensions="target_group"),
    )})
    assert [s.metric for s in catalog.specs("application")] == ["RequestCount"]
    assert [s.metric for s in catalog.specs("application", "target_group")] == [
        "HealthyHostCount"]
