"""Discovery against the fake API server through the real kubernetes client."""

from __future__ import annotations

from lbscrape.core.model import Owner
from lbscrape.kube import discovery
from lbscrape.kube.client import make_api_client
from tests import world

NET = "networking.k8s.io/v1"
NLB_NAME = "service.beta.kubernetes.io/aws-load-balancer-name"


def discover(kube):
    api, _ = make_api_client(kube.kubeconfig_path, None)
    return discovery.discover(api)


def names(owners):
    return [(o.kind, o.namespace, o.name) for o in owners]


def test_ingress_classes_annotations_and_default_class(kube):
    kube.put(NET, "ingressclasses", world.ingress_class("alb"))
    kube.put(NET, "ingressclasses", world.ingress_class("public", "ingress.k8s.aws/alb"))
    kube.put(NET, "ingressclasses", world.ingress_class("nginx", "k8s.io/ingress-nginx"))
    kube.put(NET, "ingresses", world.ingress("a", "by-class", "h1", class_name="public"))
    kube.put(NET, "ingresses", world.ingress("a", "nginx", "h2", class_name="nginx"))
    kube.put(NET, "ingresses", world.ingress("a", "legacy", "h3", class_name=None,
                                             annotations={"kubernetes.io/ingress.class": "alb"}))
    kube.put(NET, "ingresses", world.ingress("a", "legacy-nginx", "h4", class_name=None,
                                             annotations={"kubernetes.io/ingress.class": "nginx"}))
    kube.put(NET, "ingresses", world.ingress("a", "no-class", "h5", class_name=None))
    assert names(discover(kube)) == [("Ingress", "a", "by-class"), ("Ingress", "a", "legacy")]
    default = world.ingress_class("alb")
    default["metadata"]["annotations"] = {"ingressclass.kubernetes.io/is-default-class": "true"}
    kube.put(NET, "ingressclasses", default)
    assert ("Ingress", "a", "no-class") in names(discover(kube))


def test_services_by_class_and_annotation(kube):
    ann = "service.beta.kubernetes.io/aws-load-balancer-type"
    for name, kwargs in {
        "class": {"lb_class": "service.k8s.aws/nlb"},
        "external": {"annotations": {ann: "external"}},
        "nlb-ip": {"annotations": {ann: "nlb-ip"}},
        "in-tree-nlb": {"annotations": {ann: "nlb"}},
        "classic": {},
        "classic-other-type": {"annotations": {ann: "elb"}},
        "other-class": {"lb_class": "example.com/lb", "annotations": {ann: "external"}},
        "other-class-no-annotation": {"lb_class": "example.com/lb"},
        "nodeport": {"annotations": {ann: "external"}, "svc_type": "NodePort"},
    }.items():
        kube.put("v1", "services", world.service("s", name, f"{name}.example", **kwargs))
    assert sorted((o.name, o.lb_type) for o in discover(kube)) == [
        ("class", "network"), ("classic", "classic"), ("classic-other-type", "classic"),
        ("external", "network"), ("in-tree-nlb", "network"), ("nlb-ip", "network")]


def test_group_and_load_balancer_names(kube):
    kube.put(NET, "ingressclasses", world.ingress_class())
    kube.put(NET, "ingresses", world.ingress("a", "grouped", "h1", annotations={
        "alb.ingress.kubernetes.io/group.name": "shared",
        "alb.ingress.kubernetes.io/load-balancer-name": "shared-alb"}))
    kube.put(NET, "ingresses", world.ingress("a", "alone", "h2"))
    kube.put("v1", "services", world.service("a", "lbc", "h3", lb_class="service.k8s.aws/nlb",
                                             annotations={NLB_NAME: "my-nlb"}))
    # The in-tree controller ignores the name annotation: its name comes from the UID.
    kube.put("v1", "services", world.service("a", "classic", "h4", annotations={NLB_NAME: "x"}))
    uid = kube.get("v1", "services", "a", "classic")["metadata"]["uid"]
    got = {o.name: (o.group, o.lb_name) for o in discover(kube)}
    assert got == {"grouped": ("shared", "shared-alb"), "alone": (None, None),
                   "lbc": (None, "my-nlb"), "classic": (None, ("a" + uid.replace("-", ""))[:32])}
    assert len(got["classic"][1]) == 32


def test_in_tree_name_is_the_cloud_providers_default():
    # kubernetes/cloud-provider cloud.go DefaultLoadBalancerName, for a real-looking UID.
    assert discovery.in_tree_name("9d0f2b4c-1e2f-4a5b-8c7d-0123456789ab") == \
        "a9d0f2b4c1e2f4a5b8c7d0123456789a"
    assert discovery.in_tree_name("") == ""


def test_hostnames_deduplicated_and_pending_objects_skipped(kube):
    kube.put(NET, "ingressclasses", world.ingress_class())
    ing = world.ingress("a", "two", "H1.example")
    ing["status"]["loadBalancer"]["ingress"] += [{"hostname": "H1.example"}, {"ip": "10.0.0.1"},
                                                 {"hostname": "h2.example"}]
    kube.put(NET, "ingresses", ing)
    kube.put(NET, "ingresses", world.ingress("a", "pending", None))
    no_status = world.ingress("a", "no-status", None)
    del no_status["status"]
    kube.put(NET, "ingresses", no_status)
    assert discover(kube) == [Owner("Ingress", "a", "two", ("H1.example", "h2.example"),
                                    "application")]


def test_lists_are_paged(kube, monkeypatch):
    monkeypatch.setattr(discovery, "PAGE_SIZE", 7)
    for i in range(20):
        kube.put("v1", "services", world.service(f"ns{i:02}", "svc", f"h{i}",
                                                 lb_class="service.k8s.aws/nlb"))
    owners = discover(kube)
    assert [o.namespace for o in owners] == [f"ns{i:02}" for i in range(20)]
    lists = [s for s in kube.seen if s.resource == "services" and s.verb == "list"]
    assert len(lists) == 3
