"""Concurrent GetMetricData under CloudWatch's quotas, end to end: `lbscrape run` and
`backfill` against the AWS stand-in (tests/awsstandin.py: a fixed latency per call,
CloudWatch's quotas enforced with Throttling), the fake Kubernetes API and a counting
remote-write receiver that checks every sample landed once. Speed is measured in
bench/scale.py; these check what must hold at any speed."""

from __future__ import annotations

import json
import threading
import time

import pytest
from click.testing import CliRunner

from lbscrape.aws import fetcher
from lbscrape.aws.cloudwatch import Call, FetchTarget, plan_calls
from lbscrape.aws.limits import THROTTLE_PAUSE
from lbscrape.cli import cli
from lbscrape.core.catalog import DEFAULT
from lbscrape.core.config import CloudWatchLimits
from lbscrape.core.model import Sample, Window, isotime
from tests import world
from tests.awsstandin import AwsStandIn, Quota, make_lb, most_in_flight, value
from tests.rwcount import CountingReceiver, expected_tally

SETTLE = 120
ALB = len(DEFAULT.specs("application"))
TG = len(DEFAULT.specs("application", "target_group"))
PROM_NAMES = {s.prom_name: s.metric for dims in ("load_balancer", "target_group")
              for s in DEFAULT.specs("application", dims)}


class Scale:
    def __init__(self, kube, monkeypatch, n_lbs, n_tgs=0, latency=0.0, quota=None):
        self.kube = kube
        self.lbs = [make_lb("us-east-1", i, n_tgs) for i in range(n_lbs)]
        self.n_tgs = n_tgs
        self.aws = AwsStandIn(self.lbs, latency=latency, quota=quota)
        self.aws.start()
        self.receiver = CountingReceiver()
        self.receiver.start()
        monkeypatch.setenv("AWS_ENDPOINT_URL", self.aws.url)
        kube.put("networking.k8s.io/v1", "ingressclasses", world.ingress_class())
        for i, lb in enumerate(self.lbs):  # discovered (and planned) in this order
            kube.put("networking.k8s.io/v1", "ingresses",
                     world.ingress("team", f"web{i:04d}", lb.dns_name))
        self.now = int(time.time()) - 60
        self.end = (self.now - SETTLE) // 60 * 60

    def stop(self):
        self.aws.stop()
        self.receiver.stop()

    def run(self, *args, expect=0):
        result = CliRunner().invoke(cli, [
            "run", "--cluster", "c", "--region", "us-east-1",
            "--kubeconfig", self.kube.kubeconfig_path, "--now", str(self.now),
            "--remote-write-url", self.receiver.write_url, "--log-format", "json", *args],
            catch_exceptions=False)
        assert result.exit_code == expect, result.output + result.stderr
        return result

    def checkpoint(self):
        cm = self.kube.get("v1", "configmaps", "monitoring", "lbscrape-checkpoint")
        return json.loads(cm["data"]["checkpoint.json"])["load_balancers"] if cm else {}

    def written(self):
        """Load balancers whose every series holds exactly the window's samples; and the
        series that hold anything else."""
        want = {m: expected_tally((t * 1000, value(m, t))
                                  for t in range(self.end - 600, self.end, 60))
                for m in PROM_NAMES.values()}
        complete, wrong = {}, []
        self.receiver.drain()
        for labels, got in self.receiver.series.items():
            d = dict(labels)
            if d["__name__"].startswith("lbscrape_"):  # the run's own series
                continue
            w = want[PROM_NAMES[d["__name__"]]]
            if (got.samples, got.ts_sum, got.ts_sq, got.value_sum) != (
                    w.samples, w.ts_sum, w.ts_sq, w.value_sum):
                wrong.append(d)
            complete[d["load_balancer"]] = complete.get(d["load_balancer"], 0) + 1
        per_lb = ALB + self.n_tgs * TG
        return {k for k, n in complete.items() if n == per_lb}, wrong


@pytest.fixture
def scale(kube, monkeypatch):
    made = []

    def make(*args, **kwargs):
        made.append(Scale(kube, monkeypatch, *args, **kwargs))
        return made[-1]

    yield make
    for s in made:
        s.stop()


def summary(result):
    return [json.loads(line) for line in result.stderr.splitlines()
            if line.startswith("{")][-1]["msg"]


