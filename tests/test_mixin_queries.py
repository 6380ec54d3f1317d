"""Every query of the mixin against real data: a real `lbscrape run` over the test world
(moto in server mode, the fake Kubernetes API, Debian's Prometheus 2.42), plus synthetic
self-telemetry samples (issue 13's series, not written by `run` yet) remote-written into
the same Prometheus.

The world: four ALBs (shop/ingress/web with a 5xx burst and an unhealthy target, the
healthy pay/ingress/api, the IngressGroup "shared" of two Ingresses in two namespaces,
shop/ingress/batch with traffic in one minute of ten only), an NLB (shop/service/db) and
a classic ELB (shop/service/legacy), every metric of the default catalog published for
each, 36 minutes of it. Then, with the template variables filled in as Grafana would:
every panel query and variable parses and returns data, the rates are exact (each minute
counted once, see `offset` in queries.py; idle minutes count as no traffic), the 5xx
alerts return the burst's owner and nothing else, and --owner narrows every query.
"""

from __future__ import annotations

import json
import os
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from click.testing import CliRunner

from lbscrape.cli import cli
from lbscrape.core.catalog import DEFAULT
from lbscrape.core.metrics_config import tailor
from lbscrape.core.model import Sample, Series
from lbscrape.mixin import Bundle, build
from lbscrape.mixin.config import parse_owner
from lbscrape.prom.remote_write import encode
from tests import world
from tests.fakekube import FakeKube

CLUSTER = "test-cluster"
REGION = "us-east-1"
MINUTES = 36
GROUP = "alb.ingress.kubernetes.io/group.name"
TGB = "elbv2.k8s.aws/v1beta1"
NET = "networking.k8s.io/v1"
INTERVAL = 60


@dataclass
class World:
    prom: world.Prometheus
    end: int
    """The run's window end: the newest sample is stamped end - 60."""
    lbs: dict[str, world.SeededLb]
    tgs: dict[str, world.SeededTg]
    section: str = "setup"
    figures: dict[str, dict[str, int]] = field(default_factory=dict)

    def count(self, data: bool, error: bool = False) -> None:
        f = self.figures.setdefault(self.section, {"queries": 0, "with_data": 0, "errors": 0})
        f["queries"] += 1
        f["with_data"] += data
        f["errors"] += error

    def query(self, expr: str, **params: Any) -> list[dict[str, Any]]:
        """Instant (or, with start/end/step, range) query; counts it in the figures."""
        path = "query_range" if "step" in params else "query"
        params.setdefault("time", time.time()) if path == "query" else None
        url = f"{self.prom.url}/api/v1/{path}?" + urllib.parse.urlencode(
            {"query": expr, **params})
        try:
            with urllib.request.urlopen(url, timeout=20) as r:
                doc = json.load(r)
        except urllib.error.HTTPError as e:
            self.count(False, error=True)
            raise AssertionError(f"{expr}\n{e.read().decode()}") from None
        result: list[dict[str, Any]] = doc["data"]["result"]
        self.count(bool(result))
        return result

    def series(self, expr: str) -> list[dict[str, Any]]:
        """The range the dashboards show: 25 minutes to the window end, one-minute steps
        aligned to the minute, as Grafana aligns them."""
        return self.query(expr, start=self.end - 25 * 60, end=self.end, step=INTERVAL)

    def label_values(self, label: str, match: str) -> list[str]:
        url = f"{self.prom.url}/api/v1/label/{label}/values?" + urllib.parse.urlencode(
            {"match[]": match, "start": self.end - 3600, "end": time.time()})
        with urllib.request.urlopen(url, timeout=20) as r:
            values: list[str] = json.load(r)["data"]
        self.count(bool(values))
        return values


def fill(expr: str, values: dict[str, str] | None = None, interval: int = INTERVAL) -> str:
    """Template variables as Grafana sends them: a one-minute interval, All as `.*`."""
    expr = expr.replace("$__interval_ms", str(interval * 1000))
    expr = expr.replace("$__interval", f"{interval}s")
    return re.sub(r"\$(\w+)", lambda m: (values or {}).get(m.group(1), ".*"), expr)


# --- the world -------------------------------------------------------------------------------

BURST = 15  # minutes of 5xx at the end of web's traffic
REQUESTS = {"web": 1000.0, "api": 800.0, "shared": 600.0}
IDLE = {"batch": 600.0}
"""Requests in one minute of ten (minute % 10 == 0), none in the others: 1 a second."""
ALBS = {**REQUESTS, **IDLE}


