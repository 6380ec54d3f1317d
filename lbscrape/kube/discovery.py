"""Find the Ingresses and Services that own AWS load balancers: ALBs and NLBs of the AWS
Load Balancer Controller, and classic ELBs and NLBs of the in-tree (cloud-provider-aws)
Service controller.

Knows Kubernetes conventions (ingress classes, annotations, status, the in-tree naming
rule), nothing of the AWS API.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from kubernetes import client as k8s

from lbscrape.core.errors import KubeError
from lbscrape.core.model import Binding, LbType, Owner
from lbscrape.kube.client import call_api

log = logging.getLogger(__name__)

ALB_CONTROLLER = "ingress.k8s.aws/alb"
LEGACY_CLASS_ANNOTATION = "kubernetes.io/ingress.class"
DEFAULT_CLASS_ANNOTATION = "ingressclass.kubernetes.io/is-default-class"
GROUP_ANNOTATION = "alb.ingress.kubernetes.io/group.name"
ALB_NAME_ANNOTATION = "alb.ingress.kubernetes.io/load-balancer-name"
NLB_CLASS = "service.k8s.aws/nlb"
NLB_TYPE_ANNOTATION = "service.beta.kubernetes.io/aws-load-balancer-type"
NLB_NAME_ANNOTATION = "service.beta.kubernetes.io/aws-load-balancer-name"
LBC_NLB_TYPES = frozenset({"external", "nlb-ip"})  # the AWS Load Balancer Controller's
IN_TREE_NLB_TYPE = "nlb"  # the in-tree controller's NLB; any other value is a classic ELB
PAGE_SIZE = 500
TGB_GROUP, TGB_VERSION, TGB_PLURAL = "elbv2.k8s.aws", "v1beta1", "targetgroupbindings"


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
        annotations = ing.metadata.annotations or {}
        if is_alb_ingress(ing.spec.ingress_class_name if ing.spec else None,
                          annotations, alb_classes, default_alb):
            owners.append(_owner("Ingress", ing, "application",
                                 group=annotations.get(GROUP_ANNOTATION) or None,
                                 lb_name=annotations.get(ALB_NAME_ANNOTATION) or None))
    for svc in _paged(core.list_service_for_all_namespaces, "list services"):
        spec = svc.spec
        if not spec or spec.type != "LoadBalancer":
            continue
        annotations = svc.metadata.annotations or {}
        served = service_lb(spec.load_balancer_class, annotations)
        if served is None:
            continue
        lb_type, in_tree = served
        lb_name = (in_tree_name(svc.metadata.uid or "") if in_tree
                   else annotations.get(NLB_NAME_ANNOTATION)) or None
        owners.append(_owner("Service", svc, lb_type, lb_name=lb_name))
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


def service_lb(lb_class: str | None, annotations: Mapping[str, str]
               ) -> tuple[LbType, bool] | None:
    """(load balancer type, made by the in-tree controller?) of a type=LoadBalancer
    Service, or None when neither AWS controller serves it.

    A Service with a loadBalancerClass belongs to that class's controller only (the
    in-tree one skips it). Without one, the aws-load-balancer-type annotation decides:
    `external`/`nlb-ip` are the AWS Load Balancer Controller's NLBs, `nlb` the in-tree
    controller's NLB, anything else (or none) the in-tree controller's classic ELB.
    """
    if lb_class is not None:
        return ("network", False) if lb_class == NLB_CLASS else None
    lb_type = annotations.get(NLB_TYPE_ANNOTATION)
    if lb_type in LBC_NLB_TYPES:
        return "network", False
    return ("network" if lb_type == IN_TREE_NLB_TYPE else "classic"), True


def in_tree_name(uid: str) -> str:
    """The name the in-tree controller gives a Service's load balancer (cloud-provider's
    DefaultLoadBalancerName): "a" + the UID without dashes, at most 32 characters."""
    return ("a" + uid.replace("-", ""))[:32] if uid else ""


def _owner(kind: Any, obj: Any, lb_type: LbType, group: str | None = None,
           lb_name: str | None = None) -> Owner:
    ingress = (obj.status and obj.status.load_balancer and obj.status.load_balancer.ingress) or []
    hostnames = tuple(dict.fromkeys(i.hostname for i in ingress if i.hostname))
    md = obj.metadata
    return Owner(kind, md.namespace, md.name, hostnames, lb_type, group, lb_name,
                 uid=md.uid or "", labels=dict(md.labels or {}),
                 annotations=dict(md.annotations or {}))


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


def target_group_bindings(api: k8s.ApiClient) -> dict[str, Binding]:
    """TargetGroupBindings of all namespaces, by target group ARN: the Service each
    target group sends to. A cluster without the CRD (404) has none; that is normal (no
    AWS Load Balancer Controller, or an old one), so it is only a debug line. A target
    group that several bindings name with different Services gets none of them: any one
    would label the others' traffic wrongly."""
    custom = k8s.CustomObjectsApi(api)
    what = f"list {TGB_PLURAL}.{TGB_GROUP}"
    found: dict[str, set[Binding]] = {}
    token = None
    while True:
        kwargs: dict[str, Any] = {"limit": PAGE_SIZE}
        if token:
            kwargs["_continue"] = token
        try:
            page: Any = call_api(what, custom.list_cluster_custom_object, TGB_GROUP,
                                 TGB_VERSION, TGB_PLURAL, **kwargs)
        except KubeError as e:
            if e.status == 404:
                log.debug("%s: not found (404): no TargetGroupBinding CRD in this cluster; "
                          "target groups get no target_* labels", what)
                return {}
            raise
        for item in page.get("items") or []:
            arn, binding = _binding(item)
            if arn and binding:
                found.setdefault(arn, set()).add(binding)
        token = (page.get("metadata") or {}).get("continue")
        if not token:
            break
    out = {}
    for arn, bs in found.items():
        if len(bs) == 1:
            out[arn] = bs.pop()
        else:
            log.warning("target group %s is bound by %d TargetGroupBindings to different "
                        "Services (%s); its series get no target_* labels", arn, len(bs),
                        ", ".join(sorted(f"{b.namespace}/{b.service}:{b.port}" for b in bs)))
    return out


def _binding(obj: Mapping[str, Any]) -> tuple[str, Binding | None]:
    md = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    ref = spec.get("serviceRef") or {}
    arn, name, port = spec.get("targetGroupARN"), ref.get("name"), ref.get("port")
    if not arn or not name or port is None or port == "":
        return "", None
    return str(arn), Binding(str(md.get("namespace", "")), str(name), str(port))
