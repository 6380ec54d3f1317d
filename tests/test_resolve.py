"""Hostname -> load balancer: pure matching, and the paginated listing (Stubber and moto)."""

from __future__ import annotations

import boto3
import pytest
from botocore.stub import Stubber

from lbscrape.aws.resolve import (
    _Described,
    describe_all,
    describe_classic,
    describe_tags,
    dimension_from_arn,
    explain,
    find,
    resolve,
)
from lbscrape.core.errors import AwsError
from lbscrape.core.model import Owner, Unresolved

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


# --- classic ELBs, and the fallbacks when the hostname matches nothing ----------------

def classic(name, dns=None):
    return _Described("", name, "classic", dns or f"{name}-99.us-west-2.elb.amazonaws.com")


def owner(kind, ns, name, host="stale-1.us-west-2.elb.amazonaws.com", **kw):
    return Owner(kind, ns, name, (host,), **kw)


def test_classic_elb_is_keyed_apart_from_elbv2_and_named_by_its_name():
    clb = classic("a1b2c3")
    svc = owner("Service", "legacy", "web", clb.dns_name.upper(), lb_type="classic")
    (lb,) = resolve([svc], [clb]).load_balancers
    assert (lb.arn, lb.name, lb.type, lb.dimension, lb.key) == (
        None, "a1b2c3", "classic", "a1b2c3", "elb/a1b2c3")


def test_dns_first_then_group_member_then_name_then_tags():
    web, named, nlb = described("web"), described("named-alb"), described("db", "net", "network")
    clb = classic("a0123")
    a = owner("Ingress", "shop", "a", web.dns_name, lb_type="application", group="g")
    b = owner("Ingress", "blog", "b", lb_type="application", group="g")  # stale hostname
    c = owner("Ingress", "shop", "c", lb_type="application", lb_name="named-alb")
    d = owner("Service", "shop", "db", lb_type="network")
    e = owner("Service", "legacy", "e", lb_type="classic")
    f = owner("Service", "shop", "lost", lb_type="network")
    tags = {nlb.key: {"service.k8s.aws/stack": "shop/db"},
            clb.key: {"kubernetes.io/service-name": "legacy/e"},
            named.key: {"ingress.k8s.aws/stack": "shop/c"}}
    res = resolve([a, b, c, d, e, f], [web, named, nlb, clb], tags)
    assert [(lb.name, lb.owners) for lb in res.load_balancers] == [
        ("web", (a, b)), ("named-alb", (c,)), ("db", (d,)), ("a0123", (e,))]
    assert res.matched_by == {a: "dns", b: "group", c: "name", d: "tag", e: "tag"}
    assert res.unresolved == (Unresolved(f, f.hostnames[0]),)
    # Without tags (the first pass), the tag matches are unresolved instead.
    res = resolve([a, b, c, d, e, f], [web, named, nlb, clb])
    assert [u.owner for u in res.unresolved] == [d, e, f]


def test_a_name_is_looked_up_among_its_own_api_only():
    alb = described("same")
    svc = owner("Service", "legacy", "x", lb_type="classic", lb_name="same")
    assert resolve([svc], [alb]).load_balancers == ()
    assert resolve([svc], [alb, classic("same")]).load_balancers[0].type == "classic"


def test_tags_must_name_this_owner():
    alb = described("web")
    implicit = owner("Ingress", "shop", "web", lb_type="application")
    grouped = owner("Ingress", "shop", "web", lb_type="application", group="shared")
    svc = owner("Service", "shop", "web", lb_type="network")
    assert resolve([implicit], [alb], {alb.key: {"ingress.k8s.aws/stack": "shop/web"}}
                   ).matched_by == {implicit: "tag"}
    # A group's ALB is tagged with the group name, not the Ingress's namespace/name.
    assert resolve([grouped], [alb], {alb.key: {"ingress.k8s.aws/stack": "shop/web"}}
                   ).load_balancers == ()
    assert resolve([grouped], [alb], {alb.key: {"ingress.k8s.aws/stack": "shared"}}
                   ).matched_by == {grouped: "tag"}
    # An Ingress's tag key is not a Service's.
    assert resolve([svc], [alb], {alb.key: {"ingress.k8s.aws/stack": "shop/web"}}
                   ).load_balancers == ()