def _alb_values(name: str, minute: int, metric: str) -> float | None:
    """One datapoint of an ALB metric; None: not published (a sparse counter at 0, or
    anything but ConsumedLCUs in a minute without traffic)."""
    if name in IDLE and minute % 10 and metric != "ConsumedLCUs":
        return None
    burst = name == "web" and minute >= MINUTES - BURST
    req = ALBS[name]
    return {
        "RequestCount": req, "HTTPCode_Target_2XX_Count": req * 0.95,
        "HTTPCode_Target_3XX_Count": req * 0.01, "HTTPCode_Target_4XX_Count": req * 0.02,
        "HTTPCode_ELB_4XX_Count": 3.0, "HTTPCode_ELB_5XX_Count": 120.0 if burst else None,
        "HTTPCode_Target_5XX_Count": 150.0 if burst else None,
        "TargetResponseTime": 0.05, "ProcessedBytes": req * 2000, "ConsumedLCUs": 0.5,
        "ClientTLSNegotiationErrorCount": 1.0 if minute % 5 == 0 else None,
    }.get(metric)


def _tg_values(tg: str, metric: str) -> float | None:
    req = 500.0
    return {"RequestCount": req, "RequestCountPerTarget": req / 2,
            "HTTPCode_Target_2XX_Count": req * 0.97, "HTTPCode_Target_3XX_Count": 1.0,
            "HTTPCode_Target_4XX_Count": req * 0.02, "TargetResponseTime": 0.04,
            "HealthyHostCount": 2.0, "UnHealthyHostCount": 1.0 if tg == "web-tg" else 0.0,
            }.get(metric)


NLB_VALUES = {"ActiveFlowCount": 50.0, "NewFlowCount": 300.0, "ProcessedBytes": 1e6,
              "TCP_Client_Reset_Count": 2.0, "TCP_ELB_Reset_Count": 0.0,
              "TCP_Target_Reset_Count": 1.0, "ConsumedLCUs": 0.1}
CLB_VALUES = {"RequestCount": 400.0, "Latency": 0.03, "HTTPCode_ELB_4XX": 1.0,
              "HTTPCode_Backend_2XX": 390.0, "HTTPCode_Backend_3XX": 5.0,
              "HTTPCode_Backend_4XX": 5.0, "SurgeQueueLength": 0.0, "HealthyHostCount": 2.0,
              "UnHealthyHostCount": 0.0}


def seed(aws: world.Aws, kube: FakeKube, minutes: list[int]
         ) -> tuple[dict[str, world.SeededLb], dict[str, world.SeededTg]]:
    kube.put(NET, "ingressclasses", world.ingress_class())
    lbs = {n: aws.create_lb(f"k8s-{n}-0123456789") for n in ALBS}
    lbs["db"] = aws.create_lb("k8s-shop-db-0123456789", "network")
    lbs["legacy"] = aws.create_classic("a0123456789abcdef0123456789abcde")
    kube.put(NET, "ingresses", world.ingress("shop", "web", lbs["web"].dns_name))
    kube.put(NET, "ingresses", world.ingress("pay", "api", lbs["api"].dns_name))
    kube.put(NET, "ingresses", world.ingress("shop", "batch", lbs["batch"].dns_name))
    for ns, name in (("shop", "a"), ("pay", "b")):
        kube.put(NET, "ingresses", world.ingress(ns, name, lbs["shared"].dns_name,
                                                 annotations={GROUP: "shared"}))
    kube.put("v1", "services", world.service("shop", "db", lbs["db"].dns_name,
                                             lb_class="service.k8s.aws/nlb"))
    kube.put("v1", "services", world.service("shop", "legacy", lbs["legacy"].dns_name))
    tgs = {"web-tg": aws.create_tg(lbs["web"], "k8s-shop-web-tg"),
           "api-tg": aws.create_tg(lbs["api"], "k8s-pay-api-tg"),
           "shared-tg": aws.create_tg(lbs["shared"], "k8s-shared-tg"),
           "db-tg": aws.create_tg(lbs["db"], "k8s-shop-db-tg", port=5432)}
    for ns, svc, tg in (("shop", "web", "web-tg"), ("pay", "api", "api-tg"),
                        ("shop", "db", "db-tg")):
        kube.put(TGB, "targetgroupbindings", world.target_group_binding(
            ns, svc, tgs[tg].arn, svc, 80))
    for name in ALBS:
        for e in DEFAULT.specs("application"):
            pts = [(ts, v) for i, ts in enumerate(minutes)
                   if (v := _alb_values(name, i, e.metric)) is not None]
            if pts:
                aws.put(lbs[name], e.metric, pts)
    for tg, lb in (("web-tg", "web"), ("api-tg", "api"), ("shared-tg", "shared"),
                   ("db-tg", "db")):
        lb_type = "network" if lb == "db" else "application"
        for e in DEFAULT.specs(lb_type, "target_group"):
            if (v := _tg_values(tg, e.metric)) is not None:
                aws.put_tg(lbs[lb], tgs[tg], e.metric, [(ts, v) for ts in minutes])
    for lb, values in (("db", NLB_VALUES), ("legacy", CLB_VALUES)):
        for metric, v in values.items():
            aws.put(lbs[lb], metric, [(ts, v) for ts in minutes])
    return lbs, tgs


