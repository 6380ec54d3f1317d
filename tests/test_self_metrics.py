"""lbscrape's own series (issue 13), read back from a real Prometheus after real runs.

Proxies in front of moto and Prometheus see every request, so each run's series are
checked against what really happened: the samples the receiver accepted and refused,
the GetMetricData calls and metrics moto was asked for, the checkpoints the ConfigMap
holds after the run, and the process's exit code.
"""

from __future__ import annotations

import json
import pathlib
import re
import time
from dataclasses import dataclass

import pytest
import snappy
from click.testing import CliRunner

from lbscrape import __version__
from lbscrape.cli import cli
from lbscrape.core.catalog import DEFAULT
from lbscrape.core.model import Sample, parse_isotime
from lbscrape.prom import self_metrics
from lbscrape.prom.prompb import WriteRequest
from tests import world
from tests.faultproxy import FaultProxy, Request, Rule
from tests.test_run import CLUSTER, SETTLE, Scene

PERIOD = 60
RUN_LABELS = {"cluster": CLUSTER, "region": "us-east-1", "env": "test"}
# A per-series refusal that is no time conflict, so delivery isolates the refused samples.
REFUSAL = b"series has too many labels (err-mimir-max-label-names-per-series)\n"


def decode(body: bytes) -> list[tuple[tuple[tuple[str, str], ...], int, float]]:
    """(labels, timestamp ms, value) of every sample in a remote-write body."""
    wr = WriteRequest()
    wr.ParseFromString(snappy.uncompress(body))
    return [(tuple(sorted((lb.name, lb.value) for lb in ts.labels)), s.timestamp, s.value)
            for ts in wr.timeseries for s in ts.samples]


def is_own(req: Request) -> bool:
    return req.method == "POST" and any(dict(lbl)["__name__"].startswith("lbscrape_")
                                        for lbl, _, _ in decode(req.body))


def has_series(name: str):
    return lambda req: req.method == "POST" and any(
        dict(lbl)["__name__"] == name for lbl, _, _ in decode(req.body))


def gmd(req: Request) -> bool:
    return req.mentions("GetMetricData")


def fail_queries_of(dimension: str):
    """Answer GetMetricData as CloudWatch does when it cannot serve some queries: every
    result of `dimension` comes back InternalError (moto still sees the whole call)."""
    def rewrite(req: Request, body: bytes) -> bytes:
        ids = {q["Id"] for q in json.loads(req.body)["MetricDataQueries"]
               if any(d["Value"] == dimension for d in q["MetricStat"]["Metric"]["Dimensions"])}
        doc = json.loads(body)
        for r in doc["MetricDataResults"]:
            if r["Id"] in ids:
                r.update(StatusCode="InternalError", Timestamps=[], Values=[],
                         Messages=[{"Code": "InternalError", "Value": "try again"}])
        return json.dumps(doc).encode()
    return rewrite


