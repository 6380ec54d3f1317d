"""Map owners' status hostnames to ELBv2 load balancers.

One paginated DescribeLoadBalancers listing per run, matched by DNS name
(case-insensitive): there is no server-side filter by DNS name, and one listing is
cheaper than a call per object.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

from lbscrape.errors import NO_CREDENTIALS, AwsError
from lbscrape.model import LbType, LoadBalancer, Owner, Unresolved

log = logging.getLogger(__name__)

SUPPORTED_TYPES: frozenset[str] = frozenset({"application", "network"})


class ElbClient(Protocol):
    def get_paginator(self, operation_name: str) -> Any: ...


@dataclass(frozen=True)
class Resolution:
    load_balancers: tuple[LoadBalancer, ...]
    unresolved: tuple[Unresolved, ...]


@dataclass(frozen=True)
class _Described:
    arn: str
    name: str
    type: str
    dns_name: str


def dimension_from_arn(arn: str) -> str:
    """arn:...:loadbalancer/app/NAME/ID -> app/NAME/ID (CloudWatch's LoadBalancer value)."""
    resource = arn.split(":", 5)[5] if arn.count(":") >= 5 else arn
    return resource.removeprefix("loadbalancer/")


def describe_all(client: ElbClient) -> list[_Described]:
    try:
        pages = client.get_paginator("describe_load_balancers").paginate(
            PaginationConfig={"PageSize": 400}
        )
        return [
            _Described(lb["LoadBalancerArn"], lb["LoadBalancerName"], lb.get("Type", ""),
                       lb.get("DNSName", ""))
            for page in pages
            for lb in page.get("LoadBalancers", [])
        ]
    except NoCredentialsError as e:
        raise AwsError(NO_CREDENTIALS) from e
    except ClientError as e:
        err = e.response.get("Error", {})
        raise AwsError(
            f"ELBv2 DescribeLoadBalancers failed: {err.get('Code')}: {err.get('Message')}"
        ) from e
    except BotoCoreError as e:
        raise AwsError(f"ELBv2 DescribeLoadBalancers failed: {e}") from e


def resolve(owners: Sequence[Owner], described: Sequence[_Described]) -> Resolution:
    """Join owners to load balancers by hostname. Pure; keeps the owners' order."""
    by_dns = {d.dns_name.lower().rstrip("."): d for d in described if d.dns_name}
    owners_by_arn: dict[str, list[Owner]] = {}
    found: dict[str, _Described] = {}
    unresolved = []
    for owner in owners:
        for hostname in owner.hostnames:
            d = by_dns.get(hostname.lower().rstrip("."))
            if d is None:
                unresolved.append(Unresolved(owner, hostname))
                continue
            if d.type not in SUPPORTED_TYPES:
                log.warning("%s: load balancer %s has type %r, which lbscrape does not scrape",
                            owner, d.name, d.type)
                continue
            found[d.arn] = d
            members = owners_by_arn.setdefault(d.arn, [])
            if owner not in members:
                members.append(owner)
    lbs = tuple(
        LoadBalancer(
            arn=d.arn,
            name=d.name,
            type=_lb_type(d.type),
            dimension=dimension_from_arn(d.arn),
            owners=tuple(owners_by_arn[arn]),
        )
        for arn, d in found.items()
    )
    return Resolution(lbs, tuple(unresolved))


def _lb_type(t: str) -> LbType:
    return "application" if t == "application" else "network"