def test_several_tag_matches_are_skipped_unless_one_is_tagged_for_this_cluster():
    one, two = described("k8s-shop-web-1"), described("k8s-shop-web-2")
    ing = owner("Ingress", "shop", "web", lb_type="application")
    stack = {"ingress.k8s.aws/stack": "shop/web"}
    tags = {one.key: {**stack, "elbv2.k8s.aws/cluster": "prod"},
            two.key: {**stack, "elbv2.k8s.aws/cluster": "staging"}}
    res = resolve([ing], [one, two], tags, cluster="dev")
    assert res.load_balancers == ()
    (u,) = res.unresolved
    assert u.ambiguous == ("k8s-shop-web-1", "k8s-shop-web-2")
    assert explain(u, "us-west-2") == (
        "no load balancer in us-west-2 has DNS name stale-1.us-west-2.elb.amazonaws.com, and 2 "
        "carry its controller's tags (k8s-shop-web-1, k8s-shop-web-2); not guessing (one "
        "whose elbv2.k8s.aws/cluster tag equals --cluster would win)")
    assert [lb.name for lb in resolve([ing], [one, two], tags, "staging").load_balancers] == [
        "k8s-shop-web-2"]
    # The in-tree controller's cluster tag counts too.
    svc = owner("Service", "legacy", "web", lb_type="classic")
    c1, c2 = classic("a1"), classic("a2")
    tags = {c1.key: {"kubernetes.io/service-name": "legacy/web",
                     "kubernetes.io/cluster/prod": "owned"},
            c2.key: {"kubernetes.io/service-name": "legacy/web"}}
    assert [lb.name for lb in resolve([svc], [c1, c2], tags, "prod").load_balancers] == ["a1"]


def test_classic_listing_follows_markers_with_400_per_page():
    client = boto3.client("elb", region_name="us-west-2")
    lb = {"LoadBalancerName": "a", "DNSName": "a-1.us-west-2.elb.amazonaws.com"}
    with Stubber(client) as stub:
        stub.add_response("describe_load_balancers",
                          {"LoadBalancerDescriptions": [lb], "NextMarker": "m1"}, {"PageSize": 400})
        stub.add_response("describe_load_balancers",
                          {"LoadBalancerDescriptions": [{**lb, "LoadBalancerName": "b"}]},
                          {"PageSize": 400, "Marker": "m1"})
        assert [(d.name, d.type, d.key) for d in describe_classic(client)] == [
            ("a", "classic", "elb/a"), ("b", "classic", "elb/b")]
        stub.assert_no_pending_responses()


def test_tags_are_described_20_at_a_time():
    elbv2 = boto3.client("elbv2", region_name="us-west-2")
    elb = boto3.client("elb", region_name="us-west-2")
    v2 = [described(f"lb{i}") for i in range(45)]
    clbs = [classic(f"c{i}") for i in range(21)]
    with Stubber(elbv2) as s2, Stubber(elb) as s1:
        for chunk in (v2[:20], v2[20:40], v2[40:]):
            s2.add_response("describe_tags", {"TagDescriptions": [
                {"ResourceArn": d.arn, "Tags": [{"Key": "n", "Value": d.name}]} for d in chunk]},
                {"ResourceArns": [d.arn for d in chunk]})
        for chunk in (clbs[:20], clbs[20:]):
            s1.add_response("describe_tags", {"TagDescriptions": [
                {"LoadBalancerName": d.name, "Tags": [{"Key": "n", "Value": d.name}]}
                for d in chunk]}, {"LoadBalancerNames": [d.name for d in chunk]})
        tags = describe_tags(elbv2, elb, v2 + clbs)
        s2.assert_no_pending_responses()
        s1.assert_no_pending_responses()
    assert tags == {d.key: {"n": d.name} for d in v2 + clbs}


def _listing(lbs):
    return {"LoadBalancers": [{"LoadBalancerArn": d.arn, "LoadBalancerName": d.name,
                               "Type": d.type, "DNSName": d.dns_name} for d in lbs]}


