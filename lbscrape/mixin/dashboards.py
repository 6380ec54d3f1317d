"""Grafana dashboards as plain JSON-ready dicts: one per load-balancer type the catalog
fetches, one for target groups by backend Service, one for lbscrape's own health.

Grafana's dashboard JSON (schemaVersion 39, Grafana 10.4 and later) is written directly,
not through a builder library: it keeps the runtime dependencies at what `run` needs, and
the tests check the output against Grafana's own schema models (grafana-foundation-sdk).

Template variables: a Prometheus datasource, then `cluster`, `namespace`, the owner and
`load_balancer_name`, each from label_values() narrowed by the ones before it, multi-select
with All as `.*`. That All value matters: `=~".*"` also matches a series *without* the
label, so an IngressGroup's ALB (no namespace, no ingress) stays in view under "All",
which Grafana's default All (`(a|b|c)` of the values) would drop.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from lbscrape.core.catalog import KINDS, DimensionSet
from lbscrape.core.model import LbType
from lbscrape.mixin import panels as p
from lbscrape.mixin.queries import (
    OWNER_LABELS,
    Fetched,
    gauge,
    is_count,
    names_selector,
    rate,
    ratio,
)
from lbscrape.mixin.settings import Matcher, MixinConfig, OwnerRef, format_duration

INTERVAL = "$__interval"
# Grafana has $__interval and $__interval_ms, no seconds variant.
INTERVAL_SECONDS = "($__interval_ms / 1000)"
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
SCHEMA_VERSION = 39


@dataclass(frozen=True)
class Target:
    expr: str
    legend: str
    instant: bool = False


@dataclass(frozen=True)
class Panel:
    title: str
    description: str
    targets: tuple[Target, ...]
    unit: str
    kind: Literal["timeseries", "stat"] = "timeseries"
    uses: frozenset[str] = field(default_factory=frozenset)
    """The lbscrape series it reads (tests check each returns data)."""
    width: int = 12


@dataclass(frozen=True)
class Row:
    title: str
    panels: tuple[Panel, ...]


@dataclass(frozen=True)
class Dashboard:
    key: str
    """alb, nlb, classic, target-groups, health: names the file."""
    uid: str
    title: str
    doc: dict[str, Any]
    rows: tuple[Row, ...]
    variables: tuple[tuple[str, str], ...]
    """(name, label_values query) of each query variable, in order."""

    @property
    def panels(self) -> tuple[Panel, ...]:
        return tuple(x for r in self.rows for x in r.panels)


@dataclass(frozen=True)
class Scope:
    """What a dashboard's queries share: the catalog, matchers, grouping and legend."""

    fetched: Fetched
    matchers: tuple[Matcher, ...]
    group: tuple[str, ...]
    legend: str


# --- load-balancer panels -------------------------------------------------------------------

def _resolve(line: p.Line, lb_type: LbType, per: DimensionSet, fetched: Fetched
             ) -> list[tuple[str, str, str]]:
    """[(stat, Prometheus name, legend label)] the catalog fetches for a line."""
    have = fetched.stats(lb_type, line.metric, per)
    if line.stats is None:
        return [(s, fetched.name(lb_type, line.metric, s, per) or "", s) for s in have]
    stat = next((s for s in line.stats if s in have), None)
    if stat is None:
        return []
    return [(stat, fetched.name(lb_type, line.metric, stat, per) or "", line.label)]


def compile_panel(pd: p.PanelDef, lb_type: LbType, scope: Scope) -> Panel | None:
    """The panel's queries, or None when the catalog fetches none of its lines."""
    lines = [x for line in pd.lines for x in _resolve(line, lb_type, pd.per, scope.fetched)]
    den = None
    if pd.denominator is not None:
        found = _resolve(pd.denominator, lb_type, pd.per, scope.fetched)
        den = found[0][1] if found else None
    if not lines or (pd.shape == "ratio" and den is None):
        return None
    targets = []
    for stat, name, label in lines:
        legend = f"{scope.legend} {label}".strip() if len(lines) > 1 or label else scope.legend
        if pd.shape == "rate":
            expr = rate(name, scope.matchers, INTERVAL, scope.group, INTERVAL_SECONDS)
        elif pd.shape == "ratio":
            expr = ratio(name, den or "", scope.matchers, INTERVAL, scope.group)
        else:
            expr = gauge(name, stat, scope.matchers, INTERVAL, scope.group, pd.aggregate)
        targets.append(Target(expr, legend))
    uses = frozenset(n for _, n, _ in lines) | ({den} if den else set())
    return Panel(pd.title, pd.description, tuple(targets), pd.unit, uses=uses)


