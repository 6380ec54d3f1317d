"""The AWS stand-in of the scale tests and benchmark answers as moto does for the same
calls, through the same boto3 clients; and lbscrape's GetMetricData decoding (its own,
for JSON answers) gives what botocore's parser gives."""

from __future__ import annotations

import time

import boto3
import pytest

from lbscrape.aws import cloudwatch, resolve
from lbscrape.aws import session as aws_session
from lbscrape.core.catalog import DEFAULT
from lbscrape.core.model import Owner, Window
from tests.awsstandin import AwsStandIn, Lb, Tg, value

LB_KEYS = {"LoadBalancerArn", "DNSName", "CanonicalHostedZoneId", "CreatedTime",
           "LoadBalancerName", "Scheme", "VpcId", "State", "Type", "AvailabilityZones",
           "SecurityGroups", "IpAddressType"}
SAME_LB = ("LoadBalancerArn", "DNSName", "LoadBalancerName", "Scheme", "State", "Type",
           "IpAddressType", "SecurityGroups")
SAME_TG = ("TargetGroupArn", "TargetGroupName", "Protocol", "Port", "LoadBalancerArns",
           "TargetType", "HealthCheckPath", "Matcher", "HealthCheckEnabled")
SPECS = tuple(s for s in DEFAULT.specs("application") if s.metric in ("RequestCount",
                                                                       "TargetResponseTime"))
TG_SPECS = tuple(s for s in DEFAULT.specs("application", "target_group")
                 if s.metric == "RequestCount")


@pytest.fixture
def both(aws, monkeypatch):
    """The same small world in moto and in the stand-in, and an elbv2 client of each."""
    moto_lbs = []
    for i in range(3):
        lb = aws.create_lb(f"k8s-shop{i}-web-0123456789",
                           tags={"ingress.k8s.aws/stack": f"shop{i}/web"})
        tgs = [aws.create_tg(lb, f"k8s-shop{i}-tg{j}", port=80 + j) for j in range(2)]
        moto_lbs.append((lb, tgs))
    standin = AwsStandIn([
        Lb(lb.name, lb.arn, lb.dns_name,
           target_groups=tuple(Tg(t.name, t.arn, 80 + j) for j, t in enumerate(tgs)),
           tags=(("ingress.k8s.aws/stack", f"shop{i}/web"),))
        for i, (lb, tgs) in enumerate(moto_lbs)])
    standin.start()
    moto_elbv2 = boto3.client("elbv2", region_name="us-east-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL", standin.url)
    standin_elbv2 = boto3.client("elbv2", region_name="us-east-1")
    yield moto_lbs, moto_elbv2, standin, standin_elbv2
    standin.stop()


def pages(client, operation, key, **kwargs):
    return [[item for item in page[key]] for page in client.get_paginator(operation).paginate(
        PaginationConfig={"PageSize": 2}, **kwargs)]


def test_describe_load_balancers_pages_like_moto(both):
    _, moto, _, standin = both
    got, want = pages(standin, "describe_load_balancers", "LoadBalancers"), \
        pages(moto, "describe_load_balancers", "LoadBalancers")
    assert [len(p) for p in got] == [len(p) for p in want] == [2, 1]
    for g, w in zip(sum(got, []), sum(want, []), strict=True):
        assert set(g) == set(w) == LB_KEYS
        assert {k: g[k] for k in SAME_LB} == {k: w[k] for k in SAME_LB}
    named = standin.describe_load_balancers(Names=[want[0][0]["LoadBalancerName"]])
    assert [lb["LoadBalancerArn"] for lb in named["LoadBalancers"]] == \
        [want[0][0]["LoadBalancerArn"]]
    for client in (moto, standin):
        with pytest.raises(client.exceptions.LoadBalancerNotFoundException):
            client.describe_load_balancers(Names=["k8s-nobody-here"])


def test_describe_target_groups_and_tags_like_moto(both):
    _, moto, _, standin = both
    got = sum(pages(standin, "describe_target_groups", "TargetGroups"), [])
    want = sum(pages(moto, "describe_target_groups", "TargetGroups"), [])
    assert len(got) == len(want) == 6
    by_arn = {w["TargetGroupArn"]: w for w in want}
    for g in got:
        w = by_arn[g["TargetGroupArn"]]
        assert set(g) == set(w)
        assert {k: g[k] for k in SAME_TG} == {k: w[k] for k in SAME_TG}
    arns = [w["LoadBalancerArns"][0] for w in want][::2]
    assert standin.describe_tags(ResourceArns=arns)["TagDescriptions"] == \
        moto.describe_tags(ResourceArns=arns)["TagDescriptions"]


