"""The label contract of one load balancer (lb_labels)."""

from __future__ import annotations

from lbscrape.core.model import LoadBalancer, Owner, Sample, Series
from lbscrape.prom import openmetrics
from lbscrape.prom.series import lb_labels


def lb(*owners, lb_type="application"):
    return LoadBalancer("arn:aws:elasticloadbalancing:us-east-1:1:loadbalancer/app/x/1", "x",
                        lb_type, "app/x/1", owners)


def labels(*owners):
    return lb_labels(lb(*owners), "c", "us-east-1", [("env", "prod")])


BASE = {"load_balancer_name": "x", "load_balancer": "app/x/1", "cluster": "c",
        "region": "us-east-1", "env": "prod"}


def test_one_owner_names_it():
    assert labels(Owner("Ingress", "shop", "web", ("h",))) == {
        **BASE, "namespace": "shop", "ingress": "web"}
    assert labels(Owner("Service", "shop", "db", ("h",), "classic")) == {
        **BASE, "namespace": "shop", "service": "db"}


def test_an_ingress_group_is_named_by_the_group_whatever_its_members():
    a = Owner("Ingress", "shop", "web", ("h",), "application", group="public")
    b = Owner("Ingress", "shop", "api", ("h",), "application", group="public")
    c = Owner("Ingress", "blog", "web", ("h",), "application", group="public")
    expected = {**BASE, "ingress_group": "public"}
    # The same label set with one member, two in one namespace, three in two: members
    # coming and going never start new series.
    assert labels(a) == labels(a, b) == labels(a, b, c) == labels(c) == expected


def test_several_owners_without_a_group_keep_only_what_they_agree_on():
    a = Owner("Ingress", "shop", "web", ("h",))
    assert labels(a, Owner("Ingress", "shop", "api", ("h",))) == {**BASE, "namespace": "shop"}
    assert labels(a, Owner("Ingress", "blog", "web", ("h",))) == {**BASE, "ingress": "web"}
    # Members of different groups matching one load balancer: no group label either.
    g = Owner("Ingress", "shop", "web", ("h",), "application", group="g")
    h = Owner("Ingress", "shop", "web", ("h",), "application", group="h")
    assert labels(g, h) == {**BASE, "namespace": "shop", "ingress": "web"}


def test_openmetrics_lines_for_whole_seconds_and_for_the_rest():
    labels = (("__name__", "alb_x_sum"), ("a", 'q"%d\\né'))
    usual = Series(labels, (Sample(60_000, 1.0), Sample(120_000, 1e-9), Sample(180_000, 3)))
    assert openmetrics.encode(usual).decode().splitlines() == [
        'alb_x_sum{a="q\\"%d\\\\né"} 1.0 60', 'alb_x_sum{a="q\\"%d\\\\né"} 1e-09 120',
        'alb_x_sum{a="q\\"%d\\\\né"} 3 180']
    rest = Series(labels[:1], (Sample(1_500, float("nan")), Sample(2_000, float("inf")),
                               Sample(3_000, -float("inf")), Sample(4_250, 2.5)))
    assert openmetrics.encode(rest) == (b"alb_x_sum{} NaN 1.500\nalb_x_sum{} +Inf 2\n"
                                        b"alb_x_sum{} -Inf 3\nalb_x_sum{} 2.5 4.250\n")
    assert openmetrics.encode(Series(labels, ())) == b""