@dataclass
class Ran:
    """One run and the truth about it, from the proxies and the ConfigMap."""

    now: int
    exit_code: int
    stderr: str
    stdout: str
    cw: list[Request]
    rw: list[Request]
    started: float
    ended: float
    checkpoint: dict[str, int]

    @property
    def calls(self) -> list[Request]:
        return [r for r in self.cw if gmd(r)]

    def data(self, accepted: bool) -> list[tuple]:
        return [x for r in self.rw if r.method == "POST" and not is_own(r)
                and (not accepted or (r.status or 0) // 100 == 2) for x in decode(r.body)]

    @property
    def refused(self) -> set[tuple]:
        """Data samples sent in the run and never accepted."""
        return {x[:2] for x in self.data(False)} - {x[:2] for x in self.data(True)}


class Watched:
    def __init__(self, scene: Scene, cw: FaultProxy, rw: FaultProxy) -> None:
        self.scene, self.cw, self.rw = scene, cw, rw
        # What CloudWatch holds, by (series name, timestamp s): anything else is a zero.
        s = scene
        self.cloudwatch = {(n, ts) for n in ("alb_request_count_sum",
                                             "alb_target_response_time_average",
                                             "nlb_new_flow_count_sum") for ts in s.minutes}
        self.cloudwatch |= {("alb_http_code_elb_5xx_count_sum", ts)
                            for i, ts in enumerate(s.minutes) if i % 3}

    def run(self, now: int, *extra: str, expect: int = 0, proxied: bool = True) -> Ran:
        """A run through the proxies (not proxied: straight to Prometheus)."""
        marks = len(self.cw.seen), len(self.rw.seen)
        started = time.time()
        url = f"{self.rw.url}/api/v1/write" if proxied else self.scene.prom.write_url
        result = self.scene.run(now, "--label", "env=test", *extra, expect=expect,
                                remote_write_url=url)
        ended = time.time()
        cp = {k: parse_isotime(v) for k, v in (self.scene.checkpoint() or {}).items()}
        return Ran(now, result.exit_code, result.stderr, result.stdout,
                   self.cw.seen[marks[0]:], self.rw.seen[marks[1]:], started, ended, cp)

    def zeros(self, ran: Ran) -> int:
        accepted = ran.data(True)
        zeros = [(lbl, v) for lbl, ts, v in accepted
                 if (dict(lbl)["__name__"], ts // 1000) not in self.cloudwatch]
        assert all(v == 0.0 for _, v in zeros)
        return len(zeros)


@pytest.fixture
def watched(aws, kube, prometheus, moto_server, monkeypatch):
    scene = Scene(aws, kube, prometheus)
    # An owner nothing resolves: counted, not a load balancer.
    kube.put("networking.k8s.io/v1", "ingresses",
             world.ingress("blog", "gone", "k8s-blog-gone-1.us-east-1.elb.amazonaws.com"))
    cw, rw = FaultProxy(moto_server), FaultProxy(prometheus.url)
    cw.start()
    rw.start()
    monkeypatch.setenv("AWS_ENDPOINT_URL", cw.url)
    yield Watched(scene, cw, rw)
    cw.stop()
    rw.stop()


def key(labels: dict[str, str]) -> str:
    """A series as the assertions name it: the name and lbscrape's own labels."""
    d = dict(labels)
    name = d.pop("__name__")
    if name == self_metrics.LAG:
        return f"{name}{{{d['load_balancer_name']}}}"
    extra = sorted((k, v) for k, v in d.items() if k not in RUN_LABELS)
    return name + ("{" + ",".join(f"{k}={v}" for k, v in extra) + "}" if extra else "")


def stored_runs(prom: world.Prometheus) -> dict[int, dict[str, tuple[float, dict]]]:
    """{timestamp ms: {key: (value, labels)}}: every run's own series, as stored."""
    runs: dict[int, dict[str, tuple[float, dict]]] = {}
    for labels, samples in prom.raw('{__name__=~"lbscrape_.+"}', lookback="1h").items():
        for ts, v in samples:
            runs.setdefault(ts, {})[key(dict(labels))] = (v, dict(labels))
    return dict(sorted(runs.items()))


def printed(stdout: str) -> dict[str, tuple[float, dict]]:
    """The own series a dry run printed."""
    out = {}
    for line in stdout.splitlines():
        m = re.match(r'^(lbscrape_\w+)\{(.*)\} (\S+) (\d+)$', line)
        if m:
            labels = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(2)))
            labels["__name__"] = m.group(1)
            out[key(labels)] = (float(m.group(3)), labels)
    return out


def expected(w: Watched, ran: Ran, *, found: int, written: int, failed: int,
             rejected: dict[str, int], dry: bool = False) -> dict[str, float]:
    calls = ran.calls
    reasons = {"other": 0, **rejected}
    return {
        "lbscrape_run_success": 1.0 if ran.exit_code == 0 else 0.0,
        "lbscrape_run_exit_code": ran.exit_code,
        "lbscrape_run_load_balancers{state=found}": found,
        "lbscrape_run_load_balancers{state=written}": written,
        "lbscrape_run_load_balancers{state=failed}": failed,
        "lbscrape_run_owners_unresolved": 1,
        "lbscrape_run_samples_written": 0 if dry else len(ran.data(True)),
        **{f"lbscrape_run_samples_rejected{{reason={r}}}": n for r, n in reasons.items()},
        "lbscrape_run_samples_zero_filled": 0 if dry else w.zeros(ran),
        "lbscrape_run_getmetricdata_calls": len(calls),
        "lbscrape_run_cloudwatch_metrics_requested": sum(
            len(json.loads(r.body)["MetricDataQueries"]) for r in calls),
        f"lbscrape_build_info{{version={__version__}}}": 1,
    }


def check(w: Watched, own: dict[str, tuple[float, dict]], ran: Ran, **expect) -> dict:
    """The run's own series say what happened; returns {load balancer name: lag}."""
    values = {k: v for k, (v, _) in own.items()}
    lags = {k.split("{")[1][:-1]: values.pop(k) for k in list(values)
            if k.startswith(self_metrics.LAG)}
    duration = values.pop("lbscrape_run_duration_seconds")
    assert values == expected(w, ran, **expect)
    assert 0 < duration < ran.ended - ran.started
    # Lag: the run's end (the time it acts at + its duration) minus the checkpoint the
    # ConfigMap holds after the run; within the duration's rounding to milliseconds.
    s = w.scene
    for lb in (s.alb, s.nlb):
        assert lags[lb.name] == pytest.approx(
            ran.now + duration - ran.checkpoint[lb.dimension], abs=0.002)
    for name, (_, labels) in own.items():
        if name.startswith(self_metrics.LAG):
            data = s.prom.raw(f'alb_request_count_sum{{load_balancer_name="{labels["load_balancer_name"]}"}}') \
                or s.prom.raw(f'nlb_new_flow_count_sum{{load_balancer_name="{labels["load_balancer_name"]}"}}')
            assert {**dict(next(iter(data))), "__name__": self_metrics.LAG} == labels
        else:
            extra = set(labels) - set(RUN_LABELS) - {"__name__"}
            assert {k: labels[k] for k in RUN_LABELS} == RUN_LABELS
            assert extra <= {"state", "reason", "version"}
    return {**lags, "duration": duration}


def healthy(lag: float, duration: float) -> bool:
    return SETTLE <= lag < SETTLE + PERIOD + duration


def test_each_run_says_what_it_did(watched):
    w, s = watched, watched.scene
    t = s.clock - 6 * 60
    r1 = w.run(t)
    # The ALB's results fail; the receiver refuses one series of the NLB.
    w.cw.add(Rule(gmd, rewrite=fail_queries_of(s.alb.dimension)))
    w.rw.add(Rule(has_series("nlb_new_flow_count_sum"), status=400, body=REFUSAL))
    r2 = w.run(t + PERIOD, expect=3)
    w.rw.rules.clear()
    r3 = w.run(t + 2 * PERIOD, expect=3)  # the ALB still fails
    w.cw.rules.clear()
    # Everything written, but the checkpoint cannot be stored: the run aborts.
    s.kube.inject("PUT", "/configmaps/lbscrape-checkpoint", 403)
    r4 = w.run(t + 3 * PERIOD, expect=1)
    r5 = w.run(t + 4 * PERIOD)  # repeats r4's window: Prometheus refuses what it holds
    dry = w.run(t + 5 * PERIOD, "--dry-run")

    runs = stored_runs(s.prom)
    assert len(runs) == 5  # one sample per series per run; none from the dry run
    for (ts, _), ran in zip(runs.items(), (r1, r2, r3, r4, r5), strict=True):
        assert ran.started * 1000 <= ts <= ran.ended * 1000  # stamped at the run's end
    own = list(runs.values())
    lag1 = check(w, own[0], r1, found=2, written=2, failed=0, rejected={})
    assert r2.refused and {dict(lbl)["__name__"] for lbl, _ in r2.refused} == {
        "nlb_new_flow_count_sum"}
    lag2 = check(w, own[1], r2, found=2, written=1, failed=1,
                 rejected={"other": len(r2.refused)})
    lag3 = check(w, own[2], r3, found=2, written=1, failed=1, rejected={})
    lag4 = check(w, own[3], r4, found=2, written=2, failed=0, rejected={})
    assert r5.refused and "out of order sample" in r5.stderr
    lag5 = check(w, own[4], r5, found=2, written=2, failed=0,
                 rejected={"out_of_order": len(r5.refused)})
    lag6 = check(w, printed(dry.stdout), dry, found=2, written=0, failed=0, rejected={},
                 dry=True)

    # Freshness: the failed ALB's lag grows by one run's interval, the NLB's stays
    # between the settle delay and the settle delay plus one period (plus the run).
    alb, nlb = s.alb.name, s.nlb.name
    assert all(healthy(lag[alb], lag["duration"]) for lag in (lag1, lag5))
    assert all(healthy(lag[nlb], lag["duration"]) for lag in (lag1, lag2, lag3, lag5))
    for a, b in ((lag1, lag2), (lag2, lag3)):
        assert b[alb] - a[alb] == pytest.approx(PERIOD + b["duration"] - a["duration"],
                                                abs=0.002)
    # The aborted run stored no checkpoint: its lags are measured from the old ones.
    assert lag4[alb] - lag3[alb] == pytest.approx(PERIOD + lag4["duration"] - lag3["duration"],
                                                  abs=0.002)
    assert lag6[alb] == pytest.approx(lag5[alb] + PERIOD + lag6["duration"] - lag5["duration"],
                                      abs=0.002)
    # The own series went in a request of their own, the last thing each run sent.
    for ran in (r1, r2, r3, r4, r5):
        posts = [r for r in ran.rw if r.method == "POST"]
        assert is_own(posts[-1]) and not any(is_own(r) for r in posts[:-1])
        assert all(dict(lbl)["__name__"].startswith("lbscrape_")
                   for lbl, _, _ in decode(posts[-1].body))


def own_warnings(ran: Ran) -> list[str]:
    return [e["msg"] for e in logs(ran) if e["level"] == "warning" and "own series" in e["msg"]]


def test_own_series_refused_fail_the_run_and_nothing_else(watched):
    w, s = watched, watched.scene
    w.rw.add(Rule(is_own, status=400, body=b"out of bounds\n"))
    ran = w.run(s.clock - 120, expect=1)  # 1: nothing else failed
    assert len(own_warnings(ran)) == 1 and "HTTP 400: out of bounds" in own_warnings(ran)[0]
    assert "lbs_failed=0" in logs(ran)[-1]["msg"]  # the summary stays the last line
    assert set(s.stored("alb_request_count_sum")) == {s.alb.name}  # the data landed
    assert ran.checkpoint[s.alb.dimension] == ran.checkpoint[s.nlb.dimension] == \
        (s.clock - 120 - SETTLE) // 60 * 60  # and the checkpoints moved
    # Something else failed too: its exit code stands; an endpoint that is busy for them.
    w.rw.rules[:] = [Rule(is_own, status=503, body=b"busy\n")]
    w.cw.add(Rule(gmd, rewrite=fail_queries_of(s.alb.dimension)))
    ran = w.run(s.clock, expect=3)
    assert len(own_warnings(ran)) == 1 and "503" in own_warnings(ran)[0]
    assert stored_runs(s.prom) == {}


def test_own_series_hanging_past_the_deadline_end_the_run_in_time(watched):
    """Their request still in flight when the run's time is up is abandoned like any
    other: one warning, exit 1, the summary still the last line, the data checkpointed."""
    w, s = watched, watched.scene
    # An answer only after 10 s, and then no forwarding: the run must not wait for it. The
    # bound leaves the process's start and exit (about 2 s on a busy machine) beside 3 s.
    w.rw.add(Rule(is_own, delay=10, status=503, body=b"late\n"))
    ran = w.run(s.clock - 120, "--deadline", "3s", expect=1)
    assert ran.ended - ran.started < 7
    (warning,) = own_warnings(ran)
    assert "lbs_failed=0" in logs(ran)[-1]["msg"] and "run finished" in logs(ran)[-1]["msg"]
    assert ran.checkpoint[s.alb.dimension] == (s.clock - 120 - SETTLE) // 60 * 60


def test_an_aborted_run_still_says_so(watched):
    w, s = watched, watched.scene
    s.kube.inject("GET", "/ingresses", 403)
    ran = w.run(s.clock, expect=1)
    assert "run aborted" in logs(ran)[-1]["msg"]
    (own,) = stored_runs(s.prom).values()
    values = {k: v for k, (v, _) in own.items()}
    assert values["lbscrape_run_exit_code"] == 1 and values["lbscrape_run_success"] == 0
    assert values["lbscrape_run_load_balancers{state=found}"] == 0
    assert values["lbscrape_run_getmetricdata_calls"] == 0
    assert not [k for k in values if k.startswith(self_metrics.LAG)]  # nothing known


def logs(ran: Ran) -> list[dict]:
    return [json.loads(line) for line in ran.stderr.splitlines() if line.startswith("{")]


def test_absence_answers_is_it_running_and_the_readme_queries_work(watched):
    """The README's queries, on what the runs stored: a run that cannot reach the
    endpoint leaves no sample, so only absence can say it did not run."""
    w, s = watched, watched.scene
    ok = [w.run(s.clock - 180, proxied=False), w.run(s.clock - 120, proxied=False)]
    s.prom.stop()
    w.run(s.clock - 60, expect=1, proxied=False)
    s.prom.start()
    ok.append(w.run(s.clock, proxied=False))
    q = s.prom.query
    sel = f'{{cluster="{CLUSTER}"}}'
    assert q(f"count_over_time(lbscrape_run_success{sel}[10m])") == {(("cluster", CLUSTER), (
        "env", "test"), ("region", "us-east-1")): 3.0}
    assert q(f"absent_over_time(lbscrape_run_success{sel}[5m])") == {}
    assert q('absent_over_time(lbscrape_run_success{cluster="other"}[5m])') == {
        (("cluster", "other"),): 1.0}
    # The month's bill at list price: what the runs that wrote asked moto for.
    bill = q("sum_over_time(lbscrape_run_cloudwatch_metrics_requested[30d]) / 1000 * 0.01")
    requested = sum(len(json.loads(r.body)["MetricDataQueries"]) for ran in ok for r in ran.calls)
    assert list(bill.values()) == [pytest.approx(requested / 1000 * 0.01)] and requested > 0
    # The worst freshness per load balancer (the run after the outage caught up).
    worst = {dict(k)["load_balancer_name"]: v for k, v in
             q("max_over_time(lbscrape_load_balancer_lag_seconds[10m])").items()}
    lags = {dict(k)["load_balancer_name"]: max(v for _, v in pts) for k, pts in
            s.prom.raw(self_metrics.LAG, lookback="10m").items()}
    assert worst == lags and set(worst) == {s.alb.name, s.nlb.name}
    assert q(f"max_over_time(lbscrape_run_success{sel}[15m]) == 0") == {}
    # Every query the README shows runs (a typo would be a 400 from Prometheus).
    readme = (pathlib.Path(__file__).parent.parent / "README.md").read_text()
    block = readme.split("### lbscrape's own series")[1].split("```promql\n")[1].split("```")[0]
    shown = [line for line in block.splitlines() if line and not line.startswith("#")]
    assert len(shown) == 5
    for expr in shown:
        q(expr.replace('cluster="prod-eu"', f'cluster="{CLUSTER}"'))
    longest = max(v for _, pts in s.prom.raw("lbscrape_run_duration_seconds",
                                            lookback="10m").items() for _, v in pts)
    assert all(healthy(lag, longest) for lag in worst.values())


def test_no_self_metrics_writes_and_prints_none(watched, monkeypatch):
    w, s = watched, watched.scene
    ran = w.run(s.clock - 120, "--no-self-metrics")
    assert "self_metrics=off" in ran.stderr
    assert s.stored("alb_request_count_sum") and stored_runs(s.prom) == {}
    assert not any(is_own(r) for r in ran.rw)
    monkeypatch.setenv("LBSCRAPE_SELF_METRICS", "false")
    ran = w.run(s.clock, "--dry-run")
    assert "alb_request_count_sum{" in ran.stdout and "lbscrape_" not in ran.stdout
    w.run(s.clock)
    assert stored_runs(s.prom) == {}
    monkeypatch.setenv("LBSCRAPE_SELF_METRICS", "true")
    ran = w.run(s.clock, "--dry-run")
    assert "lbscrape_run_success{" in ran.stdout


def test_backfill_writes_none_of_the_run_series(watched, tmp_path):
    s = watched.scene
    result = CliRunner().invoke(cli, [
        "backfill", "--cluster", CLUSTER, "--region", "us-east-1", "--kubeconfig",
        s.kube.kubeconfig_path, "--start", "-30m", "--remote-write-url", s.prom.write_url,
        "--state-file", str(tmp_path / "state.json"), "--yes"])
    assert result.exit_code == 0, result.output + result.stderr
    assert len(s.stored("alb_request_count_sum")[s.alb.name]) >= 25
    assert s.prom.raw('{__name__=~"lbscrape_.+"}') == {}


# The texts receivers answer with (shared/reference/remote-write.md; Mimir's from its
# ingester tests; lbscrape prefixes the status).
REFUSALS = [
    ("HTTP 400: out of order sample", "out_of_order"),
    ("HTTP 400: out of bounds", "out_of_bounds"),
    ("HTTP 400: duplicate sample for timestamp", "duplicate_timestamp"),
    ("HTTP 500: too old sample", "too_old"),
    ("HTTP 400: out of bounds: timestamp is too far in the future", "out_of_bounds"),
    ("HTTP 400: the sample has been rejected because another sample with a more recent "
     "timestamp has already been ingested and out-of-order samples are not allowed "
     "(err-mimir-sample-out-of-order). The affected sample has timestamp "
     '1970-01-19T05:30:43.969Z and is from series {__name__="test"}', "out_of_order"),
    ("HTTP 400: the sample has been rejected because another sample with a more recent "
     "timestamp has already been ingested and this sample is beyond the out-of-order time "
     "window of 2h (err-mimir-sample-timestamp-too-old). The affected sample has "
     'timestamp 1970-01-19T05:30:43.969Z and is from series {__name__="test"}', "too_old"),
    ("HTTP 400: the sample has been rejected because another sample with the same "
     "timestamp, but a different value, has already been ingested "
     "(err-mimir-sample-duplicate-timestamp).", "duplicate_timestamp"),
    ("HTTP 400: received a sample whose timestamp is too far in the future "
     "(err-mimir-too-far-in-future)", "out_of_bounds"),
    ("HTTP 409: store locally for endpoint 127.0.0.1:10901: add 1 samples: out of order "
     "sample", "out_of_order"),
    ("HTTP 409: 2 errors: add 2 samples: duplicate sample for timestamp; add 1 samples: "
     "out of bounds", "duplicate_timestamp"),
    ("HTTP 409: add 1 samples: too old sample", "too_old"),
    ('HTTP 400: user=ws-1: err: out of bounds. timestamp=2026-11-23T10:00:00Z, '
     'series={__name__="alb_request_count_sum"}', "out_of_bounds"),
    ("HTTP 400: sample for 'alb_request_count_sum' has timestamp too old: 1", "too_old"),
    ("HTTP 400: sample for 'alb_request_count_sum' has timestamp too new: 9", "out_of_bounds"),
    ("HTTP 400: sample timestamp out of order; last timestamp: 2, incoming timestamp: 1",
     "out_of_order"),
    ("HTTP 400: sample with repeated timestamp but different value; last value: 1, "
     "incoming value: 2", "duplicate_timestamp"),
    # The reason comes before the series: a label value cannot change it.
    ('HTTP 400: (err-mimir-sample-timestamp-too-old) series {team="out of order sample"}',
     "too_old"),
    ("HTTP 400: " + REFUSAL.decode().strip(), "other"),
    ("HTTP 413: request entity too large", "other"),
    ("", "other"),
]


@pytest.mark.parametrize("text, reason", REFUSALS)
def test_refusals_are_classified_by_what_the_receiver_says(text, reason):
    assert self_metrics.rejection_reason(text) == reason


def test_the_series_of_a_report():
    report = self_metrics.RunReport(
        labels={"cluster": "c", "region": "r", "env": "prod"}, timestamp_ms=1_000_500,
        end=1000.25, exit_code=3, duration=1.23456, version="9.9",
        load_balancers={"found": 3, "written": 1, "failed": 2}, owners_unresolved=4,
        samples_written=50, rejected={"HTTP 400: out of order sample": 5,
                                      "HTTP 409: add 1 samples: out of order sample": 1,
                                      "HTTP 400: out of bounds": 2},
        samples_zero_filled=7, getmetricdata_calls=2, cloudwatch_metrics_requested=37,
        freshness=(self_metrics.Freshness({"load_balancer_name": "b", "cluster": "c"}, 700),
                   self_metrics.Freshness({"load_balancer_name": "a", "cluster": "c"}, 880)))
    series = self_metrics.build(report)
    assert {s.samples for s in series} == {(Sample(1_000_500, v),)
                                           for v in {s.samples[0].value for s in series}}
    got = [(dict(s.labels), s.samples[0].value) for s in series]
    run = {"cluster": "c", "region": "r", "env": "prod"}
    assert got == [
        ({**run, "__name__": "lbscrape_run_success"}, 0.0),
        ({**run, "__name__": "lbscrape_run_exit_code"}, 3.0),
        ({**run, "__name__": "lbscrape_run_duration_seconds"}, 1.235),
        ({**run, "__name__": "lbscrape_run_load_balancers", "state": "found"}, 3.0),
        ({**run, "__name__": "lbscrape_run_load_balancers", "state": "written"}, 1.0),
        ({**run, "__name__": "lbscrape_run_load_balancers", "state": "failed"}, 2.0),
        ({**run, "__name__": "lbscrape_run_owners_unresolved"}, 4.0),
        ({**run, "__name__": "lbscrape_run_samples_written"}, 50.0),
        ({**run, "__name__": "lbscrape_run_samples_rejected", "reason": "out_of_order"}, 6.0),
        ({**run, "__name__": "lbscrape_run_samples_rejected", "reason": "out_of_bounds"}, 2.0),
        ({**run, "__name__": "lbscrape_run_samples_rejected", "reason": "other"}, 0.0),
        ({**run, "__name__": "lbscrape_run_samples_zero_filled"}, 7.0),
        ({**run, "__name__": "lbscrape_run_getmetricdata_calls"}, 2.0),
        ({**run, "__name__": "lbscrape_run_cloudwatch_metrics_requested"}, 37.0),
        ({"cluster": "c", "load_balancer_name": "a", "__name__": self_metrics.LAG}, 120.25),
        ({"cluster": "c", "load_balancer_name": "b", "__name__": self_metrics.LAG}, 300.25),
        ({**run, "__name__": "lbscrape_build_info", "version": "9.9"}, 1.0),
    ]
    assert all(list(s.labels) == sorted(s.labels) for s in series)
    assert [n for n in self_metrics.RUN_SERIES if n not in {d["__name__"] for d, _ in got}] \
        == []
    clean = self_metrics.build(self_metrics.RunReport(
        labels=run, timestamp_ms=1, end=0.0, exit_code=0, duration=0.1, version="9.9"))
    assert [(dict(s.labels).get("reason"), s.samples[0].value) for s in clean
            if s.name == "lbscrape_run_samples_rejected"] == [("other", 0.0)]
    assert next(s for s in clean if s.name == "lbscrape_run_success").samples[0].value == 1.0
    # A --label named like lbscrape's own labels is replaced on those series only.
    odd = self_metrics.build(self_metrics.RunReport(
        labels={**run, "state": "x", "version": "y"}, timestamp_ms=1, end=0.0, exit_code=0,
        duration=0.1, version="9.9"))
    assert [dict(s.labels)["state"] for s in odd] == ["x"] * 3 + [
        "found", "written", "failed"] + ["x"] * 7
    assert dict(odd[-1].labels)["version"] == "9.9"


def test_zeros_written_are_the_accepted_prefix_less_the_refused():
    spec = next(s for s in DEFAULT.specs("application") if "5XX" in s.metric)
    data = {spec: [Sample(60_000, 3.0)]}
    filled = {spec: [Sample(t, 0.0 if t != 60_000 else 3.0) for t in (0, 60_000, 120_000,
                                                                       180_000)]}
    zeros = {lb: self_metrics.zero_times(data, filled, {"load_balancer_name": lb})
             for lb in ("a", "b")}
    (labels_a,) = zeros["a"]
    assert list(zeros["a"][labels_a]) == [0, 120_000, 180_000]
    # a accepted up to 180 s, with its zero at 0 and the real sample at 60 s refused; b not
    # accepted at all.
    assert self_metrics.zeros_written(zeros, {"a": 180}, [(labels_a, 0), (labels_a, 60_000)]) == 1
    assert self_metrics.zeros_written(zeros, {"a": 240, "b": 240}, []) == 6
    assert self_metrics.zeros_written({}, {"a": 240}, [(labels_a, 0)]) == 0