def _rows(defs: Sequence[p.RowDef], scope: Scope) -> list[Row]:
    rows = []
    for rd in defs:
        compiled = [compile_panel(pd, rd.lb_type, scope) for pd in rd.panels]
        kept = tuple(x for x in compiled if x is not None)
        if kept:
            rows.append(Row(rd.title, kept))
    return rows


def _others(universe: Sequence[tuple[LbType, DimensionSet]], used: set[str], scope: Scope
            ) -> Row | None:
    """A panel for each fetched metric no curated panel plots (added with
    --metrics-config): counts as per-second rates, the rest by their statistic."""
    out: list[tuple[LbType, p.PanelDef]] = []
    for lb_type, per in universe:
        specs = [s for s in scope.fetched.catalog.specs(lb_type, per) if s.prom_name not in used]
        prefix = f"{KINDS[lb_type].title} " if len(universe) > 1 else ""
        for metric in dict.fromkeys(s.metric for s in specs):
            stats = [s.stat for s in specs if s.metric == metric]
            counts = tuple(p.Line(metric, s if len(stats) > 1 else "", (s,))
                           for s in stats if is_count(s))
            levels = tuple(p.Line(metric, s, (s,)) for s in stats if not is_count(s))
            if counts:
                out.append((lb_type, p.PanelDef(f"{prefix}{metric} per second", "rate", counts,
                                                "cps", p.RATE_TEXT, per)))
            if levels:
                out.append((lb_type, p.PanelDef(f"{prefix}{metric}", "gauge", levels, "short",
                                                p.GAUGE_TEXT, per, aggregate="max")))
    kept = tuple(x for lt, pd in out if (x := compile_panel(pd, lt, scope)) is not None)
    return Row("Other metrics", kept) if kept else None


# --- variables --------------------------------------------------------------------------------

_OWNER_VARS = frozenset({"namespace", "ingress", "ingress_group", "service"})


def _variables(names: Sequence[str], source: Sequence[str], base: tuple[Matcher, ...],
               owner: OwnerRef | None) -> tuple[list[tuple[str, str]], tuple[Matcher, ...]]:
    """label_values() queries, each narrowed by the variables before it, and the matchers
    every panel query gets (`label=~"$label"` for each)."""
    if owner is not None:
        names = [n for n in names if n not in _OWNER_VARS]
    out = []
    matchers = base
    for name in names:
        out.append((name, f"label_values({names_selector(source, matchers)}, {name})"))
        matchers = (*matchers, Matcher(name, "=~", f"${name}"))
    return out, matchers


# Metrics CloudWatch publishes every minute, traffic or not (the reference's "always"):
# the variables list owners from these, so an idle load balancer stays in the dropdown
# and dropping RequestCount with --metrics-config does not leave only a sparse counter.
DENSE: dict[tuple[LbType, DimensionSet], tuple[str, ...]] = {
    ("application", "load_balancer"): ("ConsumedLCUs",),
    ("application", "target_group"): ("HealthyHostCount", "UnHealthyHostCount"),
    ("network", "load_balancer"): ("ActiveFlowCount", "ProcessedBytes", "ConsumedLCUs"),
    ("network", "target_group"): ("HealthyHostCount", "UnHealthyHostCount"),
    ("classic", "load_balancer"): ("HealthyHostCount", "UnHealthyHostCount"),
}


def _sources(fetched: Fetched, lb_type: LbType, per: DimensionSet) -> list[str]:
    """The series variables list values from: the traffic metric and the dense ones the
    catalog fetches (one series of each metric: its first statistic), else the type's
    first fetched series."""
    metrics = (KINDS[lb_type].traffic, *DENSE[(lb_type, per)])
    names = [n for m in dict.fromkeys(metrics) if (stats := fetched.stats(lb_type, m, per))
             and (n := fetched.name(lb_type, m, stats[0], per))]
    return names or [fetched.names(lb_type, per)[0]]


def _base_matchers(cfg: MixinConfig, owner: OwnerRef | None) -> tuple[Matcher, ...]:
    return (*cfg.selector, *(owner.matchers() if owner else ()))


