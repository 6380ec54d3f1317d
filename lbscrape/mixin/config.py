"""The mixin's --config file (thresholds, selectors, labels) and --owner, as frozen dataclasses.

Like a monitoring mixin's `_config` block, every threshold, `for:` and range has a default
here and can be changed per alert in a YAML (or JSON) file:

    selector: 'cluster=~"prod-.*"'      # extra matchers on every query
    period: 1m                         # lbscrape's --period
    settle_delay: 2m                   # lbscrape's --settle-delay
    interval: 1m                       # how often the CronJob runs (its schedule)
    clusters: [prod-eu]                # must run lbscrape: alert even if it never did
    labels: {team: payments}           # added to every alert (routing)
    group_by: [team]                   # series labels every alert keeps
    price_per_1000_metrics: 0.01
    alerts:
      AlbElb5xxRatioHigh: {threshold: 0.02, for: 10m, severity: page}
      LbscrapeCloudWatchCostOverBudget: {threshold: 250}
      ClassicElbSpillover: {enabled: false}
    dashboards: {refresh: 1m, time_from: now-6h, tags: [edge]}
    kubernetes: {namespace: monitoring, labels: {release: kube-prometheus-stack}}

The whole file is checked before anything is written; an error is one ConfigError naming
the file and the entry (`alerts.AlbElb5xxRatioHigh.for`).

The period, settle delay and interval say how late the data arrive (Timing): every default
range derives from them, and a data alert's range shorter than the lag plus two periods,
or not a whole number of periods, is an error.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from dataclasses import replace
from typing import Any

from lbscrape.core import docfile
from lbscrape.mixin.settings import (
    ALERT_DEFAULTS,
    DEFAULT_CONFIG,
    DNS_LABEL,
    LABEL_NAME,
    NO_THRESHOLD,
    OPTION,
    SELF_ALERTS,
    AlertSettings,
    DashboardSettings,
    KubernetesSettings,
    Matcher,
    MixinConfig,
    OwnerRef,
    Timing,
    format_duration,
    parse_duration,
    parse_owner,
    parse_selector,
)

__all__ = [
    "DEFAULT_CONFIG", "AlertSettings", "Matcher", "MixinConfig", "OwnerRef", "from_doc", "load",
    "parse_duration", "parse_owner", "parse_text",
]


def _where(source: str) -> docfile.Where:
    return docfile.Where(OPTION, source)


def load(path: str) -> MixinConfig:
    """Read and check a --config file. Raises ConfigError."""
    return from_doc(parse_text(docfile.read(path, OPTION), path), path)


def parse_text(text: str, source: str) -> Any:
    """JSON for a .json file, YAML otherwise; a key given twice is an error in both."""
    return docfile.parse(text, _where(source))


_TOP = ("selector", "labels", "group_by", "price_per_1000_metrics", "period", "settle_delay",
        "interval", "clusters", "alerts", "dashboards", "kubernetes")


def from_doc(doc: Any, source: str) -> MixinConfig:
    """A parsed --config document -> MixinConfig over the defaults."""
    err = _where(source)
    if doc is None:
        return replace(DEFAULT_CONFIG, source=source)
    d = _mapping(doc, "", _TOP, err)
    selector: tuple[Matcher, ...] = ()
    if "selector" in d:
        try:
            selector = parse_selector(_str(d["selector"], "selector", err))
        except ValueError as e:
            err.fail("", str(e))
    price = d.get("price_per_1000_metrics", DEFAULT_CONFIG.price_per_1000_metrics)
    if isinstance(price, bool) or not isinstance(price, int | float) or price < 0:
        err.fail("price_per_1000_metrics", "must be a number of US dollars >= 0, e.g. 0.01")
    timing = MixinConfig(
        period=_minutes(d.get("period", DEFAULT_CONFIG.period), "period", err),
        settle_delay=_duration(d.get("settle_delay", DEFAULT_CONFIG.settle_delay),
                               "settle_delay", err),
        interval=_minutes(d.get("interval", DEFAULT_CONFIG.interval), "interval", err))
    return replace(
        timing,
        selector=selector,
        labels=_labels(d.get("labels"), "labels", err),
        group_by=tuple(_label_name(x, f"group_by[{i}]", err)
                       for i, x in enumerate(_list(d.get("group_by"), "group_by", err))),
        price_per_1000_metrics=float(price),
        clusters=tuple(_str(x, f"clusters[{i}]", err)
                       for i, x in enumerate(_list(d.get("clusters"), "clusters", err))),
        alerts=_alerts(d.get("alerts"), timing.timing, err),
        dashboards=_dashboards(d.get("dashboards"), err),
        kubernetes=_kubernetes(d.get("kubernetes"), err),
        source=source,
    )


def _alerts(doc: Any, timing: Timing, err: docfile.Where) -> dict[str, AlertSettings]:
    out = dict(ALERT_DEFAULTS)
    if doc is None:
        return out
    for name, section in _mapping(doc, "alerts", ALERT_DEFAULTS, err).items():
        out[name] = _alert(name, section, timing, err)
    return out


def _range(name: str, value: Any, t: Timing, err: docfile.Where) -> str:
    where = f"alerts.{name}.range"
    text = _duration(value, where, err)
    seconds = parse_duration(text)
    if name in SELF_ALERTS:
        if seconds < t.min_self_range:
            err.fail(where, f"{text} is too short: lbscrape runs every "
                     f"{format_duration(t.interval)} (interval), so a range under two "
                     f"intervals often holds no run; use at least "
                     f"{format_duration(t.min_self_range)}")
        return text
    if seconds < t.min_data_range:
        err.fail(where, f"{text} is too short: the newest {format_duration(t.lag)} of "
                 "data are not written yet (settle_delay + period + interval), so use at "
                 f"least {format_duration(t.min_data_range)} (that plus two periods)")
    if seconds % t.period:
        err.fail(where, f"{text} is not a whole number of periods ({format_duration(t.period)}"
                 f"): a sum over it would count part of a period; e.g. "
                 f"{format_duration(-(-seconds // t.period) * t.period)}")
    return text


def _alert(name: str, doc: Any, t: Timing, err: docfile.Where) -> AlertSettings:
    where = f"alerts.{name}"
    base = ALERT_DEFAULTS[name]
    keys = ["for", "severity", "range", "enabled", "labels"]
    if name not in NO_THRESHOLD:
        keys.append("threshold")
    if base.min_traffic is not None:
        keys.append("min_traffic")
    d = _mapping(doc if doc is not None else {}, where, keys, err)
    a = base
    if "threshold" in d:
        a = replace(a, threshold=_number(d["threshold"], f"{where}.threshold", err))
    if "min_traffic" in d:
        a = replace(a, min_traffic=_number(d["min_traffic"], f"{where}.min_traffic", err))
    if "for" in d:
        a = replace(a, for_=_duration(d["for"], f"{where}.for", err))
    if "range" in d:
        a = replace(a, range=_range(name, d["range"], t, err))
    if "severity" in d:
        a = replace(a, severity=_str(d["severity"], f"{where}.severity", err))
    if "enabled" in d:
        if not isinstance(d["enabled"], bool):
            err.fail(f"{where}.enabled", "must be true or false")
        a = replace(a, enabled=d["enabled"])
    if "labels" in d:
        a = replace(a, labels=_labels(d["labels"], f"{where}.labels", err))
    return a


def _dashboards(doc: Any, err: docfile.Where) -> DashboardSettings:
    base = DashboardSettings()
    if doc is None:
        return base
    d = _mapping(doc, "dashboards", ("refresh", "time_from", "tags", "timezone"), err)
    tags = tuple(_str(t, f"dashboards.tags[{i}]", err)
                 for i, t in enumerate(_list(d.get("tags"), "dashboards.tags", err)))
    return DashboardSettings(
        refresh=_str(d.get("refresh", base.refresh), "dashboards.refresh", err),
        time_from=_str(d.get("time_from", base.time_from), "dashboards.time_from", err),
        # The lbscrape tag stays first: the dashboards' links to each other use it.
        tags=base.tags + tuple(t for t in tags if t not in base.tags),
        timezone=_str(d.get("timezone", base.timezone), "dashboards.timezone", err),
    )


def _kubernetes(doc: Any, err: docfile.Where) -> KubernetesSettings:
    base = KubernetesSettings()
    if doc is None:
        return base
    d = _mapping(doc, "kubernetes", ("namespace", "labels", "folder"), err)
    namespace = _str(d.get("namespace", base.namespace), "kubernetes.namespace", err)
    if not DNS_LABEL.fullmatch(namespace):
        err.fail("kubernetes.namespace", f"{namespace!r} is not a Kubernetes namespace")
    return KubernetesSettings(
        namespace=namespace,
        labels=_labels(d.get("labels"), "kubernetes.labels", err, k8s=True),
        folder=_str(d.get("folder", base.folder), "kubernetes.folder", err),
    )


def _mapping(value: Any, where: str, allowed: Iterable[str], err: docfile.Where) -> dict[str, Any]:
    allowed = list(allowed)
    if not isinstance(value, dict):
        err.fail(where, "must be a mapping" + (f" with {', '.join(allowed)}"
                                              if len(allowed) < 8 else ""))
    for key in value:
        if key not in allowed:
            found = difflib.get_close_matches(str(key), allowed, n=1, cutoff=0.6)
            hint = f" (did you mean {found[0]}?)" if found else ""
            known = f"; allowed: {', '.join(allowed)}" if len(allowed) < 10 or not found else ""
            err.fail(f"{where}.{key}" if where else str(key),
                     f"unknown key {key!r}{hint}{known}")
    return value


def _list(value: Any, where: str, err: docfile.Where) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        err.fail(where, "must be a list")
    return value


def _str(value: Any, where: str, err: docfile.Where) -> str:
    if not isinstance(value, str) or not value:
        err.fail(where, "must be a non-empty string")
    return value


def _minutes(value: Any, where: str, err: docfile.Where) -> str:
    text = _duration(value, where, err)
    if parse_duration(text) % 60:
        what = "lbscrape's --period is" if where == "period" else "a CronJob schedule is"
        err.fail(where, f"{text} is not a multiple of 60s, as {what}")
    return text


def _number(value: Any, where: str, err: docfile.Where) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        err.fail(where, "must be a number")
    return float(value)


def _duration(value: Any, where: str, err: docfile.Where) -> str:
    text = _str(value, where, err)
    try:
        parse_duration(text)
    except ValueError as e:
        err.fail(where, str(e))
    return text


def _label_name(value: Any, where: str, err: docfile.Where) -> str:
    if not isinstance(value, str) or not LABEL_NAME.fullmatch(value) or \
            value.startswith("__"):
        err.fail(where, f"{value!r} is not a Prometheus label name")
    return value


_K8S_LABEL_KEY = re.compile(r"([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]*"
                            r"[A-Za-z0-9])?")
_K8S_LABEL_VALUE = re.compile(r"([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?")


def _labels(value: Any, where: str, err: docfile.Where, k8s: bool = False
            ) -> tuple[tuple[str, str], ...]:
    if value is None:
        return ()
    if not isinstance(value, dict):
        err.fail(where, "must be a mapping of label names to values, e.g. {team: payments}")
    out = []
    for k, v in value.items():
        if isinstance(v, bool) or not isinstance(v, str | int | float):
            err.fail(f"{where}.{k}", "must be a string")
        text = str(v)
        if k8s:
            if not isinstance(k, str) or not _K8S_LABEL_KEY.fullmatch(k):
                err.fail(f"{where}.{k}", f"{k!r} is not a Kubernetes label key")
            if not _K8S_LABEL_VALUE.fullmatch(text):
                err.fail(f"{where}.{k}", f"{text!r} is not a Kubernetes label value")
        else:
            _label_name(k, f"{where}.{k}", err)
            if k in ("alertname", "severity"):
                err.fail(f"{where}.{k}", f"{k} is set by the alert itself; use "
                         "alerts.NAME.severity for the severity")
        out.append((str(k), text))
    return tuple(out)
