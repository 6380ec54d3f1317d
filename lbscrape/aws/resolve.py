"""Map owners to load balancers: by status hostname, then by name, then by tags.

Cheapest first, so the usual run costs one listing per API and nothing more:

1. **DNS name.** One paginated DescribeLoadBalancers listing per run of ELBv2, and of
   classic ELB only when a Service expects a classic ELB, matched to status hostnames
   case-insensitively. There is no server-side filter
   by DNS name, and one listing is cheaper than a call per object.
2. **IngressGroup.** A member whose hostname matches nothing shares the ALB another
   member matched: the controller serves a whole group with one ALB.
3. **Name.** The name the owner asks for (name annotation, or the in-tree controller's
   default name), looked up in the same listing.
4. **Tags.** Only for owners still unmatched: DescribeTags (at most 20 load balancers
   per call) of the load balancers nobody matched, looking for the controllers' tags
   (`ingress.k8s.aws/stack`, `service.k8s.aws/stack`, `kubernetes.io/service-name`).

`resolve` is pure given what was described; `find` does the AWS calls around it.

Target groups come after, and only when the catalog fetches something per target group
of a resolved ALB or NLB: one paginated DescribeTargetGroups listing of the region (each
group names its load balancers), joined to TargetGroupBindings by ARN (`attach`, pure).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any, Literal, Protocol, TypeVar

from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

from lbscrape.core.errors import NO_CREDENTIALS, AwsError
from lbscrape.core.model import (
    CLASSIC_KEY_PREFIX,
    Binding,
    LbType,
    LoadBalancer,
    Owner,
    TargetGroup,
    Unresolved,
)

log = logging.getLogger(__name__)

SUPPORTED_TYPES: frozenset[str] = frozenset({"application", "network", "classic"})
PAGE_SIZE = 400  # DescribeLoadBalancers maximum, both APIs
TAGS_PER_CALL = 20  # DescribeTags maximum, both APIs

INGRESS_STACK_TAG = "ingress.k8s.aws/stack"
SERVICE_STACK_TAG = "service.k8s.aws/stack"
IN_TREE_SERVICE_TAG = "kubernetes.io/service-name"
LBC_CLUSTER_TAG = "elbv2.k8s.aws/cluster"

MatchedBy = Literal["dns", "group", "name", "tag"]
Family = Literal["elbv2", "elb"]
T = TypeVar("T")


class ElbClient(Protocol):
    """The part of a boto3 `elbv2` or `elb` client that resolution uses."""

    def get_paginator(self, operation_name: str) -> Any: ...
    def describe_tags(self, **kwargs: Any) -> Any: ...


@dataclass(frozen=True)
class Resolution:
    load_balancers: tuple[LoadBalancer, ...]
    unresolved: tuple[Unresolved, ...]
    matched_by: Mapping[Owner, MatchedBy] = field(default_factory=dict)
    """How each resolved owner was matched."""


@dataclass(frozen=True)
class _Described:
    arn: str  # "" for a classic ELB
    name: str
    type: str  # application | network | gateway | classic
    dns_name: str

    @property
    def family(self) -> Family:
        return "elb" if self.type == "classic" else "elbv2"

    @property
    def key(self) -> str:
        """The same identity as LoadBalancer.key: dimension, or elb/NAME."""
        return CLASSIC_KEY_PREFIX + self.name if self.family == "elb" \
            else dimension_from_arn(self.arn)


def dimension_from_arn(arn: str) -> str:
    """arn:...:loadbalancer/app/NAME/ID -> app/NAME/ID (CloudWatch's LoadBalancer value)."""
    resource = arn.split(":", 5)[5] if arn.count(":") >= 5 else arn
    return resource.removeprefix("loadbalancer/")


def tg_dimension_from_arn(arn: str) -> str:
    """arn:...:targetgroup/NAME/ID -> targetgroup/NAME/ID (CloudWatch's TargetGroup value)."""
    return arn.split(":", 5)[5] if arn.count(":") >= 5 else arn


@dataclass(frozen=True)
class DescribedTg:
    arn: str
    name: str
    lb_arns: tuple[str, ...]


def describe_target_groups(client: ElbClient) -> list[DescribedTg]:
    """Every target group of the region. No filter: one listing names each group's load
    balancers, where a call per load balancer would cost one call each."""
    return _aws("ELBv2 DescribeTargetGroups", lambda: [
        DescribedTg(tg["TargetGroupArn"], tg.get("TargetGroupName", ""),
                    tuple(tg.get("LoadBalancerArns") or ()))
        for page in client.get_paginator("describe_target_groups").paginate(
            PaginationConfig={"PageSize": PAGE_SIZE})
        for tg in page.get("TargetGroups", [])
    ])


def attach(lbs: Sequence[LoadBalancer], described: Sequence[DescribedTg],
           bindings: Mapping[str, Binding]) -> tuple[LoadBalancer, ...]:
    """Each ELBv2 load balancer with its target groups (sorted by name) and, by target
    group ARN, the Service bound to each. Pure. A group shared by two load balancers is
    attached to both: CloudWatch publishes it per (TargetGroup, LoadBalancer)."""
    by_lb: dict[str, list[TargetGroup]] = {}
    for d in described:
        tg = TargetGroup(d.name, tg_dimension_from_arn(d.arn), bindings.get(d.arn))
        for lb_arn in d.lb_arns:
            by_lb.setdefault(lb_arn, []).append(tg)
    return tuple(
        replace(lb, target_groups=tuple(sorted(by_lb.get(lb.arn, []), key=lambda t: t.name)))
        if lb.arn and lb.type != "classic" else lb
        for lb in lbs
    )


def find_target_groups(lbs: Sequence[LoadBalancer], elbv2: ElbClient,
                       bindings: Callable[[], Mapping[str, Binding]],
                       wanted: Callable[[LbType], bool] = lambda _: True,
                       listed: Callable[[], list[DescribedTg]] | None = None
                       ) -> tuple[LoadBalancer, ...]:
    """`lbs` with their target groups, for the types `wanted` says need them. Costs
    nothing when none does: no listing, and the bindings are read (one Kubernetes list)
    only when a listed group belongs to one of `lbs`. `listed` gives the region's target
    groups when they were listed ahead (describe_target_groups)."""
    if not any(lb.type != "classic" and wanted(lb.type) for lb in lbs):
        return tuple(lbs)
    ours = {lb.arn for lb in lbs if lb.type != "classic" and wanted(lb.type)}
    region = listed() if listed else describe_target_groups(elbv2)
    described = [d for d in region if ours.intersection(d.lb_arns)]
    if not described:
        return tuple(lbs)
    wanted_lbs = [lb for lb in lbs if lb.arn in ours]
    attached = {lb.key: lb for lb in attach(wanted_lbs, described, bindings())}
    return tuple(attached.get(lb.key, lb) for lb in lbs)


def describe_all(client: ElbClient) -> list[_Described]:
    """Every ELBv2 load balancer of the region."""
    return _aws("ELBv2 DescribeLoadBalancers", lambda: [
        _Described(lb["LoadBalancerArn"], lb["LoadBalancerName"], lb.get("Type", ""),
                   lb.get("DNSName", ""))
        for page in client.get_paginator("describe_load_balancers").paginate(
            PaginationConfig={"PageSize": PAGE_SIZE})
        for lb in page.get("LoadBalancers", [])
    ])


def describe_classic(client: ElbClient) -> list[_Described]:
    """Every classic ELB of the region (Marker/NextMarker pages of at most 400)."""
    return _aws("ELB DescribeLoadBalancers", lambda: [
        _Described("", lb["LoadBalancerName"], "classic", lb.get("DNSName", ""))
        for page in client.get_paginator("describe_load_balancers").paginate(
            PaginationConfig={"PageSize": PAGE_SIZE})
        for lb in page.get("LoadBalancerDescriptions", [])
    ])


def describe_tags(elbv2: ElbClient, elb: ElbClient, lbs: Sequence[_Described]
                  ) -> dict[str, dict[str, str]]:
    """Tags of `lbs`, by key; 20 load balancers per call, the APIs' limit."""
    out: dict[str, dict[str, str]] = {}
    v2 = [d.arn for d in lbs if d.family == "elbv2"]
    for i in range(0, len(v2), TAGS_PER_CALL):
        resp = _aws("ELBv2 DescribeTags",
                    partial(elbv2.describe_tags, ResourceArns=v2[i:i + TAGS_PER_CALL]))
        for td in resp.get("TagDescriptions", []):
            out[dimension_from_arn(td["ResourceArn"])] = _tag_dict(td)
    classic = [d.name for d in lbs if d.family == "elb"]
    for i in range(0, len(classic), TAGS_PER_CALL):
        resp = _aws("ELB DescribeTags",
                    partial(elb.describe_tags, LoadBalancerNames=classic[i:i + TAGS_PER_CALL]))
        for td in resp.get("TagDescriptions", []):
            out[CLASSIC_KEY_PREFIX + td["LoadBalancerName"]] = _tag_dict(td)
    return out


def find(owners: Sequence[Owner], elbv2: ElbClient, elb: ElbClient,
         cluster: str = "") -> Resolution:
    """List, resolve, and look up tags only if an owner is still unmatched."""
    owners = [o for o in owners if o.hostnames]
    # ELBv2 always, also with no owners: a run with broken credentials fails visibly.
    described = describe_all(elbv2)
    if any(_family(o) == "elb" for o in owners):
        described += describe_classic(elb)
    res = resolve(owners, described, cluster=cluster)
    pending = [o for o in owners if o not in res.matched_by and
               any(u.owner == o for u in res.unresolved)]
    if not pending:
        return res
    claimed = {lb.key for lb in res.load_balancers}
    wanted = {_family(o) for o in pending}
    candidates = [d for d in described if d.key not in claimed and d.family in wanted
                  and d.type in SUPPORTED_TYPES]
    if not candidates:
        return res
    try:
        tags = describe_tags(elbv2, elb, candidates)
    except AwsError as e:
        # The owners matched by DNS name are still good; only these stay unresolved.
        log.warning("%d owners match no load balancer by DNS name or name, and their tags "
                    "could not be looked up: %s", len(pending), e)
        return res
    res = resolve(owners, described, tags, cluster)
    for lb in res.load_balancers:
        for o in lb.owners:
            if res.matched_by.get(o) == "tag":
                log.info("%s: its hostname matches no load balancer; resolved to %s by the "
                         "controller's tags", o, lb.name)
    return res


def resolve(owners: Sequence[Owner], described: Sequence[_Described],
            tags: Mapping[str, Mapping[str, str]] | None = None,
            cluster: str = "") -> Resolution:
    """Join owners to load balancers (see the module doc for the order). Pure; keeps the
    owners' order. `tags` (by described key) enables the tag fallback; among several
    tag matches, those tagged for `cluster` win."""
    by_dns = {d.dns_name.lower().rstrip("."): d for d in described if d.dns_name}
    by_name = {(d.family, d.name): d for d in described}
    owners_by_key: dict[str, list[Owner]] = {}
    found: dict[str, _Described] = {}
    matched_by: dict[Owner, MatchedBy] = {}
    unresolved: list[Unresolved] = []

    def claim(owner: Owner, d: _Described, how: MatchedBy) -> None:
        if d.type not in SUPPORTED_TYPES:
            log.warning("%s: load balancer %s has type %r, which lbscrape does not scrape",
                        owner, d.name, d.type)
            return
        found[d.key] = d
        members = owners_by_key.setdefault(d.key, [])
        if owner not in members:
            members.append(owner)
        matched_by.setdefault(owner, how)

    pending = []
    for owner in owners:
        if not owner.hostnames:
            continue  # not provisioned yet: skipped quietly, also by name or tags
        hits = [(h, by_dns.get(h.lower().rstrip("."))) for h in owner.hostnames]
        if not any(d for _, d in hits):
            pending.append(owner)
            continue
        for hostname, d in hits:
            if d is None:  # e.g. a second hostname; the owner itself is resolved
                unresolved.append(Unresolved(owner, hostname))
            else:
                claim(owner, d, "dns")

    group_lb = {o.group: found[key] for key, members in owners_by_key.items()
                for o in members if o.group}
    for owner in pending:
        hit, how, ambiguous = _fallback(owner, group_lb, by_name, described, tags or {},
                                        cluster)
        if hit is not None:
            claim(owner, hit, how)
        else:
            unresolved.extend(Unresolved(owner, h, ambiguous) for h in owner.hostnames)

    lbs = tuple(_load_balancer(d, owners_by_key[key]) for key, d in found.items())
    return Resolution(lbs, tuple(unresolved), matched_by)


def _fallback(owner: Owner, group_lb: Mapping[str, _Described],
              by_name: Mapping[tuple[Family, str], _Described], described: Sequence[_Described],
              tags: Mapping[str, Mapping[str, str]], cluster: str
              ) -> tuple[_Described | None, MatchedBy, tuple[str, ...]]:
    """An owner no hostname matched: its IngressGroup's load balancer, else its name, else
    its controller's tags; with the names of several tag matches when none is chosen."""
    if owner.group and owner.group in group_lb:
        return group_lb[owner.group], "group", ()
    named = by_name.get((_family(owner), owner.lb_name)) if owner.lb_name else None
    if named is not None:
        return named, "name", ()
    tagged = _by_tags(owner, described, tags, cluster)
    if len(tagged) == 1:
        return tagged[0], "tag", ()
    return None, "tag", tuple(sorted(d.name for d in tagged))


def _load_balancer(d: _Described, owners: Sequence[Owner]) -> LoadBalancer:
    return LoadBalancer(
        arn=d.arn or None,
        name=d.name,
        type=_lb_type(d.type),
        dimension=d.name if d.family == "elb" else dimension_from_arn(d.arn),
        owners=tuple(owners),
    )


def explain(u: Unresolved, region: str) -> str:
    """Why an owner was skipped, for the run's warning and `discover`."""
    if u.ambiguous:
        return (f"no load balancer in {region} has DNS name {u.hostname}, and "
                f"{len(u.ambiguous)} carry its controller's tags ({', '.join(u.ambiguous)}); "
                f"not guessing (one whose {LBC_CLUSTER_TAG} tag equals --cluster would win)")
    return f"no load balancer in {region} has DNS name {u.hostname}"


def _by_tags(owner: Owner, described: Sequence[_Described],
             tags: Mapping[str, Mapping[str, str]], cluster: str) -> list[_Described]:
    wanted = _owner_tags(owner)
    matches = [d for d in described if d.key in tags
               and any(tags[d.key].get(k) == v for k, v in wanted)]
    ours = [d for d in matches if _tagged_for(tags[d.key], cluster)]
    # Several clusters in one account can each have a default/web: prefer ours.
    return ours or matches


def _owner_tags(owner: Owner) -> list[tuple[str, str]]:
    """The (key, value) tags a controller puts on this owner's load balancer."""
    ref = f"{owner.namespace}/{owner.name}"
    if owner.kind == "Ingress":
        return [(INGRESS_STACK_TAG, owner.group or ref)]
    return [(SERVICE_STACK_TAG, ref), (IN_TREE_SERVICE_TAG, ref)]


def _tagged_for(tags: Mapping[str, str], cluster: str) -> bool:
    return bool(cluster) and (tags.get(LBC_CLUSTER_TAG) == cluster
                              or f"kubernetes.io/cluster/{cluster}" in tags
                              or tags.get("KubernetesCluster") == cluster)


def _family(owner: Owner) -> Family:
    return "elb" if owner.lb_type == "classic" else "elbv2"


def _lb_type(t: str) -> LbType:
    return "application" if t == "application" else "classic" if t == "classic" else "network"


def _tag_dict(td: Mapping[str, Any]) -> dict[str, str]:
    return {t["Key"]: t.get("Value", "") for t in td.get("Tags", [])}


def _aws(what: str, call: Callable[[], T]) -> T:
    """Run an ELB API call; turn its failures into a one-line AwsError."""
    try:
        return call()
    except NoCredentialsError as e:
        raise AwsError(NO_CREDENTIALS) from e
    except ClientError as e:
        err = e.response.get("Error", {})
        raise AwsError(f"{what} failed: {err.get('Code')}: {err.get('Message')}") from e
    except BotoCoreError as e:
        raise AwsError(f"{what} failed: {e}") from e
