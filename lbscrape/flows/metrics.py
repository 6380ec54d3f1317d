"""`lbscrape metrics`: the effective catalog, as a table or JSON. Reads no cluster or AWS."""

from __future__ import annotations

import json
from typing import Any

from lbscrape.core.catalog import DIMENSION_SETS, KINDS, KNOWN, Catalog
from lbscrape.core.console import Console, fail, table
from lbscrape.core.errors import ConfigError, ExitStatus
from lbscrape.core.options import load_catalog


def execute(metrics_config: str | None, known: bool, output: str, console: Console) -> int:
    try:
        catalog = load_catalog(metrics_config)
    except ConfigError as e:
        return fail(console, e)
    rows = catalog_rows(catalog, known)
    if output == "json":
        console.out(json.dumps(rows, indent=2))
        return ExitStatus.OK
    head = ("TYPE", "PROMETHEUS NAME", "CLOUDWATCH METRIC", "STAT", "ZERO-FILL")
    for line in table([head] + [(r["type"], r["name"] or "-", f"{r['namespace']} {r['metric']}",
                                 r["stat"] or "-", r["zero_fill"] or "") for r in rows]):
        console.out(line)
    console.out(f"\nsource: {catalog.source or 'the default catalog'}")
    for t in KINDS:
        for dims in DIMENSION_SETS:
            if reason := catalog.no_fill_reason(t, dims):
                console.out(reason)
    return ExitStatus.OK


def catalog_rows(catalog: Catalog, known: bool) -> list[dict[str, Any]]:
    """One row per fetched (metric, statistic), and with `known` every other metric."""
    rows: list[dict[str, Any]] = []
    for t, kind in KINDS.items():
        fetched = set()
        for dims in DIMENSION_SETS:
            plan = catalog.fill_plan(t, dims)
            cw_dims = [kind.dimension] if dims == "load_balancer" else \
                ["TargetGroup", kind.dimension]
            for spec in catalog.specs(t, dims):
                fetched.add(spec.metric)
                role = "traffic" if spec == plan.traffic else "yes" if spec in plan.sparse \
                    else None
                rows.append({"type": t, "namespace": kind.namespace, "metric": spec.metric,
                             "stat": spec.stat, "name": spec.prom_name,
                             "dimensions": cw_dims, "zero_fill": role})
        if known:
            rows += [{"type": t, "namespace": kind.namespace, "metric": m.name, "stat": None,
                      "name": None, "dimensions": list(m.dimensions),
                      "zero_fill": "sparse" if m.sparse else None}
                     for m in KNOWN[t].values() if m.name not in fetched]
    return rows
