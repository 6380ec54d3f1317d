"""What an owning object asks of lbscrape, and the labels its load balancer gets from it.

- Which objects count: --namespace / --exclude-namespace, and the per-object opt-out
  annotation `lbscrape.io/scrape: "false"`.
- Labels: --label-from copies a Kubernetes label (or, as `annotation:KEY`, an
  annotation) of the owner into a Prometheus label; the annotation
  `lbscrape.io/labels: "team=payments,tier=edge"` adds labels of the object's own. The
  annotation wins over --label-from, which wins over --label; the labels lbscrape sets
  itself (config.RESERVED_LABELS) always win.

Pure: reads Owner values, returns decisions and Problems; the pipeline logs the problems
and records them as Events. Bad input never costs a load balancer: the bad label is left
out and the rest is written.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

from lbscrape.core.config import (
    MAX_LABEL_VALUE_BYTES,
    RESERVED_LABELS,
    RESERVED_PREFIX,
    LabelFrom,
)
from lbscrape.core.model import LoadBalancer, Owner, Unresolved
from lbscrape.core.shard import Shard, notice_shards

SCRAPE_ANNOTATION = "lbscrape.io/scrape"
LABELS_ANNOTATION = "lbscrape.io/labels"
# Event reasons (CamelCase, as Kubernetes components write them).
INVALID_ANNOTATION = "InvalidAnnotation"
INVALID_LABEL_VALUE = "InvalidLabelValue"
OPTED_OUT = f'opted out with annotation {SCRAPE_ANNOTATION}: "false"'
_NOT_NAME_CHAR = re.compile(r"[^a-zA-Z0-9_]")
_QUOTE_MAX = 60  # characters of a bad entry quoted in a message


@dataclass(frozen=True)
class Problem:
    """Something wrong with what an object asks for; `reason` is the Event reason."""

    owner: Owner
    reason: str
    where: str
    """What is wrong: 'annotation lbscrape.io/labels', 'label app.kubernetes.io/name'."""
    message: str

    @property
    def text(self) -> str:
        return f"{self.where}: {self.message}"

    def __str__(self) -> str:
        return f"{self.owner}: {self.text}"


@dataclass(frozen=True)
class Selection:
    """--namespace (empty: all) and --exclude-namespace."""

    namespaces: frozenset[str] = frozenset()
    exclude: frozenset[str] = frozenset()

    @classmethod
    def of(cls, namespaces: Iterable[str] = (), exclude: Iterable[str] = ()) -> Selection:
        return cls(frozenset(namespaces), frozenset(exclude))

    def skip_reason(self, owner: Owner) -> str | None:
        """Why lbscrape leaves `owner` alone, or None when it counts."""
        if self.namespaces and owner.namespace not in self.namespaces:
            return "namespace not selected by --namespace"
        if owner.namespace in self.exclude:
            return "namespace excluded by --exclude-namespace"
        if _scrape_value(owner) == "false":
            return OPTED_OUT
        return None


@dataclass(frozen=True)
class OwnerLabels:
    labels: Mapping[str, str]
    problems: tuple[Problem, ...]


def read_owner(owner: Owner, rules: Sequence[LabelFrom]) -> OwnerLabels:
    """The extra labels `owner` gives its load balancer, and what is wrong with its
    lbscrape annotations and copied values."""
    labels: dict[str, str] = {}
    problems: list[Problem] = []
    for rule in rules:
        if rule.label in labels:
            continue  # an earlier source of the same label was found
        value = (owner.annotations if rule.annotation else owner.labels).get(rule.key)
        if not value:
            continue  # the owner lacks it: no label
        bad = value_problem(value)
        if bad:
            problems.append(Problem(owner, INVALID_LABEL_VALUE,
                                    f"{rule.source} (--label-from {rule})",
                                    f"{bad}; label {rule.label} not set"))
            continue
        labels[rule.label] = value
    scrape = _scrape_value(owner)
    if scrape is not None and scrape not in ("true", "false"):
        given = _quote(owner.annotations[SCRAPE_ANNOTATION])
        problems.append(Problem(owner, INVALID_ANNOTATION, f"annotation {SCRAPE_ANNOTATION}",
                                f'{given} is neither "true" nor "false"; scraped as if "true"'))
    raw = owner.annotations.get(LABELS_ANNOTATION)
    if raw is not None:
        extra, bad_entries = parse_labels_annotation(raw)
        labels.update(extra)
        problems += [Problem(owner, INVALID_ANNOTATION, f"annotation {LABELS_ANNOTATION}", m)
                     for m in bad_entries]
    return OwnerLabels(labels, tuple(problems))


def parse_labels_annotation(raw: str) -> tuple[dict[str, str], list[str]]:
    """'team=payments, tier=edge' -> ({team: payments, tier: edge}, problems). Names are
    sanitised to Prometheus rules; a bad entry is left out, the others are kept."""
    labels: dict[str, str] = {}
    problems: list[str] = []
    for entry in (e.strip() for e in raw.split(",")):
        if not entry:
            continue
        key, sep, value = entry.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key:
            problems.append(f"{_quote(entry)} is not KEY=VALUE; ignored")
            continue
        name = sanitise(key)
        if name.startswith("__"):
            problems.append(f"label name {_quote(key)} starts with __, which Prometheus "
                            "reserves; ignored")
        elif name in RESERVED_LABELS:
            problems.append(f"label {name} is set by lbscrape itself and cannot be "
                            "overridden; ignored")
        elif name.startswith(RESERVED_PREFIX):
            problems.append(f"label {name}: names starting with {RESERVED_PREFIX} are "
                            "reserved for lbscrape's own; ignored")
        elif not value:
            problems.append(f"label {name} has an empty value; ignored")
        elif bad := value_problem(value):
            problems.append(f"label {name}: {bad}; not set")
        else:
            labels[name] = value
    return labels, problems


def sanitise(name: str) -> str:
    """A Prometheus label name for `name`: every other character becomes _, and a
    leading digit gets a _ in front ('tier-1.zone' -> 'tier_1_zone', '1x' -> '_1x')."""
    out = _NOT_NAME_CHAR.sub("_", name)
    return f"_{out}" if out[:1].isdigit() else out


def value_problem(value: str) -> str | None:
    """Why `value` cannot be written as a label value, or None."""
    if any(unicodedata.category(c) == "Cs" for c in value):
        return "value is not valid Unicode text"  # it could not be encoded as UTF-8
    size = len(value.encode())
    if size > MAX_LABEL_VALUE_BYTES:
        return f"value is {size} bytes, longer than the {MAX_LABEL_VALUE_BYTES} lbscrape writes"
    if any(unicodedata.category(c) == "Cc" for c in value):
        return "value has a control character (a newline, a tab, ...)"
    return None


def shared(per_owner: Sequence[Mapping[str, str]]) -> dict[str, str]:
    """The labels every owner gives with the same value (the IngressGroup rule of
    series.lb_labels: a value that is one owner's among several would be wrong for the
    others)."""
    if not per_owner:
        return {}
    first, *rest = per_owner
    return {k: v for k, v in first.items() if all(o.get(k) == v for o in rest)}


@dataclass(frozen=True)
class OwnerPlan:
    selected: tuple[Owner, ...]
    skipped: tuple[tuple[Owner, str], ...]
    """Owners lbscrape leaves alone, and why."""
    load_balancers: tuple[LoadBalancer, ...]
    """Those at least one selected owner owns."""
    labels: Mapping[str, Mapping[str, str]]
    """load balancer key -> the extra labels its owners give it."""
    unresolved: tuple[Unresolved, ...]
    """Of selected owners only."""
    problems: tuple[Problem, ...]
    """Of selected owners only."""

    def extra_labels(self, lb: LoadBalancer) -> tuple[tuple[str, str], ...]:
        return tuple(sorted(self.labels.get(lb.key, {}).items()))

    def for_shard(self, shard: Shard) -> OwnerPlan:
        """The load balancers of `shard`, and the unresolved hostnames and problems of
        the owners whose Events it records (see lbscrape.core.shard)."""
        home = notice_shards(self.load_balancers, shard.count)

        def records(owner: Owner) -> bool:
            return home.get(owner, 0) == shard.index

        return replace(
            self, load_balancers=tuple(lb for lb in self.load_balancers if shard.owns(lb.key)),
            unresolved=tuple(u for u in self.unresolved if records(u.owner)),
            problems=tuple(p for p in self.problems if records(p.owner)))


def plan(owners: Sequence[Owner], load_balancers: Sequence[LoadBalancer],
         unresolved: Sequence[Unresolved], selection: Selection,
         rules: Sequence[LabelFrom]) -> OwnerPlan:
    """Apply the filters and read the labels.

    A load balancer is scraped when at least one selected object owns it. Its labels come
    from all its owners, selected or not: they describe the load balancer, so a filter
    never changes a series' labels (and `backfill`, which has no such filters, writes the
    same series). Problems and unresolved hostnames are reported for selected objects
    only: the others asked to be left alone.
    """
    reasons = {o: r for o in owners if (r := selection.skip_reason(o)) is not None}
    read: dict[Owner, OwnerLabels] = {}

    def of(o: Owner) -> OwnerLabels:
        if o not in read:
            read[o] = read_owner(o, rules)
        return read[o]

    selected = tuple(o for o in owners if o not in reasons)
    lbs = tuple(lb for lb in load_balancers if any(o not in reasons for o in lb.owners))
    return OwnerPlan(
        selected=selected,
        skipped=tuple(reasons.items()),
        load_balancers=lbs,
        labels={lb.key: shared([of(o).labels for o in lb.owners]) for lb in lbs},
        unresolved=tuple(u for u in unresolved if u.owner not in reasons),
        problems=tuple(p for o in selected for p in of(o).problems),
    )


def scraped(load_balancers: Iterable[LoadBalancer], selection: Selection
            ) -> tuple[LoadBalancer, ...]:
    """The load balancers at least one object `selection` keeps owns."""
    return tuple(lb for lb in load_balancers
                 if any(selection.skip_reason(o) is None for o in lb.owners))


def _scrape_value(owner: Owner) -> str | None:
    value = owner.annotations.get(SCRAPE_ANNOTATION)
    return None if value is None else value.strip().lower()


def _quote(text: str) -> str:
    return repr(text if len(text) <= _QUOTE_MAX else f"{text[:_QUOTE_MAX]}...")
