"""Find the Ingresses and Services whose load balancers the AWS Load Balancer Controller made.

Knows Kubernetes conventions (ingress classes, annotations, status), nothing of AWS.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from kubernetes import client as k8s

from lbscrape.kube import call_api
from lbscrape.model import Owner

log = logging.getLogger(__name__)

ALB_CONTROLLER = "ingress.k8s.aws/alb"
LEGACY_CLASS_ANNOTATION = "kubernetes.io/ingress.class"
DEFAULT_CLASS_ANNOTATION = "ingressclass.kubernetes.io/is-default-class"
NLB_CLASS = "service.k8s.aws/nlb"
NLB_TYPE_ANNOTATION = "service.beta.kubernetes.io/aws-load-balancer-type"
NLB_TYPES = frozenset({"external", "nlb-ip", "nlb"})
PAGE_SIZE = 500


def discover(api: k8s.ApiClient) -> list[Owner]:
    """All LB-owning Ingresses and Services that have a hostname, sorted by kind/ns/name."""
    return [o for o in discover_all(api) if o.hostnames]


def discover_all(api: k8s.ApiClient) -> list[Owner]:
    """All LB-owning Ingresses and Services, with or without a hostname yet."""
    net = k8s.NetworkingV1Api(api)
    core = k8s.CoreV1Api(api)
    classes = list(_paged(net.list_ingress_class, "list ingressclasses.networking.k8s.io"))
    alb_classes = {
        c.metadata.name for c in classes if c.spec and c.spec.controller == ALB_CONTROLLER
    }
    default_alb = any(
        c.metadata.name in alb_classes
        and (c.metadata.annotations or {}).get(DEFAULT_CLASS_ANNOTATION) == "true"
        for c in classes
    )
    owners = []
    for ing in _paged(net.list_ingress_for_all_namespaces, "list ingresses.networking.k8s.io"):
        if is_alb_ingress(ing.spec.ingress_class_name if ing.spec else None,
                          ing.metadata.annotations or {}, alb_classes, default_alb):
            owners.append(_owner("Ingress", ing))
    for svc in _paged(core.list_service_for_all_namespaces, "list services"):
        spec = svc.spec
        if spec and spec.type == "LoadBalancer" and is_nlb_service(
            spec.load_balancer_class, svc.metadata.annotations or {}
        ):
            owners.append(_owner("Service", svc))
    for o in owners:
        if not o.hostnames:
            log.debug("%s has no load balancer hostname yet; skipped", o)
    return sorted(owners, key=lambda o: (o.kind, o.namespace, o.name))


def is_alb_ingress(class_name: str | None, annotations: Mapping[str, str],
                   alb_classes: set[str], default_alb: bool) -> bool:
    if class_name is not None:
        return class_name in alb_classes
    legacy = annotations.get(LEGACY_CLASS_ANNOTATION)
    if legacy is not None:
        return legacy == "alb"
    return default_alb


def is_nlb_service(lb_class: str | None, annotations: Mapping[str, str]) -> bool:
    if lb_class is not None:
        return lb_class == NLB_CLASS
    return annotations.get(NLB_TYPE_ANNOTATION) in NLB_TYPES


def _owner(kind: Any, obj: Any) -> Owner:
    ingress = (obj.status and obj.status.load_balancer and obj.status.load_balancer.ingress) or []
    hostnames = tuple(dict.fromkeys(i.hostname for i in ingress if i.hostname))
    md = obj.metadata
    return Owner(kind, md.namespace, md.name, hostnames, uid=md.uid or "",
                 labels=dict(md.labels or {}), annotations=dict(md.annotations or {}))


def _paged(list_fn: Callable[..., Any], what: str) -> Iterator[Any]:
    token = None
    while True:
        kwargs: dict[str, Any] = {"limit": PAGE_SIZE}
        if token:
            kwargs["_continue"] = token
        page = call_api(what, list_fn, **kwargs)
        yield from page.items
        token = page.metadata._continue if page.metadata else None
        if not token:
            return