def test_lbscrape_resolves_the_same_load_balancers_from_both(both):
    moto_lbs, moto, _, standin = both
    owners = [Owner("Ingress", f"shop{i}", "web", (lb.dns_name,), "application")
              for i, (lb, _) in enumerate(moto_lbs)]
    def unbound():
        return {}

    results = []
    for client in (moto, standin):
        res = resolve.find(owners, client, client, "c")
        results.append(resolve.find_target_groups(res.load_balancers, client, unbound))
    assert results[0] == results[1]
    assert sum(len(lb.target_groups) for lb in results[0]) == 6


def _targets(moto_lbs, window):
    targets = []
    for lb, tgs in moto_lbs:
        targets.append(cloudwatch.FetchTarget(lb.dimension, (("LoadBalancer", lb.dimension),),
                                              window, SPECS))
        targets += [cloudwatch.FetchTarget(
            lb.dimension, (("TargetGroup", tg.dimension), ("LoadBalancer", lb.dimension)),
            window, TG_SPECS, tg.dimension) for tg in tgs]
    return targets


def test_get_metric_data_answers_like_moto_through_either_parser(both, aws, monkeypatch):
    moto_lbs, _, standin, _ = both
    end = (int(time.time()) - 300) // 60 * 60
    window = Window(end - 600, end, 60)
    minutes = range(window.start, window.end, 60)
    for lb, tgs in moto_lbs:
        for spec in SPECS:
            aws.put(lb, spec.metric, [(t, value(spec.metric, t)) for t in minutes])
        for tg in tgs:
            aws.put_tg(lb, tg, "RequestCount", [(t, value("RequestCount", t)) for t in minutes])
    calls = cloudwatch.plan_calls(_targets(moto_lbs, window), max_queries=5)
    assert len(calls) == 3

    def clients():
        s = aws_session.session("us-east-1")
        return boto3.client("cloudwatch", region_name="us-east-1"), \
            aws_session.cloudwatch_client(s, 4)

    moto_plain, moto_fast = clients()
    monkeypatch.setenv("AWS_ENDPOINT_URL", standin.url)
    standin_plain, standin_fast = clients()
    fetched = [cloudwatch.fetch(c, calls) for c in (moto_plain, moto_fast, standin_plain,
                                                   standin_fast)]
    assert fetched[0].failed == {} and len(fetched[0].samples) == 3 * len(SPECS)
    assert all(len(v) == 10 for v in fetched[0].samples.values())
    assert len(fetched[0].tg_samples) == 6
    for other in fetched[1:]:
        assert (other.samples, other.tg_samples, other.failed) == \
            (fetched[0].samples, fetched[0].tg_samples, fetched[0].failed)
    # The raw answers agree too, but for the Label (moto's is "<metric> <stat>").
    raw = [c.get_metric_data(**calls[0].request())["MetricDataResults"]
           for c in (moto_plain, standin_plain)]
    for r in raw:
        for x in r:
            x.pop("Label")
    assert raw[0] == raw[1]


def test_the_fast_decoding_keeps_botocore_errors_and_metadata(both, monkeypatch):
    _, _, standin, _ = both
    standin.refuse = lambda call: (400, "InvalidParameterCombination", "bad mix")
    monkeypatch.setenv("AWS_ENDPOINT_URL", standin.url)
    client = aws_session.cloudwatch_client(aws_session.session("us-east-1"), 2)
    call = cloudwatch.plan_calls([cloudwatch.FetchTarget(
        "app/x/1", (("LoadBalancer", "app/x/1"),), Window(0, 600, 60), SPECS)])[0]
    with pytest.raises(client.exceptions.ClientError) as e:
        client.get_metric_data(**call.request())
    assert e.value.response["Error"]["Code"] == "InvalidParameterCombination"
    standin.refuse = None
    resp = client.get_metric_data(**call.request())
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert [r["Timestamps"] for r in resp["MetricDataResults"]] == [list(range(0, 600, 60))] * 2