def test_a_run_fetches_concurrently_and_writes_while_later_calls_are_in_flight(scale):
    s = scale(60, n_tgs=3, latency=0.3)  # 2,640 queries: 6 calls
    s.run("--cloudwatch-concurrency", "3", "--remote-write-max-samples", "2000")
    written, wrong = s.written()
    assert wrong == []
    assert written == {lb.dimension for lb in s.lbs}
    assert set(s.checkpoint()) == written
    assert set(s.checkpoint().values()) == {isotime(s.end)}
    calls = s.aws.calls()
    assert len(calls) == 6 and not any(c.throttled for c in calls)
    assert most_in_flight(calls) == 3
    # The first remote-write request came while GetMetricData calls were still answered.
    assert s.receiver.first_at is not None
    assert s.receiver.first_at < max(c.answered for c in calls)


def test_throttling_backs_off_for_every_worker_and_every_sample_lands(scale):
    # CloudWatch lets through 3 calls per second (other tools took the rest of the
    # quota); lbscrape, allowed 25, learns it from the throttles.
    s = scale(100, n_tgs=3, latency=0.05, quota=Quota(tps=3))  # 9 calls
    result = s.run("--cloudwatch-concurrency", "6", "--cloudwatch-max-tps", "25")
    written, wrong = s.written()
    assert wrong == [] and written == {lb.dimension for lb in s.lbs}
    calls = s.aws.calls()
    refused = [c for c in calls if c.throttled]
    assert refused, "expected CloudWatch to throttle a burst of 6 calls"
    assert f"gmd_calls={len(calls)}" in summary(result)
    # A worker that was not refused waits too: the calls after the first throttle pause
    # for a while (each worker on its own would go on at 25 per second and be refused
    # again and again), and few were refused at all.
    after = [c.at for c in calls if c.at > refused[0].answered]
    assert max(b - a for a, b in zip(after, after[1:], strict=False)) > THROTTLE_PAUSE * 0.7
    assert len(refused) <= 6


def test_the_deadline_holds_with_concurrent_calls(scale):
    s = scale(200, latency=0.1)  # 2,800 queries: 6 calls, one every 2 s
    started = time.monotonic()
    result = s.run("--cloudwatch-max-tps", "0.5", "--deadline", "8s", expect=3)
    assert time.monotonic() - started < 8 + 1
    assert "not fetched: the run deadline (--deadline) was reached" in summary(result)
    calls = s.aws.calls()
    assert 1 <= len(calls) < 6  # fetching stops 2 s before the deadline
    assert all(b.at - a.at > 1.5 for a, b in zip(calls, calls[1:], strict=False))
    written, wrong = s.written()
    assert wrong == []
    # Exactly the load balancers wholly in the calls made were written and moved on.
    assert len(written) == len(calls) * 500 // ALB
    assert set(s.checkpoint()) == written


def test_an_error_every_call_would_hit_still_checkpoints_what_was_written(scale):
    s = scale(100)  # 1,400 queries: 3 calls
    s.aws.refuse = lambda call: (400, "ExpiredTokenException", "The security token "
                                 "included in the request is expired") \
        if len(s.aws.calls()) > 2 else None
    result = s.run("--cloudwatch-concurrency", "1", expect=1)
    assert "ExpiredTokenException" in result.stderr
    written, wrong = s.written()
    assert wrong == []
    assert len(written) == 2 * 500 // ALB
    assert set(s.checkpoint()) == written


@pytest.mark.parametrize("dest", ["remote-write", "file"])
def test_a_concurrent_backfill_stopped_by_a_failed_call_resumes_exactly(scale, tmp_path,
                                                                        dest):
    s = scale(300, latency=0.05)  # 4,200 queries over 30 minutes: 9 calls of 35 ALBs
    bad = s.lbs[35 * 3].dimension  # the first load balancer of the 4th call
    s.aws.refuse = lambda call: (400, "InvalidParameterCombination", "no") \
        if call.first_dimension == bad else None
    out = tmp_path / "out.om"
    target = ["--remote-write-url", s.receiver.write_url] if dest == "remote-write" \
        else ["--output", str(out)]
    args = ["backfill", "--cluster", "c", "--region", "us-east-1", "--kubeconfig",
            s.kube.kubeconfig_path, "--start", str(s.end - 1800), "--end", str(s.end),
            "--now", str(s.now), "--state-file", str(tmp_path / "state.json"), "--yes",
            "--cloudwatch-concurrency", "8", *target]
    first = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert first.exit_code == 3, first.output + first.stderr
    state = json.loads((tmp_path / "state.json").read_text())
    assert state["done"] == [0, 1, 2]
    s.aws.refuse = None
    again = CliRunner().invoke(cli, [*args, "--resume"], catch_exceptions=False)
    assert again.exit_code == 0, again.output + again.stderr
    want = {m: expected_tally((t * 1000, value(m, t)) for t in range(s.end - 1800, s.end, 60))
            for m in PROM_NAMES.values()}
    if dest == "remote-write":
        s.receiver.drain()
        got = {(dict(k)["__name__"], dict(k)["load_balancer"]): t
               for k, t in s.receiver.series.items()}
    else:
        lines = [x for x in out.read_text().splitlines() if not x.startswith("#")]
        assert len(lines) == len(set(lines))
        got = _tallies(lines)
    assert len(got) == 300 * ALB
    assert all(t == want[PROM_NAMES[name]] for (name, _), t in got.items())


