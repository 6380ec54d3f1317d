"""Hostname -> load balancer: pure matching, and the paginated listing (Stubber and moto)."""

from __future__ import annotations

import boto3
import pytest
from botocore.stub import Stubber

from lbscrape.errors import AwsError
from lbscrape.model import Owner
from lbscrape.resolve import _Described, describe_all, dimension_from_arn, resolve

ARN = "arn:aws:elasticloadbalancing:us-west-2:123456789012:loadbalancer/{}"


def described(name, kind="app", lb_type="application", dns=None):
    return _Described(ARN.format(f"{kind}/{name}/50dc6c495c0c9188"), name, lb_type,
                      dns or f"{name}-1234.us-west-2.elb.amazonaws.com")


def test_dimension_is_the_arn_tail():
    assert dimension_from_arn(ARN.format("app/my-lb/50dc6c495c0c9188")) == "app/my-lb/50dc6c495c0c9188"
    assert dimension_from_arn(ARN.format("net/my-nlb/c6e77e28c25b2234")) == "net/my-nlb/c6e77e28c25b2234"


def test_match_is_case_insensitive_and_groups_owners_of_one_lb():
    web = described("web")
    nlb = described("db", "net", "network")
    a = Owner("Ingress", "shop", "a", ("WEB-1234.us-west-2.elb.amazonaws.com.",))
    b = Owner("Ingress", "blog", "b", ("web-1234.us-west-2.elb.amazonaws.com",))
    c = Owner("Service", "shop", "db", (nlb.dns_name, "nope.example"))
    res = resolve([a, b, c], [web, nlb])
    assert [(lb.name, lb.type, lb.dimension, lb.owners) for lb in res.load_balancers] == [
        ("web", "application", "app/web/50dc6c495c0c9188", (a, b)),
        ("db", "network", "net/db/50dc6c495c0c9188", (c,)),
    ]
    assert [(u.owner, u.hostname) for u in res.unresolved] == [(c, "nope.example")]


def test_gateway_load_balancers_are_not_scraped():
    gwy = described("gw", "gwy", "gateway")
    res = resolve([Owner("Service", "a", "gw", (gwy.dns_name,))], [gwy])
    assert res.load_balancers == () and res.unresolved == ()


def test_listing_follows_markers_with_400_per_page():
    client = boto3.client("elbv2", region_name="us-west-2")
    lb = {"LoadBalancerArn": ARN.format("app/a/1"), "LoadBalancerName": "a", "Type": "application",
          "DNSName": "a-1.us-west-2.elb.amazonaws.com"}
    with Stubber(client) as stub:
        stub.add_response("describe_load_balancers", {"LoadBalancers": [lb], "NextMarker": "m1"},
                          {"PageSize": 400})
        stub.add_response("describe_load_balancers",
                          {"LoadBalancers": [{**lb, "LoadBalancerName": "b"}]},
                          {"PageSize": 400, "Marker": "m1"})
        assert [d.name for d in describe_all(client)] == ["a", "b"]
        stub.assert_no_pending_responses()


def test_listing_errors_are_one_line_aws_errors():
    client = boto3.client("elbv2", region_name="us-west-2")
    with Stubber(client) as stub:
        stub.add_client_error("describe_load_balancers", "AccessDenied", "not authorized to "
                              "perform: elasticloadbalancing:DescribeLoadBalancers")
        with pytest.raises(AwsError, match="DescribeLoadBalancers failed: AccessDenied"):
            describe_all(client)


def test_listing_against_moto(aws):
    for i in range(5):
        aws.create_lb(f"lb-{i}")
    client = boto3.client("elbv2", region_name="us-east-1")
    assert sorted(d.name for d in describe_all(client)) == [f"lb-{i}" for i in range(5)]
