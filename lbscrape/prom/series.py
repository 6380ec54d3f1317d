"""Turn fetched datapoints into labelled Prometheus series (the metric/label contract)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from lbscrape.core.catalog import FillPlan
from lbscrape.core.model import LoadBalancer, MetricSpec, Sample, Series, TargetGroup

OWNER_LABEL = {"Ingress": "ingress", "Service": "service"}


def lb_labels(lb: LoadBalancer, cluster: str, region: str,
              static: Iterable[tuple[str, str]] = ()) -> dict[str, str]:
    """Labels every sample of `lb` carries, without __name__.

    A load balancer is written once however many objects own it. The labels depend on
    what it *is*, never on how many members it has, so that an Ingress joining or
    leaving an IngressGroup does not start new series for the whole group:

    - an IngressGroup's ALB carries `ingress_group=<group>` and never `namespace` or
      `ingress`, even while all members happen to share a namespace;
    - otherwise (one owner, as the controllers make them) `namespace` and `ingress` or
      `service` name it; if several objects still match one load balancer, each of those
      labels is set only where every owner agrees, as a value that is one owner's among
      several would be wrong for the others.
    """
    labels = dict(static)
    labels.update(
        load_balancer_name=lb.name, load_balancer=lb.dimension, cluster=cluster, region=region
    )
    groups = {o.group for o in lb.owners}
    if len(groups) == 1 and (group := groups.pop()):
        labels["ingress_group"] = group
        return {k: v for k, v in labels.items() if v}
    namespaces = {o.namespace for o in lb.owners}
    if len(namespaces) == 1:
        labels["namespace"] = namespaces.pop()
    kinds = {o.kind for o in lb.owners}
    names = {o.name for o in lb.owners}
    if len(kinds) == 1 and len(names) == 1:
        labels[OWNER_LABEL[kinds.pop()]] = names.pop()
    return {k: v for k, v in labels.items() if v}


def tg_labels(lb_base: Mapping[str, str], tg: TargetGroup) -> dict[str, str]:
    """A target group's series: its load balancer's labels, `target_group` (its name) and,
    when a TargetGroupBinding binds it, the Service it sends to (`target_namespace`,
    `target_service`, `target_port`). The owner's `namespace` stays the load balancer's:
    on a shared ALB, target_namespace is the team's."""
    labels = {**lb_base, "target_group": tg.name}
    if tg.binding is not None:
        labels.update(target_namespace=tg.binding.namespace, target_service=tg.binding.service,
                      target_port=tg.binding.port)
    return {k: v for k, v in labels.items() if v}


def build_series(data: Mapping[MetricSpec, Sequence[Sample]],
                 base_labels: Mapping[str, str]) -> list[Series]:
    """One series per spec with samples, one value per timestamp, sorted by labels (a
    fixed order: a resumed backfill skips what it sent by position)."""
    out = []
    base = [(k, v) for k, v in base_labels.items() if k != "__name__"]
    for spec, samples in data.items():
        if not samples:
            continue
        if not _increasing(samples):
            by_ts = {s.timestamp_ms: s for s in samples}  # one value per timestamp
            samples = [by_ts[t] for t in sorted(by_ts)]
        labels = tuple(sorted([*base, ("__name__", spec.prom_name)]))
        out.append(Series(labels, tuple(samples)))
    return sorted(out, key=lambda s: s.labels)


def _increasing(samples: Iterable[Sample]) -> bool:
    """Strictly increasing timestamps (as fetched): nothing to sort or merge."""
    last = -1
    for s in samples:
        if s.timestamp_ms <= last:
            return False
        last = s.timestamp_ms
    return True


def zero_fill(data: Mapping[MetricSpec, Sequence[Sample]], plan: FillPlan
              ) -> tuple[dict[MetricSpec, list[Sample]], int]:
    """Add a 0 sample for each sparse counter of `plan` that was fetched (is a key of
    `data`) but has no datapoint in a period in which the traffic metric has one > 0.

    CloudWatch publishes HTTPCode_* and error counts only when non-zero, so without this
    a quiet minute has no sample and `5xx / requests` is empty instead of 0. Nothing is
    invented for a counter that was not fetched, for a period without traffic (no
    traffic datapoint, or 0), or when the traffic metric was not fetched. Each period is
    decided from that period's datapoints alone, so a repeated or split window gives the
    same zeros. Returns the filled data (a new dict) and the number of zeros added.
    """
    out = {spec: list(samples) for spec, samples in data.items()}
    if plan.traffic is None or plan.traffic not in data:
        return out, 0
    busy = {s.timestamp_ms for s in data[plan.traffic] if s.value > 0}
    added = 0
    for spec in plan.sparse:
        if spec not in out or not busy:
            continue
        missing = busy.difference([s.timestamp_ms for s in out[spec]])
        if missing:
            out[spec] = sorted(out[spec] + [Sample(t, 0.0) for t in missing],
                               key=lambda s: s.timestamp_ms)
            added += len(missing)
    return out, added


def selector(labels: tuple[tuple[str, str], ...]) -> str:
    d = dict(labels)
    name = d.pop("__name__", "")
    return name + "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(d.items())) + "}"


def _escape(v: str) -> str:
    return v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def exposition(s: Series) -> list[str]:
    """Prometheus text lines with millisecond timestamps, as --dry-run prints them."""
    sel = selector(s.labels)
    return [f"{sel} {x.value!r} {x.timestamp_ms}" for x in s.samples]