# --- synthetic self-telemetry (issue 13's contract) ------------------------------------------

def _series(name: str, labels: dict[str, str], points: dict[int, float]) -> Series:
    return Series(tuple(sorted({"__name__": name, "region": REGION, **labels}.items())),
                  tuple(Sample(ts * 1000, v) for ts, v in sorted(points.items())))


def self_metrics(end: int, lbs: dict[str, world.SeededLb]) -> list[Series]:
    """self-ok runs well (but shop/service/db's data lags); self-failing has failed for 20
    minutes, losing samples as out_of_bounds and requesting 5,000 metrics a run;
    self-gone stopped 20 minutes ago. A run a minute, its end stamped 17s past it."""
    runs = [end - 60 * k + 17 for k in range(40, -1, -1)]
    recent = runs[-20:]
    out = []
    for cluster, times in (("self-ok", runs), ("self-failing", runs), ("self-gone", runs[:21])):
        c = {"cluster": cluster}
        bad = cluster == "self-failing"
        fixed = {"lbscrape_run_duration_seconds": 0.4, "lbscrape_run_owners_unresolved": 0.0,
                 "lbscrape_run_samples_written": 300.0, "lbscrape_run_samples_zero_filled": 20.0,
                 "lbscrape_run_getmetricdata_calls": 1.0,
                 "lbscrape_run_cloudwatch_metrics_requested": 5000.0 if bad else 37.0}
        out += [_series(n, c, {t: v for t in times}) for n, v in fixed.items()]
        out.append(_series("lbscrape_run_success", c,
                           {t: 0.0 if bad and t in recent else 1.0 for t in times}))
        out.append(_series("lbscrape_run_exit_code", c,
                           {t: 1.0 if bad and t in recent else 0.0 for t in times}))
        out.append(_series("lbscrape_build_info", {**c, "version": "0.1.0"},
                           {t: 1.0 for t in times}))
        for state, v in (("found", 5.0), ("written", 5.0), ("failed", 0.0)):
            out.append(_series("lbscrape_run_load_balancers", {**c, "state": state},
                               {t: v for t in times}))
        out.append(_series("lbscrape_run_samples_rejected", {**c, "reason": "other"},
                           {t: 0.0 for t in times}))
        if bad:
            out.append(_series("lbscrape_run_samples_rejected", {**c, "reason": "out_of_bounds"},
                               {t: 5.0 for t in recent}))
    owners = {"web": {"namespace": "shop", "ingress": "web"},
              "api": {"namespace": "pay", "ingress": "api"},
              "shared": {"ingress_group": "shared"},
              "db": {"namespace": "shop", "service": "db"},
              "legacy": {"namespace": "shop", "service": "legacy"}}
    for name, labels in owners.items():
        lb = lbs[name]
        lag = {t: 200.0 + (60.0 * (i - 20) if name == "db" and i > 20 else 0.0)
               for i, t in enumerate(runs)}
        out.append(_series("lbscrape_load_balancer_lag_seconds", {
            "cluster": "self-ok", "load_balancer_name": lb.name,
            "load_balancer": lb.dimension, **labels}, lag))
    return out


def remote_write(prom: world.Prometheus, series: list[Series]) -> None:
    req = urllib.request.Request(prom.write_url, data=encode(series), method="POST", headers={
        "Content-Encoding": "snappy", "Content-Type": "application/x-protobuf",
        "X-Prometheus-Remote-Write-Version": "0.1.0"})
    with urllib.request.urlopen(req, timeout=10) as r:
        assert r.status in (200, 204)


