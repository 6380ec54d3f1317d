"""--metrics-config: tailor the metric catalog with a YAML or JSON file.

Per load balancer type, `drop` removes metrics (or some of their statistics) from the
default catalog and `add` appends metrics and statistics, percentiles included. `per`
says whether an entry is the load balancer's metric or its target groups' (default: per
load balancer when CloudWatch publishes the metric so, else per target group):

    application:
      add:
        - metric: TargetResponseTime
          stats: [p99, p99.9]
        - metric: TargetResponseTime
          per: target_group
          stats: [p99]
      drop:
        - metric: ConsumedLCUs
        - metric: RequestCountPerTarget   # only per target group

The whole file is checked before anything is fetched. An error is one ConfigError line
naming the file, the entry (`application.add[1].stats[0]`) and what to do.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any

from lbscrape.core import docfile
from lbscrape.core.catalog import (
    DEFAULT,
    DIMENSION_SETS,
    KINDS,
    KNOWN,
    STAT_SUFFIX,
    Catalog,
    DimensionSet,
    Entry,
    parse_stat,
    prom_name,
)
from lbscrape.core.model import LbType

OPTION = "--metrics-config"
STATS_HELP = ("use Sum, Average, Minimum, Maximum, SampleCount or a percentile p0..p100 with "
              "up to two decimals (p99, p99.9)")
_ALIASES = {"alb": "application", "nlb": "network", "elb": "classic", "clb": "classic"}


def _where(source: str) -> docfile.Where:
    return docfile.Where(OPTION, source)


def load(path: str, base: Catalog = DEFAULT) -> Catalog:
    """Read, parse and apply a metrics config file. Raises ConfigError."""
    return tailor(parse(docfile.read(path, OPTION), path), path, base)


def parse(text: str, source: str) -> Any:
    """JSON for a .json file, YAML otherwise; a key given twice is an error in both."""
    return docfile.parse(text, _where(source))


def tailor(doc: Any, source: str, base: Catalog = DEFAULT) -> Catalog:
    """Apply a parsed metrics config to `base`: per type, drops first, then adds."""
    err = _where(source)
    if doc is None:
        err.fail("", "is empty; give application, network or classic with add or drop, "
                     "or leave --metrics-config unset for the default catalog")
    if not isinstance(doc, dict):
        err.fail("", "must be a mapping with keys application, network or classic")
    entries = dict(base.entries)
    for key, section in doc.items():
        if key not in KINDS:
            err.fail(str(key), _unknown_kind(key))
        kind: LbType = key
        entries[kind] = _tailor_kind(kind, section, entries.get(kind, ()), err)
    return Catalog(entries, source=source)


def _unknown_kind(key: Any) -> str:
    if key == "zero_fill":
        return "zero-filling is switched with --zero-fill/--no-zero-fill (LBSCRAPE_ZERO_FILL), " \
               "not in this file; remove the key"
    hint = _ALIASES.get(str(key).lower()) or _close(str(key), KINDS)
    return (f"unknown load balancer type {key!r}: use application, network or classic"
            + (f" (did you mean {hint}?)" if hint else ""))


def _tailor_kind(kind: LbType, section: Any, base: tuple[Entry, ...], err: docfile.Where
                 ) -> tuple[Entry, ...]:
    if section is None:
        return base
    section = _mapping(section, kind, (), ("add", "drop"), err)
    entries = list(base)
    dropped: dict[tuple[str, DimensionSet, str], str] = {}
    for i, item in enumerate(_list(section.get("drop"), f"{kind}.drop", err)):
        where = f"{kind}.drop[{i}]"
        d = _mapping(item, where, ("metric",), ("stats", "per"), err)
        metric = _metric(d["metric"], kind, f"{where}.metric", err)
        per = _per(d.get("per"), kind, metric, where, err)
        has = [s for e in entries if (e.metric, e.dimensions) == (metric, per) for s in e.stats]
        catalog = f"{kind} catalog{_PER_TEXT[per]}"
        if "stats" in d:
            stats = _stats(d["stats"], f"{where}.stats", err)
        else:
            stats = [(f"{where}.metric", s) for s in has]
        if not has and "stats" not in d:
            gone = [w for (m, p, _), w in dropped.items() if (m, p) == (metric, per)]
            err.fail(f"{where}.metric", f"{metric} is not in the {catalog}"
                     + (f" (already dropped by {gone[0]})" if gone else "")
                     + "; nothing to drop (see `lbscrape metrics`)")
        for w, stat in stats:
            if stat not in has:
                before = dropped.get((metric, per, stat))
                err.fail(w, f"{metric} {stat} is not in the {catalog}"
                         + (f" (already dropped by {before})" if before else
                            f" ({metric} has: {', '.join(has)})" if has else "")
                         + "; nothing to drop")
            dropped[(metric, per, stat)] = where
            has.remove(stat)
        gone_stats = {stat for _, stat in stats}
        entries = [replace(e, stats=tuple(s for s in e.stats if s not in gone_stats))
                   if (e.metric, e.dimensions) == (metric, per) else e for e in entries]
        entries = [e for e in entries if e.stats]

    names: dict[str, str | None] = {prom_name(kind, e.metric, s, e.dimensions): None
                                    for e in entries for s in e.stats}
    for i, item in enumerate(_list(section.get("add"), f"{kind}.add", err)):
        where = f"{kind}.add[{i}]"
        d = _mapping(item, where, ("metric", "stats"), ("per",), err)
        metric = _metric(d["metric"], kind, f"{where}.metric", err)
        per = _per(d.get("per"), kind, metric, where, err)
        stats = _stats(d["stats"], f"{where}.stats", err)
        if not stats:
            err.fail(f"{where}.stats", "is empty; list at least one statistic, e.g. [Sum]")
        for w, stat in stats:
            name = prom_name(kind, metric, stat, per)
            if name in names:
                other = names[name]
                err.fail(w, f"{metric} {stat} is already in the {kind} catalog"
                         f"{_PER_TEXT[per]} (as {name}); "
                         "remove it here" if other is None else
                         f"{metric} {stat} would be written as {name}, as {other} already "
                         "is; remove one of them")
            names[name] = w
        entries.append(Entry(metric, tuple(stat for _, stat in stats), per))
    return tuple(entries)


_PER_TEXT: dict[DimensionSet, str] = {"load_balancer": "", "target_group": " per target group"}


def _per(value: Any, kind: LbType, metric: str, where: str, err: docfile.Where) -> DimensionSet:
    """The entry's dimension set: as given, else per load balancer when CloudWatch
    publishes the metric so (RequestCount), else per target group (HealthyHostCount)."""
    published = KNOWN[kind][metric].dimensions
    if value is None:
        return "load_balancer" if "load_balancer" in published else "target_group"
    if value not in DIMENSION_SETS:
        err.fail(f"{where}.per", f"{value!r}: use load_balancer or target_group")
    per: DimensionSet = value
    if per not in published:
        if kind == "classic":
            err.fail(f"{where}.per", "Classic ELBs have no target groups; remove it")
        other = " per target group" if per == "load_balancer" else " per load balancer"
        err.fail(f"{where}.per", f"CloudWatch publishes {metric} only{other}; "
                 f"use per: {published[0]}")
    return per


def _mapping(value: Any, where: str, required: Iterable[str], optional: Iterable[str],
             err: docfile.Where) -> dict[str, Any]:
    allowed = [*required, *optional]
    if not isinstance(value, dict):
        err.fail(where, f"must be a mapping with {' and '.join(allowed)}")
    for key in value:
        if key not in allowed:
            hint = _close(str(key), allowed)
            err.fail(f"{where}.{key}", f"unknown key {key!r}: allowed here are "
                     f"{', '.join(allowed)}" + (f" (did you mean {hint}?)" if hint else ""))
    for key in required:
        if key not in value:
            err.fail(where, f"missing {key!r}")
    return value


def _list(value: Any, where: str, err: docfile.Where) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        err.fail(where, "must be a list of entries (`- metric: ...`)")
    return value


def _metric(value: Any, kind: LbType, where: str, err: docfile.Where) -> str:
    known = KNOWN[kind]
    if isinstance(value, str) and value in known:
        return value
    ns = f"{KINDS[kind].namespace} ({KINDS[kind].title})"
    if not isinstance(value, str):
        err.fail(where, f"must be the name of a CloudWatch metric in {ns}, e.g. RequestCount")
    elsewhere = [k for k, metrics in KNOWN.items() if value in metrics]
    if elsewhere:
        err.fail(where, f"{value} is not in {ns} but in "
                 f"{' and '.join(KINDS[k].namespace for k in elsewhere)}: put it under "
                 f"{' or '.join(elsewhere)}")
    hint = _close(value, known)
    err.fail(where, f"{value!r} is not a metric lbscrape knows in {ns}; "
             + (f"did you mean {hint}?" if hint else f"known: {', '.join(sorted(known))}"))


def _stats(value: Any, where: str, err: docfile.Where) -> list[tuple[str, str]]:
    """[(where, canonical statistic)] of a stats list."""
    if not isinstance(value, list):
        err.fail(where, f"must be a list, e.g. [{value}]" if isinstance(value, str)
                 else "must be a list of statistics, e.g. [Sum]")
    out = []
    for j, text in enumerate(value):
        w = f"{where}[{j}]"
        stat = parse_stat(text) if isinstance(text, str) else None
        if stat is None:
            hint = _case_hint(text)
            err.fail(w, f"{text!r} is not a statistic lbscrape supports: {STATS_HELP}"
                     + (f" (statistics are case-sensitive: {hint})" if hint else ""))
        out.append((w, stat))
    return out


def _case_hint(text: Any) -> str | None:
    if not isinstance(text, str):
        return None
    for stat in STAT_SUFFIX:
        if stat.lower() == text.lower():
            return stat
    return parse_stat(text.lower()) if text[:1] == "P" else None


def _close(word: str, choices: Iterable[str] | Mapping[str, Any]) -> str | None:
    found = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.75)
    return found[0] if found else None
