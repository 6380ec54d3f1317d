"""`lbscrape discover`: every load-balancer-owning object, what it resolved to, its labels
and lag, and every object skipped and why."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError

from lbscrape.aws import session as aws
from lbscrape.aws.resolve import Resolution, explain, find, find_target_groups
from lbscrape.core.config import parse_labels, parse_labels_from
from lbscrape.core.console import Console, ago, fail, table
from lbscrape.core.errors import ExitStatus, LbscrapeError
from lbscrape.core.model import LoadBalancer
from lbscrape.core.options import DiscoverOptions
from lbscrape.core.shard import parse_count, shard_of
from lbscrape.flows.checkpoint import open_store
from lbscrape.kube import discovery, owner_labels
from lbscrape.kube.client import make_api_client
from lbscrape.prom.series import lb_labels


@dataclass(frozen=True)
class Found:
    """What discovery saw, for the report."""

    lbs: tuple[LoadBalancer, ...]
    chosen: owner_labels.OwnerPlan
    resolution: Resolution
    ends: dict[str, int]
    region: str
    static: tuple[tuple[str, str], ...]
    shards: int | None = None
    """--shards: show each load balancer's shard of this many."""


def execute(o: DiscoverOptions, console: Console) -> int:
    try:
        found = _find(o)
    except (LbscrapeError, BotoCoreError) as e:
        return fail(console, e)
    report = _report(found, o.cluster, int(time.time()))
    if o.output == "json":
        console.out(json.dumps(report, indent=2))
    else:
        for line in _lines(report, found):
            console.out(line)
    return ExitStatus.PARTIAL if found.chosen.unresolved else ExitStatus.OK


def _find(o: DiscoverOptions) -> Found:
    static = parse_labels(o.labels)
    rules = parse_labels_from(o.label_from)
    shards = parse_count(o.shards)
    selection = owner_labels.Selection.of(*o.selection.parsed())
    store = open_store(o.checkpoint, o.kube)
    kube, _ = make_api_client(o.kube.kubeconfig, o.kube.context)
    s = aws.session(o.region)
    owners = discovery.discover_all(kube)
    elbv2 = aws.client(s, "elbv2")
    res = find(owners, elbv2, aws.client(s, "elb"), o.cluster)
    ends = dict(store.load().ends)
    chosen = owner_labels.plan(owners, res.load_balancers, res.unresolved, selection, rules)
    # Shown whatever the catalog fetches: which Service each target group serves.
    lbs = find_target_groups(chosen.load_balancers, elbv2,
                             lambda: discovery.target_group_bindings(kube))
    return Found(tuple(lbs), chosen, res, ends, str(s.region_name), static, shards)


def _report(f: Found, cluster: str, now: int) -> dict[str, list[dict[str, Any]]]:
    skipped_owners = {o for o, _ in f.chosen.skipped}
    rows = [{
        "kind": owner.kind, "namespace": owner.namespace, "name": owner.name,
        "load_balancer_name": lb.name, "arn": lb.arn, "type": lb.type,
        "load_balancer": lb.dimension, "matched_by": f.resolution.matched_by.get(owner),
        "labels": lb_labels(lb, cluster, f.region, (*f.static, *f.chosen.extra_labels(lb))),
        "lag_seconds": now - f.ends[lb.key] if lb.key in f.ends else None,
        "target_groups": [
            {"name": tg.name, "target_group": tg.dimension,
             "binding": {"namespace": tg.binding.namespace,
                         "service": tg.binding.service, "port": tg.binding.port}
             if tg.binding else None} for tg in lb.target_groups],
        **({"shard": shard_of(lb.key, f.shards)} if f.shards else {})}
        for lb in f.lbs for owner in lb.owners if owner not in skipped_owners]
    skipped = [{"kind": o.kind, "namespace": o.namespace, "name": o.name, "reason": why}
               for o, why in f.chosen.skipped]
    skipped += [{"kind": o.kind, "namespace": o.namespace, "name": o.name,
                 "reason": "no load balancer hostname in its status yet"}
                for o in f.chosen.selected if not o.hostnames]
    skipped += [{"kind": u.owner.kind, "namespace": u.owner.namespace, "name": u.owner.name,
                 "reason": explain(u, f.region)}
                for u in f.chosen.unresolved]
    warnings = [{"kind": p.owner.kind, "namespace": p.owner.namespace, "name": p.owner.name,
                 "event": p.reason, "message": p.text} for p in f.chosen.problems]
    return {"resolved": rows, "skipped": skipped, "warnings": warnings}


def _lines(report: dict[str, list[dict[str, Any]]], f: Found) -> list[str]:
    shard = ("SHARD",) if f.shards else ()
    out = table([("OBJECT", "LOAD BALANCER", *shard, "TYPE", "MATCHED BY", "DIMENSION", "LAG",
                  "LABELS")] + [
        (f"{r['kind']} {r['namespace']}/{r['name']}", r["load_balancer_name"],
         *((f"{r['shard']}/{f.shards}",) if f.shards else ()), r["type"],
         r["matched_by"] or "-", r["load_balancer"],
         "-" if r["lag_seconds"] is None else ago(r["lag_seconds"]),
         ",".join(f"{k}={v}" for k, v in sorted(r["labels"].items())))
        for r in report["resolved"]])
    skipped_owners = {o for o, _ in f.chosen.skipped}
    tgs = [(tg.name, lb.name, f"{tg.binding.namespace}/{tg.binding.service}:{tg.binding.port}"
            if tg.binding else "-")
           for lb in f.lbs if any(o not in skipped_owners for o in lb.owners)
           for tg in lb.target_groups]
    if tgs:
        out += [""] + table([("TARGET GROUP", "LOAD BALANCER",
                              "SERVICE (TargetGroupBinding)"), *tgs])
    out += [f"skipped {s['kind']} {s['namespace']}/{s['name']}: {s['reason']}"
            for s in report["skipped"]]
    out += [f"warning {w['kind']} {w['namespace']}/{w['name']}: {w['message']}"
            for w in report["warnings"]]
    return out