@pytest.fixture(scope="module")
def w(moto_server) -> Iterator[World]:
    """One world and one run for the module; conftest's aws_env is per test, so the same
    environment is set here for the run."""
    with pytest.MonkeyPatch.context() as mp:
        for var, value in (("AWS_ENDPOINT_URL", moto_server), ("AWS_ACCESS_KEY_ID", "testing"),
                           ("AWS_SECRET_ACCESS_KEY", "testing"), ("AWS_DEFAULT_REGION", REGION),
                           ("AWS_CONFIG_FILE", "/dev/null"),
                           ("AWS_SHARED_CREDENTIALS_FILE", "/dev/null"),
                           ("AWS_EC2_METADATA_DISABLED", "true")):
            mp.setenv(var, value)
        for var in ("AWS_PROFILE", "KUBERNETES_SERVICE_HOST", *(
                v for v in os.environ if v.startswith("LBSCRAPE_"))):
            mp.delenv(var, raising=False)
        urllib.request.urlopen(urllib.request.Request(f"{moto_server}/moto-api/reset",
                                                      method="POST")).close()
        prom, kube = world.Prometheus().start(), FakeKube()
        kube.start()
        try:
            kubeconfig = kube.write_kubeconfig(f"{prom.dir}/kubeconfig")
            now = int(time.time())
            minutes = [now // 60 * 60 - 60 * i for i in range(MINUTES, -1, -1)]
            lbs, tgs = seed(world.Aws(REGION), kube, minutes)
            result = CliRunner().invoke(cli, [
                "run", "--cluster", CLUSTER, "--region", REGION, "--kubeconfig", kubeconfig,
                "--remote-write-url", prom.write_url, "--now", str(now),
                "--initial-lookback", "35m", "--log-format", "json"], catch_exceptions=False)
            assert result.exit_code == 0, result.output + result.stderr
            assert "lbs_written=6" in result.stderr and "target_groups=4" in result.stderr
            end = (now - 120) // 60 * 60
            remote_write(prom, self_metrics(end, lbs))
            got = World(prom, end, lbs, tgs)
            yield got
            print("\nmixin query test:", ", ".join(
                f"{k}: {f['queries']} queries, {f['with_data']} with data, {f['errors']} errors"
                for k, f in got.figures.items()))
        finally:
            prom.cleanup()
            kube.stop()


# --- the tests -------------------------------------------------------------------------------

def _run_panels(w: World, bundle: Bundle) -> list[tuple[str, str, str]]:
    """(dashboard, panel, legend) of every target that returned nothing."""
    empty = []
    for d in bundle.dashboards:
        for panel in d.panels:
            for t in panel.targets:
                res = w.query(fill(t.expr)) if t.instant else w.series(fill(t.expr))
                if not res:
                    empty.append((d.key, panel.title, t.legend))
    return empty


def test_every_panel_query_parses_and_returns_data(w):
    w.section = "panels"
    bundle = build(DEFAULT)
    assert [d.key for d in bundle.dashboards] == [
        "alb", "nlb", "classic", "target-groups", "health"]
    assert _run_panels(w, bundle) == []


def test_rates_count_each_minute_once_on_minute_aligned_steps(w):
    w.section = "rates"
    rows = {p.title: p for d in build(DEFAULT).dashboards if d.key == "alb"
            for p in d.panels}
    # Every step of the 25 minutes, both ends included: one minute's count over 60s. On
    # Prometheus 2.x a plain [1m] range would hold two samples at these steps.
    got = {r["metric"].get("ingress") or r["metric"]["ingress_group"]:
           {round(float(v), 6) for _, v in r["values"]}
           for r in w.series(fill(rows["Requests per second"].targets[0].expr))}
    # batch's minutes with traffic: 600 in that minute (the idle ones have no point).
    assert got == {n: {round(v / 60, 6)} for n, v in ALBS.items()}
    ratio = {r["metric"]["ingress"]: [float(v) for _, v in r["values"]]
             for r in w.series(fill(rows["5xx ratio"].targets[0].expr))
             if r["metric"].get("ingress") == "web"}
    assert ratio["web"][-5:] == [pytest.approx(0.12)] * 5  # in the burst
    assert ratio["web"][:5] == [0.0] * 5  # before it: zero-filled, so 0 and not a gap


def test_variables_list_the_owners_and_all_keeps_ingress_groups(w):
    w.section = "variables"
    boards = {d.key: d for d in build(DEFAULT).dashboards}
    for d in boards.values():
        for name, query in d.variables:
            m = re.fullmatch(r"label_values\((.*), (\w+)\)", query)
            assert m and m.group(2) == name
            assert w.label_values(name, fill(m.group(1))), (d.key, name)
    alb = dict(boards["alb"].variables)
    assert w.label_values("namespace", fill(alb["namespace"][13:-12])) == ["pay", "shop"]
    assert w.label_values("ingress_group", fill(alb["ingress_group"][13:-16])) == ["shared"]
    requests = next(p for p in boards["alb"].panels if p.title == "Requests per second")
    owners = [sorted(r["metric"].items()) for r in w.series(fill(requests.targets[0].expr))]
    assert len(owners) == 4  # web, api, batch and the IngressGroup (no namespace) under All
    only_shop = w.series(fill(requests.targets[0].expr, {"namespace": "shop"}))
    assert sorted(r["metric"]["ingress"] for r in only_shop) == ["batch", "web"]
    group = w.series(fill(requests.targets[0].expr, {"ingress_group": "shared"}))
    assert [r["metric"]["ingress_group"] for r in group] == ["shared"]


def test_variables_list_an_idle_owner_without_request_count(w):
    """Over minutes without traffic only sparse counters are silent: the owner variables
    list from RequestCount and the metrics CloudWatch publishes every minute, so batch
    stays in the dropdown over a time range of its idle minutes (31 to 33), and still
    does when --metrics-config drops RequestCount. Which series have samples in those
    minutes is asked in PromQL: Prometheus's label APIs answer per chunk (hours)."""
    w.section = "variables"

    def owners(*names: str) -> set[str]:
        return {x["metric"].get("ingress", "") for n in names for x in w.query(
            f"group by (ingress) (count_over_time({n}[3m]))", time=w.end - 59)}

    no_requests = tailor({"application": {"drop": [{"metric": "RequestCount"}]}}, "m.yaml")
    for catalog in (DEFAULT, no_requests):
        alb = next(d for d in build(catalog).dashboards if d.key == "alb")
        query = dict(alb.variables)["ingress"]
        named = re.findall(r'__name__=~"([^"]+)"', query)
        names = named[0].split("|") if named else [query[13:].split("{")[0]]
        assert "alb_consumed_lcus_average" in names
        assert "alb_request_count_sum" in names or catalog is no_requests
        assert "batch" in owners(*names), query
    # What the variables listed from before, without RequestCount: a sparse counter.
    before = "alb_http_code_elb_4xx_count_sum"
    assert owners(before) == {"web", "api", ""}  # batch gone ("": the IngressGroup's)
    assert "batch" in w.label_values("ingress", before)  # there in its busy minutes


def _alerts(w: World, bundle: Bundle) -> dict[str, list[dict[str, str]]]:
    return {r["alert"]: sorted((x["metric"] for x in w.query(r["expr"])),
                               key=lambda m: sorted(m.items())) for r in bundle.alerts}


def test_alert_expressions_return_the_burst_owner_and_nothing_else(w):
    w.section = "alerts"
    got = _alerts(w, build(DEFAULT))
    web = {"cluster": CLUSTER, "namespace": "shop", "ingress": "web",
           "load_balancer_name": w.lbs["web"].name}
    web_tg = {**web, "target_group": w.tgs["web-tg"].name, "target_namespace": "shop",
              "target_service": "web"}
    db = {"cluster": "self-ok", "region": REGION, "namespace": "shop", "service": "db",
          "load_balancer_name": w.lbs["db"].name}
    failing = {"cluster": "self-failing", "region": REGION}
    expected = {
        "AlbElb5xxRatioHigh": [web], "AlbTarget5xxRatioHigh": [web],
        "AlbUnhealthyTargets": [web_tg],
        "LbscrapeNotRunning": [{"cluster": "self-gone", "region": REGION}],
        "LbscrapeRunFailing": [failing], "LbscrapeDataLagging": [db],
        "LbscrapeSamplesRejected": [{**failing, "reason": "out_of_bounds"}],
        "LbscrapeCloudWatchCostOverBudget": [failing],
    }
    assert got == {name: expected.get(name, []) for name in got}
    assert len(got) == 21


def test_recording_rules_parse_and_record_data(w):
    w.section = "records"
    bundle = build(DEFAULT)
    empty = [r["record"] for r in bundle.records if not w.query(r["expr"])]
    assert empty == []
    rate = next(r for r in bundle.records if r["record"] == "owner:alb_request_count:rate10m")
    got = {x["metric"].get("ingress") or x["metric"]["ingress_group"]: float(x["value"][1])
           for x in w.query(rate["expr"])}
    # batch: 600 requests in the one minute of ten with traffic, so 1 a second.
    assert got == {**{n: pytest.approx(v / 60) for n, v in REQUESTS.items()}, "batch": 1.0}


def test_rates_are_exact_over_minutes_without_traffic(w):
    """CloudWatch writes nothing for an idle minute (and zero-fill nothing either): a rate
    must count it as no traffic. The formula before, the mean of the samples there are
    over one period, said 10 requests a second for batch's 1; the sum says 1."""
    w.section = "idle minutes"
    batch = 'alb_request_count_sum{ingress="batch"}'
    old = f"sum(avg_over_time({batch}[10m] offset 4m1ms)) / 60"
    assert [float(x["value"][1]) for x in w.query(old)] == [10.0]
    rule = next(r for r in build(DEFAULT).records
                if r["record"] == "owner:alb_request_count:rate10m")
    assert [float(x["value"][1]) for x in w.query(rule["expr"])
            if x["metric"].get("ingress") == "batch"] == [1.0]
    # A panel zoomed out to a 10m interval: every interval holds one busy minute. Steps
    # aligned to the interval, as Grafana aligns them, up to where the data are complete
    # (the panel's timeShift of the lag puts its end there).
    requests = next(p for d in build(DEFAULT).dashboards if d.key == "alb"
                    for p in d.panels if p.title == "Requests per second")
    start, end = -(-(w.end - 25 * 60) // 600) * 600, w.end // 600 * 600
    for expr, want in ((fill(requests.targets[0].expr, interval=600), 1.0),
                       (fill(requests.targets[0].expr.replace("sum_over_time", "avg_over_time")
                             .replace("($__interval_ms / 1000)", "60"), interval=600), 10.0)):
        got = [r for r in w.query(expr, start=start, end=end, step=600)
               if r["metric"].get("ingress") == "batch"]
        assert len(got) == 1 and len(got[0]["values"]) >= 2
        assert {float(v) for _, v in got[0]["values"]} == {want}, expr


OWNERS = {  # owner: (its labels, dashboards with data)
    "shop/ingress/web": ({"namespace": "shop", "ingress": "web"}, {"alb", "target-groups"}),
    "ingress-group/shared": ({"ingress_group": "shared"}, {"alb", "target-groups"}),
    "shop/service/db": ({"namespace": "shop", "service": "db"}, {"nlb", "target-groups"}),
    # A Service's mixin holds the NLB and the classic dashboards: it cannot know which
    # the Service gets. This one is a classic ELB's, which has no target groups.
    "shop/service/legacy": ({"namespace": "shop", "service": "legacy"}, {"classic"}),
}


@pytest.mark.parametrize("owner", OWNERS)
def test_owner_mode_narrows_every_query_to_the_owner(w, owner):
    w.section = "owner mode"
    labels, with_data = OWNERS[owner]
    bundle = build(DEFAULT, owner=parse_owner(owner))
    tgs = {tg.name for name, tg in w.tgs.items() if name.startswith(
        (labels.get("ingress") or labels.get("service") or labels["ingress_group"]) + "-")}
    for d in bundle.dashboards:
        for panel in d.panels:
            for t in panel.targets:
                res = w.series(fill(t.expr))
                assert bool(res) == (d.key in with_data), (d.key, panel.title)
                for r in res:  # by the owner's labels, or by its own target groups
                    assert labels.items() <= r["metric"].items() if d.key != "target-groups" \
                        else r["metric"]["target_group"] in tgs, (panel.title, r["metric"])
    fired = {name for name, got in _alerts(w, bundle).items() if got}
    assert fired == {"shop/ingress/web": {"AlbElb5xxRatioHigh", "AlbTarget5xxRatioHigh",
                                          "AlbUnhealthyTargets"},
                     "shop/service/db": {"LbscrapeDataLagging"}}.get(owner, set())
