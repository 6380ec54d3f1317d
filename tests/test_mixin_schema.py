"""The mixin's outputs against the schemas of what loads them: Grafana's dashboard schema
(grafana-foundation-sdk's typed models for Grafana 11.6, generated from Grafana's own
schema), the Kubernetes API schemas (kubernetes-validate, strict), and the fields of
prometheus-operator's PrometheusRule."""

from __future__ import annotations

import enum
import json
import re
import types
import typing
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml  # type: ignore[import-untyped,unused-ignore]
from grafana_foundation_sdk.cog import plugins
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import Dashboard

from lbscrape.core.catalog import DEFAULT
from lbscrape.core.metrics_config import tailor
from lbscrape.mixin import build
from lbscrape.mixin.config import parse_owner
from lbscrape.mixin.render import kubernetes

K8S_VERSION = "1.30"
# kubectl apply (client side) keeps the whole object in an annotation, and annotations
# may hold 256 KiB in all: a dashboard ConfigMap over it needs --server-side.
ANNOTATION_LIMIT = 256 * 1024

plugins.register_default_plugins()

BUNDLES = {
    "default": build(DEFAULT),
    "tailored": build(tailor({"application": {"add": [
        {"metric": "TargetResponseTime", "stats": ["p99", "p99.9"]},
        {"metric": "RuleEvaluations", "stats": ["Sum"]}]}}, "m.yaml")),
    "owner": build(DEFAULT, owner=parse_owner("shop/service/db")),
}
DASHBOARDS = [(name, d) for name, b in BUNDLES.items() for d in b.dashboards]


def lost(ours: Any, theirs: Any, path: str = "") -> list[str]:
    """What of ours the schema model dropped or changed (defaults it adds are fine)."""
    if isinstance(ours, dict):
        if not isinstance(theirs, dict):
            return [f"{path}: {theirs!r}"]
        return [f"{path}.{k}: dropped" if k not in theirs else x
                for k in ours for x in ([f"{path}.{k}: dropped"] if k not in theirs
                                        else lost(ours[k], theirs[k], f"{path}.{k}"))]
    if isinstance(ours, list):
        if not isinstance(theirs, list) or len(theirs) != len(ours):
            return [f"{path}: {theirs!r}"]
        return [x for i, (a, b) in enumerate(zip(ours, theirs, strict=True))
                for x in lost(a, b, f"{path}[{i}]")]
    return [] if ours == theirs else [f"{path}: {ours!r} became {theirs!r}"]


def _kinds(hint: Any) -> list[Any]:
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return [k for arg in typing.get_args(hint) for k in _kinds(arg)]
    return [hint]


def type_errors(obj: Any, path: str = "") -> list[str]:
    """Every enum-, literal- or scalar-typed field of the models holds a value of its type:
    from_json assigns what it is given, so a wrong type would only show in Grafana."""
    if isinstance(obj, list):
        return [e for i, x in enumerate(obj) for e in type_errors(x, f"{path}[{i}]")]
    if not type(obj).__module__.startswith("grafana_foundation_sdk"):
        return []
    errors = []
    hints = typing.get_type_hints(type(obj))
    for attr, value in vars(obj).items():
        kinds = [k for k in _kinds(hints.get(attr, Any)) if k is not type(None)]
        if value is not None and kinds:
            errors += _check(value, kinds, f"{path}.{attr}")
        errors += type_errors(value, f"{path}.{attr}")
    return errors


def _check(value: Any, kinds: list[Any], path: str) -> list[str]:
    for k in kinds:
        if typing.get_origin(k) is typing.Literal and value in typing.get_args(k):
            return []
        if isinstance(k, type) and issubclass(k, enum.Enum):
            try:
                k(value)
                return []
            except ValueError:
                continue
        if k in (str, int, bool) and isinstance(value, k) and not (
                k is int and isinstance(value, bool)):
            return []
        if k is float and isinstance(value, int | float) and not isinstance(value, bool):
            return []
        if not (k in (str, int, bool, float) or typing.get_origin(k) is typing.Literal or
                isinstance(k, type) and issubclass(k, enum.Enum)):
            return []  # a model, list or dict: checked by recursion
    return [f"{path}: {value!r} is none of {kinds}"]


@pytest.mark.parametrize(("bundle", "dashboard"), DASHBOARDS,
                         ids=[f"{b}-{d.key}" for b, d in DASHBOARDS])
def test_dashboards_round_trip_through_grafanas_schema_models(bundle, dashboard):
    model = Dashboard.from_json(dashboard.doc)
    back = json.loads(json.dumps(model, cls=JSONEncoder))
    assert lost(dashboard.doc, back) == []
    assert type_errors(model) == []