# --- the dashboards ---------------------------------------------------------------------------

@dataclass(frozen=True)
class _Kind:
    key: str
    title: str
    rows: tuple[p.RowDef, ...]
    universe: tuple[tuple[LbType, DimensionSet], ...]
    group: tuple[str, ...]
    legend: str
    variables: tuple[str, ...]
    description: str


_SERVICE_LEGEND = "{{cluster}} {{namespace}}/{{service}}"
_TG_GROUP = ("cluster", "target_namespace", "target_service", "target_group")
KIND_DEFS: tuple[_Kind, ...] = (
    _Kind("alb", "ALB", p.ALB, (("application", "load_balancer"),), OWNER_LABELS["application"],
          "{{cluster}} {{namespace}}/{{ingress}}{{ingress_group}}",
          ("cluster", "namespace", "ingress", "ingress_group", "load_balancer_name"),
          "Application Load Balancers by owner: an Ingress (namespace/ingress) or an "
          "IngressGroup (/group)."),
    _Kind("nlb", "NLB", p.NLB, (("network", "load_balancer"),), OWNER_LABELS["network"],
          _SERVICE_LEGEND, ("cluster", "namespace", "service", "load_balancer_name"),
          "Network Load Balancers by owning Service."),
    _Kind("classic", "Classic ELB", p.CLASSIC, (("classic", "load_balancer"),),
          OWNER_LABELS["classic"], _SERVICE_LEGEND,
          ("cluster", "namespace", "service", "load_balancer_name"),
          "Classic ELBs by owning Service."),
    _Kind("target-groups", "Target groups", p.TARGET_GROUPS,
          (("application", "target_group"), ("network", "target_group")), _TG_GROUP,
          "{{cluster}} {{target_namespace}}/{{target_service}} {{target_group}}",
          ("cluster", "target_namespace", "target_service", "load_balancer_name"),
          "ALB and NLB target groups by the backend Service their TargetGroupBinding sends "
          "to (target_namespace/target_service): a team's own view behind a shared ALB."),
)
def uid(key: str, owner: OwnerRef | None) -> str:
    """Stable across runs and machines; Grafana allows 40 characters."""
    base = f"lbscrape-{key}"
    if owner is None:
        return base
    full = f"{base}-{owner.slug}"
    if len(full) <= 40:
        return full
    return f"{base}-{hashlib.sha256(str(owner).encode()).hexdigest()[:10]}"


def title(name: str, owner: OwnerRef | None) -> str:
    return f"lbscrape / {name}" + (f" / {owner}" if owner else "")


def lb_dashboard(kind: _Kind, fetched: Fetched, cfg: MixinConfig, owner: OwnerRef | None
                 ) -> Dashboard | None:
    """One load-balancer or target-group dashboard, or None when the catalog fetches nothing
    of its types."""
    # An owner's dashboards hold only the types its load balancer can be.
    universe = [(lt, per) for lt, per in kind.universe if owner is None or lt in owner.lb_types]
    names = [n for lt, per in universe for n in fetched.names(lt, per)]
    if not names:
        return None
    source = [n for lt, per in universe if fetched.names(lt, per)
              for n in _sources(fetched, lt, per)]
    variables, matchers = _variables(kind.variables, source, _base_matchers(cfg, owner), owner)
    scope = Scope(fetched, matchers, kind.group, kind.legend)
    types = {lt for lt, _ in universe}
    rows = _rows([r for r in kind.rows if r.lb_type in types], scope)
    used = {n for r in rows for x in r.panels for n in x.uses}
    other = _others(universe, used, scope)
    rows += [other] if other else []
    d_uid, d_title = uid(kind.key, owner), title(kind.title, owner)
    # The newest lag minutes are not written yet: shifted by it, the last interval of every
    # panel is complete, so a rate never dips at the right edge, whatever the zoom.
    shift = format_duration(cfg.timing.lag)
    doc = document(d_uid, d_title, kind.description, variables, rows, cfg, cfg.period, shift)
    return Dashboard(kind.key, d_uid, d_title, doc, tuple(rows), tuple(variables))


# --- Grafana JSON -----------------------------------------------------------------------------

