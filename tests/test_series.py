"""The label contract of one load balancer (lb_labels)."""

from __future__ import annotations

from lbscrape.core.model import LoadBalancer, Owner
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