def test_find_costs_one_listing_when_every_hostname_matches():
    # Stubbers refuse any call not queued: no classic listing, no DescribeTags.
    elbv2 = boto3.client("elbv2", region_name="us-west-2")
    elb = boto3.client("elb", region_name="us-west-2")
    web = described("web")
    ing = owner("Ingress", "shop", "web", web.dns_name, lb_type="application")
    with Stubber(elbv2) as s2, Stubber(elb):
        s2.add_response("describe_load_balancers", _listing([web]), {"PageSize": 400})
        res = find([ing, Owner("Ingress", "shop", "pending", ())], elbv2, elb)
        s2.assert_no_pending_responses()
    assert res.matched_by == {ing: "dns"} and res.unresolved == ()


def test_find_describes_tags_only_of_unclaimed_load_balancers_of_the_right_api():
    elbv2 = boto3.client("elbv2", region_name="us-west-2")
    elb = boto3.client("elb", region_name="us-west-2")
    web, db, gw = described("web"), described("db", "net", "network"), described("gw", "gwy",
                                                                                 "gateway")
    ing = owner("Ingress", "shop", "web", web.dns_name, lb_type="application")
    svc = owner("Service", "shop", "db", lb_type="network")
    with Stubber(elbv2) as s2, Stubber(elb):
        s2.add_response("describe_load_balancers", _listing([web, db, gw]), {"PageSize": 400})
        s2.add_response("describe_tags", {"TagDescriptions": [{"ResourceArn": db.arn, "Tags": [
            {"Key": "service.k8s.aws/stack", "Value": "shop/db"}]}]}, {"ResourceArns": [db.arn]})
        res = find([ing, svc], elbv2, elb)
        s2.assert_no_pending_responses()
    assert res.matched_by == {ing: "dns", svc: "tag"}


def test_find_keeps_dns_matches_when_tags_cannot_be_read(caplog):
    elbv2 = boto3.client("elbv2", region_name="us-west-2")
    elb = boto3.client("elb", region_name="us-west-2")
    web, db = described("web"), described("db", "net", "network")
    ing = owner("Ingress", "shop", "web", web.dns_name, lb_type="application")
    svc = owner("Service", "shop", "db", lb_type="network")
    with Stubber(elbv2) as s2, Stubber(elb):
        s2.add_response("describe_load_balancers", _listing([web, db]), {"PageSize": 400})
        s2.add_client_error("describe_tags", "AccessDenied", "not authorized to perform: "
                            "elasticloadbalancing:DescribeTags")
        res = find([ing, svc], elbv2, elb)
    assert res.matched_by == {ing: "dns"}
    assert [u.owner for u in res.unresolved] == [svc]
    assert "ELBv2 DescribeTags failed: AccessDenied" in caplog.text


def test_find_against_moto_classic_and_tags(aws):
    # moto's classic DNS name is "<name>.<region>.elb.amazonaws.com" (no "-<id>" as on AWS).
    clb = aws.create_classic("a0123456789abcdef", {"kubernetes.io/service-name": "legacy/b"})
    assert clb.dns_name == "a0123456789abcdef.us-east-1.elb.amazonaws.com"
    other = aws.create_classic("a99")
    alb = aws.create_lb("k8s-shop-web-0123456789", tags={"ingress.k8s.aws/stack": "shop/web"})
    a = owner("Service", "legacy", "a", other.dns_name, lb_type="classic")
    b = owner("Service", "legacy", "b", "gone.us-east-1.elb.amazonaws.com", lb_type="classic")
    c = owner("Ingress", "shop", "web", "gone-2.us-east-1.elb.amazonaws.com",
              lb_type="application")
    res = find([a, b, c], boto3.client("elbv2", region_name="us-east-1"),
               boto3.client("elb", region_name="us-east-1"))
    assert {lb.key: (lb.owners, res.matched_by[lb.owners[0]]) for lb in res.load_balancers} == {
        "elb/a99": ((a,), "dns"), "elb/a0123456789abcdef": ((b,), "tag"),
        alb.dimension: ((c,), "tag")}
