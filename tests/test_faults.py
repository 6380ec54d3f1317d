"""Fault injection: many consecutive runs of the real lbscrape process against moto, the
fake Kubernetes API and a real Prometheus, with faults injected at random between and
inside them, while CloudWatch data keeps arriving and unsettled minutes keep changing.
At the end Prometheus must hold exactly CloudWatch's settled datapoints, plus a 0 for each
minute in which the sparse 5xx counter had no datapoint but RequestCount did (zero-fill,
on by default): none missing, none extra, none changed. One fault is another writer that
writes a sample of one series ahead of lbscrape (as a backfill or a second lbscrape
would): that sample stays, exactly that series' minutes between its newest sample and
the foreign one are lost (refused, and reported), nothing else.

    scripts/test tests/test_faults.py -s --fault-runs 200 --fault-seed 0
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime

import boto3

from lbscrape.core.catalog import KINDS, KNOWN, prom_name
from tests import world
from tests.fakereceiver import push
from tests.faultproxy import FaultProxy, Rule

SETTLE = 120
THROTTLE = dict(status=400, body=json.dumps({"__type": "Throttling",
                                             "message": "Rate exceeded"}).encode(),
                headers={"Content-Type": "application/x-amz-json-1.0",
                         "x-amzn-query-error": "Throttling;Sender"})
FAULTS = ["none", "cw_throttle", "cw_503", "rw_503", "rw_timeout", "rw_reset",
          "rw_answer_lost", "kube_409", "kube_500", "kill", "foreign"]


def gmd(r):
    return r.mentions("GetMetricData")


def post(r):
    return r.method == "POST"


def test_exactly_once_under_faults(aws, kube, moto_server, request, tmp_path):
    runs = request.config.getoption("--fault-runs")
    seed = request.config.getoption("--fault-seed") or random.randrange(1, 1 << 30)
    rng = random.Random(seed)
    prom = world.Prometheus().start()
    cw_proxy, rw_proxy = FaultProxy(moto_server), FaultProxy(prom.url)
    cw_proxy.start()
    rw_proxy.start()
    try:
        _run_world(aws, kube, prom, cw_proxy, rw_proxy, runs, seed, rng, moto_server, tmp_path)
    finally:
        cw_proxy.stop()
        rw_proxy.stop()
        prom.cleanup()


def _run_world(aws, kube, prom, cw_proxy, rw_proxy, runs, seed, rng, moto_server, tmp_path):
    kube.put("networking.k8s.io/v1", "ingressclasses", world.ingress_class())
    lbs = [aws.create_lb(f"k8s-team{i}-web-0123456789") for i in range(3)]
    lbs.append(aws.create_lb("k8s-team9-db-0123456789", "network"))
    for i, lb in enumerate(lbs[:3]):
        kube.put("networking.k8s.io/v1", "ingresses", world.ingress(f"team{i}", "web", lb.dns_name))
    kube.put("v1", "services", world.service("team9", "db", lbs[3].dns_name,
                                             lb_class="service.k8s.aws/nlb"))
    metrics = {"application": ["RequestCount", "HTTPCode_Target_5XX_Count"],
               "network": ["NewFlowCount"]}

    real_now = int(time.time())
    t0 = real_now - (runs + 5) * 60
    put_until = t0 - 20 * 60  # data starts 20 minutes before the first run

    def arrive(clock):
        """New minutes up to `clock`, and revisions of minutes not yet settled."""
        nonlocal put_until
        for lb in lbs:
            for metric in metrics[lb.type]:
                points = []
                for m in range(put_until, clock // 60 * 60 + 1, 60):
                    if metric.startswith("HTTPCode") and rng.random() < 0.6:
                        continue  # sparse, as CloudWatch publishes it
                    points.append((m, float(rng.randint(1, 500))))
                for m in range(clock // 60 * 60 - 180, clock // 60 * 60 + 1, 60):
                    if m + 60 > clock - SETTLE and m < put_until and rng.random() < 0.5:
                        points.append((m + 1, float(rng.randint(1, 9))))  # a revision
                aws.put(lb, metric, points)
        put_until = max(put_until, clock // 60 * 60 + 60)

    env = {**os.environ, "AWS_ENDPOINT_URL": cw_proxy.url, "LBSCRAPE_LOG_FORMAT": "json"}
    base = [sys.executable, "-m", "lbscrape", "run", "--cluster", "faults", "--region",
            "us-east-1", "--kubeconfig", kube.kubeconfig_path, "--remote-write-url",
            f"{rw_proxy.url}/api/v1/write", "--remote-write-timeout", "1s",
            "--remote-write-retries", "2", "--deadline", "30s"]
    faults, exits = Counter(), Counter()
    cw = boto3.client("cloudwatch", region_name="us-east-1", endpoint_url=moto_server)
    lost: set[tuple[str, int]] = set()  # (LB/series name, ts ms) another writer blocked
    foreign: dict[tuple[str, int], float] = {}  # (LB/series name, ts ms) -> its value
    log = open(tmp_path / "runs.log", "w")  # noqa: SIM115
    clock = t0
    for i in range(runs + 1):
        last = i == runs
        clock = real_now if last else t0 + 60 * i + rng.randint(0, 55)
        arrive(clock)
        # The first run sets where each load balancer starts (its initial lookback), the
        # last one writes the final window: both run clean, everything between does not.
        fault = "none" if last or i == 0 else rng.choice(FAULTS)
        if i == 0:
            first_clock = clock
        faults[fault] += 1
        cw_proxy.rules.clear()
        rw_proxy.rules.clear()
        kube.faults.clear()
        if fault == "cw_throttle":
            cw_proxy.add(Rule(gmd, times=rng.randint(1, 6), **THROTTLE))
        elif fault == "cw_503":
            cw_proxy.add(Rule(gmd, times=rng.randint(1, 6), status=503))
        elif fault == "rw_503":
            rw_proxy.add(Rule(post, times=rng.randint(1, 4), status=503, body=b"busy\n"))
        elif fault == "rw_timeout":
            rw_proxy.add(Rule(post, times=rng.randint(1, 3), delay=1.5))
        elif fault == "rw_reset":
            rw_proxy.add(Rule(post, times=rng.randint(1, 3), reset=True))
        elif fault == "rw_answer_lost":  # Prometheus committed, the answer never came
            rw_proxy.add(Rule(post, times=1, delay=1.5, after=True))
        elif fault == "kube_409":
            kube.inject("PUT", "/configmaps/", 409, times=rng.randint(1, 6))
        elif fault == "kube_500":
            kube.inject(rng.choice(["GET", "PUT", "POST"]), rng.choice(
                ["/configmaps", "/ingresses", "/services"]), 500, times=rng.randint(1, 6))
        elif fault == "foreign":
            lost |= _foreign_write(prom, rng, rng.choice(lbs), clock, foreign)
        proc = subprocess.Popen([*base, "--now", str(clock)], env=env, stdout=log, stderr=log)
        if fault == "kill":
            time.sleep(rng.uniform(0.3, 2.0))
            os.kill(proc.pid, signal.SIGKILL)
        exits[proc.wait(timeout=120)] += 1
        if last:
            assert proc.returncode == 0, (tmp_path / "runs.log").read_text()[-3000:]
    log.close()
    tail = (tmp_path / "runs.log").read_text()[-3000:]

    # CloudWatch's settled truth over the whole period, read straight from moto.
    start = (first_clock - SETTLE) // 60 * 60 - 600
    end = (clock - SETTLE) // 60 * 60
    missing = extra = changed = verified = 0
    for lb in lbs:
        traffic: dict[int, float] = {}
        for metric in metrics[lb.type]:  # the traffic metric first
            truth = _truth(cw, lb, metric, start, end)
            if metric == KINDS[lb.type].traffic:
                traffic = dict(truth)
            elif KNOWN[lb.type][metric].sparse:
                truth = {t: 0.0 for t, v in traffic.items() if v > 0} | truth
            name = prom_name(lb.type, metric, "Sum")
            got = prom.raw(f'{name}{{load_balancer_name="{lb.name}"}}', lookback="3h")
            stored = dict(next(iter(got.values()))) if got else {}
            assert len(got) <= 1
            blocked = {t for key, t in lost if key == f"{lb.name}/{name}"}
            assert not blocked & stored.keys(), "a sample another writer blocked was written"
            for (key, t), value in foreign.items():
                if key == f"{lb.name}/{name}":  # the other writer's sample stays as it wrote it
                    assert stored.pop(t) == value and truth.pop(t) is not None
            missing += len(truth.keys() - stored.keys() - blocked)
            extra += len(stored.keys() - truth.keys())
            changed += sum(1 for t in truth.keys() & stored.keys() if truth[t] != stored[t])
            verified += len(truth) - len(blocked)
    print(f"\nfault injection: seed={seed} runs={runs + 1} faults={dict(sorted(faults.items()))} "
          f"exits={dict(sorted(exits.items()))} samples verified={verified} "
          f"missing={missing} extra={extra} changed={changed} "
          f"lost to another writer={len(lost)} (expected, and refused)")
    assert (missing, extra, changed) == (0, 0, 0), f"seed {seed}: {tail}"
    assert verified > runs * 4


def _truth(cw, lb, metric, start, end) -> dict[int, float]:
    """CloudWatch's Sum per minute in [start, end): {ts ms: value}."""
    ns = "AWS/ApplicationELB" if lb.type == "application" else "AWS/NetworkELB"
    resp = cw.get_metric_data(
        MetricDataQueries=[{"Id": "q", "MetricStat": {"Metric": {
            "Namespace": ns, "MetricName": metric,
            "Dimensions": [{"Name": "LoadBalancer", "Value": lb.dimension}]},
            "Period": 60, "Stat": "Sum"}}],
        StartTime=datetime.fromtimestamp(start, UTC), EndTime=datetime.fromtimestamp(end, UTC),
        ScanBy="TimestampAscending")
    r = resp["MetricDataResults"][0]
    return {int(t.timestamp()) * 1000: v for t, v in zip(r["Timestamps"], r["Values"], strict=True)}


def _foreign_write(prom, rng, lb, clock, foreign) -> set[tuple[str, int]]:
    """Another writer stores a sample of `lb`'s traffic series one to three minutes ahead
    of what lbscrape has written (and of its window this run). Returns the minutes in
    between, which lbscrape can then never write."""
    # Drawn first, whatever Prometheus holds, so that a seed gives the same faults.
    ahead, value = rng.randint(1, 3), float(rng.randint(100_000, 200_000))  # not CloudWatch's
    name = prom_name(lb.type, KINDS[lb.type].traffic, "Sum")
    got = prom.raw(f'{name}{{load_balancer_name="{lb.name}"}}', lookback="3h")
    if not got:
        return set()
    ((labels, samples),) = got.items()
    newest = samples[-1][0] // 1000
    ts = max(newest, (clock - SETTLE) // 60 * 60) + 60 * ahead
    assert push(prom.write_url, [(labels, [(ts * 1000, value)])]) == 204
    foreign[(f"{lb.name}/{name}", ts * 1000)] = value
    return {(f"{lb.name}/{name}", t * 1000) for t in range(newest + 60, ts, 60)}