def document(d_uid: str, d_title: str, description: str, variables: Sequence[tuple[str, str]],
             rows: Sequence[Row], cfg: MixinConfig, min_interval: str,
             time_shift: str | None = None) -> dict[str, Any]:
    ds = cfg.dashboards
    return {
        "uid": d_uid, "title": d_title,
        "description": f"{description} Generated by `lbscrape mixin` from the metric catalog.",
        "tags": list(ds.tags), "timezone": ds.timezone, "editable": True, "graphTooltip": 1,
        "schemaVersion": SCHEMA_VERSION, "version": 1, "refresh": ds.refresh,
        "time": {"from": ds.time_from, "to": "now"},
        "annotations": {"list": [{
            "builtIn": 1, "datasource": {"type": "grafana", "uid": "-- Grafana --"},
            "enable": True, "hide": True, "iconColor": "rgba(0, 211, 255, 1)",
            "name": "Annotations & Alerts", "type": "dashboard"}]},
        "links": [{"type": "dashboards", "tags": [ds.tags[0]], "asDropdown": True,
                   "title": "lbscrape", "includeVars": True, "keepTime": True}],
        "templating": {"list": [_datasource_var()] + [_query_var(n, q) for n, q in variables]},
        "panels": layout(rows, min_interval, time_shift),
    }


def _datasource_var() -> dict[str, Any]:
    return {"name": "datasource", "label": "Data source", "type": "datasource",
            "query": "prometheus", "hide": 0, "refresh": 1, "regex": "", "current": {},
            "options": []}


def _query_var(name: str, query: str) -> dict[str, Any]:
    return {"name": name, "label": name, "type": "query", "datasource": DATASOURCE,
            "query": query, "refresh": 2, "sort": 1, "hide": 0,
            "multi": True, "includeAll": True, "allValue": ".*", "regex": "", "options": [],
            "current": {"selected": True, "text": ["All"], "value": ["$__all"]}}


def layout(rows: Sequence[Row], min_interval: str, time_shift: str | None = None
           ) -> list[dict[str, Any]]:
    """Rows full width, then panels left to right, two time series or four stats a line."""
    out: list[dict[str, Any]] = []
    y = 0
    for row in rows:
        out.append({"type": "row", "title": row.title, "collapsed": False, "panels": [],
                    "id": len(out) + 1, "gridPos": {"h": 1, "w": 24, "x": 0, "y": y}})
        y += 1
        x, line_h = 0, 0
        for panel in row.panels:
            h = 8 if panel.kind == "timeseries" else 4
            if x + panel.width > 24:
                x, y = 0, y + line_h
                line_h = 0
            pos = {"h": h, "w": panel.width, "x": x, "y": y}
            out.append(panel_json(panel, len(out) + 1, pos, min_interval, time_shift))
            x, line_h = x + panel.width, max(line_h, h)
        y += line_h
    return out


def panel_json(panel: Panel, pid: int, pos: dict[str, int], min_interval: str,
               time_shift: str | None = None) -> dict[str, Any]:
    targets = [{"refId": chr(ord("A") + i), "datasource": DATASOURCE, "expr": t.expr,
                "legendFormat": t.legend, "range": not t.instant, "instant": t.instant,
                "editorMode": "code"} for i, t in enumerate(panel.targets)]
    common = {"type": panel.kind, "id": pid, "title": panel.title,
              "description": panel.description, "datasource": DATASOURCE, "gridPos": pos,
              "targets": targets, **({"timeShift": time_shift} if time_shift else {})}
    if panel.kind == "stat":
        return {**common, "options": {
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "colorMode": "value", "graphMode": "none", "justifyMode": "auto",
            "orientation": "auto", "textMode": "auto"},
            "fieldConfig": {"defaults": {"unit": panel.unit}, "overrides": []}}
    # The CloudWatch period is the finest step there is: a smaller one would leave most
    # windows without a sample and draw a comb.
    return {**common, "interval": min_interval, "options": {
        "legend": {"displayMode": "table", "placement": "bottom", "showLegend": True,
                   "calcs": ["mean", "max", "lastNotNull"]},
        "tooltip": {"mode": "multi", "sort": "desc"}},
        "fieldConfig": {"defaults": {"unit": panel.unit, "min": 0, "custom": {
            "drawStyle": "line", "lineWidth": 1, "fillOpacity": 10, "showPoints": "never",
            "spanNulls": False}}, "overrides": []}}