def _tallies(lines):
    out = {}
    for line in lines:
        sel, v, ts = line.rsplit(" ", 2)
        name, labels = sel.split("{", 1)
        lb = labels.split('load_balancer="', 1)[1].split('"', 1)[0]
        t = out.setdefault((name, lb), expected_tally([]))
        t.add(int(ts) * 1000, float(v))
    return out


# --- the concurrent fetch itself ----------------------------------------------------


class SlowCloudWatch:
    """Answers every query with one datapoint per period, each call taking the time
    `delay(call number)`; counts calls started and the most at once."""

    def __init__(self, delay):
        self.delay = delay
        self.started = 0
        self.running = self.most = 0
        self.lock = threading.Lock()

    def get_metric_data(self, **req):
        with self.lock:
            n = self.started
            self.started += 1
            self.running += 1
            self.most = max(self.most, self.running)
        time.sleep(self.delay(n))
        start, end = int(req["StartTime"].timestamp()), int(req["EndTime"].timestamp())
        out = [{"Id": q["Id"], "StatusCode": "Complete", "Timestamps": list(range(start, end, 60)),
                "Values": [1.0] * ((end - start) // 60)} for q in req["MetricDataQueries"]]
        with self.lock:
            self.running -= 1
        return {"MetricDataResults": out}


def _calls(n_calls):
    w = Window(1_800_000_000, 1_800_000_600, 60)
    return [Call(w, plan_calls([FetchTarget(f"lb{i}", (("LoadBalancer", f"lb{i}"),), w,
                                            DEFAULT.specs("application")[:2])])[0].queries)
            for i in range(n_calls)]


UNLIMITED_RATES = dict(max_tps=1e9, dps=10**12)


def test_results_come_in_plan_order_whatever_order_calls_end_in():
    calls = _calls(12)
    cw = SlowCloudWatch(lambda n: 0.2 if n % 3 == 0 else 0.01)
    got = list(fetcher.fetch_ordered(cw, calls, CloudWatchLimits(concurrency=4,
                                                                 **UNLIMITED_RATES)))
    assert [r.call for r in got] == calls
    assert cw.most == 4
    assert all(r.samples == [[Sample(t * 1000, 1.0) for t in range(1_800_000_000,
                                                                   1_800_000_600, 60)]] * 2
               for r in got)


def test_a_slow_consumer_keeps_only_a_few_results_waiting():
    calls = _calls(30)
    cw = SlowCloudWatch(lambda n: 0.0)
    limits = CloudWatchLimits(concurrency=3, **UNLIMITED_RATES)
    for taken, _ in enumerate(fetcher.fetch_ordered(cw, calls, limits), start=1):
        time.sleep(0.02)  # writing
        assert cw.started <= taken + limits.concurrency + fetcher.AHEAD
    assert cw.started == 30


def test_each_load_balancer_is_released_when_its_last_call_is_in():
    w = Window(0, 600, 60)
    specs = DEFAULT.specs("application")  # 14 per load balancer
    targets = [FetchTarget(f"lb{i}", (("LoadBalancer", f"lb{i}"),), w, specs)
               for i in range(3)]
    calls = plan_calls(targets, max_queries=20)  # lb1 spans calls 0 and 1
    assert [len(c.queries) for c in calls] == [20, 20, 2]
    seen = []

    def results():
        for c in calls:
            seen.append(c)
            yield fetcher.CallResult(c, [[Sample(0, 1.0)] for _ in c.queries],
                                     {"lb2": "boom"} if c is calls[1] else {})

    order = []
    for data in fetcher.by_load_balancer(["idle", "lb0", "lb1", "lb2"], calls, results()):
        order.append((data.lb_key, len(seen), len(data.samples), data.failed))
    assert order == [("idle", 0, 0, None), ("lb0", 1, 14, None), ("lb1", 2, 14, None),
                     ("lb2", 3, 14, "boom")]