def test_the_schema_check_catches_what_grafana_would_not_take():
    doc = json.loads(json.dumps(BUNDLES["default"].dashboards[0].doc))
    doc["graphTooltip"] = 7  # not a DashboardCursorSync
    doc["templating"]["list"][1]["refresh"] = "often"
    doc["panels"][1]["gridPos"]["w"] = "12"
    doc["panels"][1]["datasources"] = doc["panels"][1].pop("datasource")  # a typo
    model = Dashboard.from_json(doc)
    assert lost(doc, json.loads(json.dumps(model, cls=JSONEncoder))) == [
        ".panels[1].datasources: dropped"]
    assert sorted(type_errors(model)) == [
        ".graph_tooltip: 7 is none of [<enum 'DashboardCursorSync'>]",
        ".panels[1].grid_pos.w: '12' is none of [<class 'int'>]",
        ".templating.list_val[1].refresh: 'often' is none of [<enum 'VariableRefresh'>]"]


def test_dashboards_are_self_consistent():
    for bundle in BUNDLES.values():  # the same uid whatever the config, distinct per owner
        uids = [d.uid for d in bundle.dashboards]
        assert len(set(uids)) == len(uids) and all(len(u) <= 40 for u in uids)
    assert [d.uid for d in BUNDLES["tailored"].dashboards] == [
        d.uid for d in BUNDLES["default"].dashboards]
    assert not {d.uid for d in BUNDLES["owner"].dashboards} & {
        d.uid for d in BUNDLES["default"].dashboards}
    for _, d in DASHBOARDS:
        panels = d.doc["panels"]
        assert len({p["id"] for p in panels}) == len(panels)
        names = {v["name"] for v in d.doc["templating"]["list"]}
        for p in panels:
            assert p["gridPos"]["x"] + p["gridPos"]["w"] <= 24
            for t in p.get("targets", []):
                used = set(re.findall(r"\$(\w+)", t["expr"])) - {
                    "__interval", "__interval_ms"}
                assert used <= names, (d.key, p["title"], used - names)
        # Grid cells do not overlap.
        cells = [(x, y) for p in panels for x in range(p["gridPos"]["x"], p["gridPos"]["x"]
                 + p["gridPos"]["w"]) for y in range(p["gridPos"]["y"], p["gridPos"]["y"]
                 + p["gridPos"]["h"])]
        assert len(cells) == len(set(cells)), d.key


def test_dashboard_configmaps_validate_against_the_kubernetes_schema():
    for bundle in BUNDLES.values():
        for path, text in kubernetes(bundle).items():
            doc = yaml.safe_load(text)
            if doc["kind"] == "ConfigMap":
                kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
                assert doc["metadata"]["labels"]["grafana_dashboard"] == "1"
                assert len(text.encode()) < ANNOTATION_LIMIT, path
                (json_text,) = doc["data"].values()
                assert json.loads(json_text)["uid"]


# The PrometheusRule fields prometheus-operator's CRD (monitoring.coreos.com/v1) defines,
# with its duration pattern; the rules themselves are checked by promtool
# (test_mixin_rules.py), as the operator's admission webhook checks them.
DURATION = r"^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?" \
           r"(([0-9]+)ms)?)$"
STRINGS = {"type": "object", "additionalProperties": {"type": "string"}}
PROMETHEUS_RULE = {
    "type": "object", "required": ["apiVersion", "kind", "metadata", "spec"],
    "additionalProperties": False,
    "properties": {
        "apiVersion": {"const": "monitoring.coreos.com/v1"}, "kind": {"const": "PrometheusRule"},
        "metadata": {"type": "object"},
        "spec": {"type": "object", "additionalProperties": False, "properties": {"groups": {
            "type": "array", "items": {
                "type": "object", "required": ["name", "rules"], "additionalProperties": False,
                "properties": {
                    "name": {"type": "string", "minLength": 1},
                    "interval": {"type": "string", "pattern": DURATION},
                    "rules": {"type": "array", "items": {
                        "type": "object", "required": ["expr"], "additionalProperties": False,
                        "properties": {
                            "alert": {"type": "string"}, "record": {"type": "string"},
                            "expr": {"type": "string"},
                            "for": {"type": "string", "pattern": DURATION},
                            "keep_firing_for": {"type": "string", "pattern": DURATION},
                            "labels": STRINGS, "annotations": STRINGS}}}}}}}},
    },
}


def test_prometheus_rule_has_the_crd_shape_and_valid_metadata():
    for bundle in BUNDLES.values():
        (text,) = [t for p, t in kubernetes(bundle).items() if p.startswith("prometheusrule")]
        doc = yaml.safe_load(text)
        jsonschema.validate(doc, PROMETHEUS_RULE)
        # Its metadata is an ObjectMeta like any object's: checked as a ConfigMap's.
        kubernetes_validate.validate({"apiVersion": "v1", "kind": "ConfigMap",
                                      "metadata": doc["metadata"]}, K8S_VERSION, strict=True)


def test_kustomization_lists_every_manifest(tmp_path):
    out = kubernetes(BUNDLES["default"])
    kust = yaml.safe_load(out["kustomization.yaml"])
    assert sorted(kust["resources"]) == sorted(p for p in out if p != "kustomization.yaml")
    assert all(Path(p).suffix == ".yaml" for p in kust["resources"])
