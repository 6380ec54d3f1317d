"""Scale figures, printed as ratios to their bounds: `.venv/bin/python -m bench.scale`.

A world of N ALBs with T target groups each: the AWS stand-in (tests/awsstandin.py:
CloudWatch GetMetricData adding a fixed latency per call and enforcing CloudWatch's
quotas by refusing with Throttling, ELBv2 listings), the fake Kubernetes API server with
N Ingresses and N*T TargetGroupBindings, and a counting remote-write receiver. lbscrape
runs as a child process, as the CronJob runs it, and the receiver checks that every
sample landed exactly once.

Per size: a fresh run (no checkpoints: a 10-minute window) and a steady-state run one
minute later (one period). Then `backfill` into a file and into remote write, with an
instant stand-in (lbscrape's own speed) and with the per-call latency (the quota).

Options: --sizes 50,350,2000,5000  --tgs 3  --latency 0.3  --elb-latency 0.1
--concurrency 10 (the bound's divisor; pass the flag itself with --args)  --args '...'
(extra arguments for every lbscrape command)  --only run|backfill|help
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from lbscrape.core.catalog import DEFAULT
from lbscrape.core.model import isotime, parse_isotime
from tests import world
from tests.awsstandin import AwsStandIn, Quota, make_lb, peak_per_second, value
from tests.fakekube import FakeKube
from tests.rwcount import CountingReceiver, Labels, Tally, expected_tally

REGION = "us-east-1"
SETTLE = 120
TPS_QUOTA, DPS_RECENT, DPS_OLD = 50, 180_000, 396_000
PROM_NAMES = {s.prom_name: s.metric for t in ("application", "network", "classic")
              for dims in ("load_balancer", "target_group") for s in DEFAULT.specs(t, dims)}
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@dataclass
class Measured:
    wall: float
    cpu: float
    rss_mb: float
    rc: int
    stderr: str

    def summary(self) -> str:
        lines = [line for line in self.stderr.splitlines() if "finished" in line
                 or "aborted" in line]
        return lines[-1][:400] if lines else self.stderr[-400:]


def run_child(args: Sequence[str], env: dict[str, str]) -> Measured:
    """lbscrape as a child process: wall time, CPU seconds and peak RSS of it alone.

    The peak is VmHWM, read while it runs: ru_maxrss of a child counts the parent's
    memory at the time of exec (here, the whole fake world)."""
    with tempfile.TemporaryFile() as err:
        started = time.monotonic()
        proc = subprocess.Popen([sys.executable, "-m", "lbscrape", *args], env=env,
                                stdout=subprocess.DEVNULL, stderr=err, cwd=env["BENCH_ROOT"])
        peak = [0]
        threading.Thread(target=_watch_hwm, args=(proc.pid, peak), daemon=True).start()
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.monotonic() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        text = err.read().decode(errors="replace")
    return Measured(wall, usage.ru_utime + usage.ru_stime, peak[0] / 1024, proc.returncode,
                    text)


def _watch_hwm(pid: int, peak: list[int]) -> None:
    """The last VmHWM read before the child ends (it only grows after exec)."""
    while True:
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        peak[0] = int(line.split()[1])
        except OSError:
            return
        time.sleep(0.02)


class World:
    def __init__(self, n_lbs: int, n_tgs: int, latency: float, elb_latency: float,
                 tmp: str, root: str) -> None:
        self.n_lbs, self.n_tgs = n_lbs, n_tgs
        self.lbs = [make_lb(REGION, i, n_tgs) for i in range(n_lbs)]
        self.aws = AwsStandIn(self.lbs, latency=latency, elb_latency=elb_latency,
                              quota=Quota())
        self.aws.start()
        self.kube = FakeKube()
        self.kube.start()
        self.kubeconfig = self.kube.write_kubeconfig(os.path.join(tmp, "kubeconfig"))
        self.kube.put("networking.k8s.io/v1", "ingressclasses", world.ingress_class())
        for i, lb in enumerate(self.lbs):
            self.kube.put("networking.k8s.io/v1", "ingresses",
                          world.ingress(f"team{i % 50}", f"web{i}", lb.dns_name))
            for j, tg in enumerate(lb.target_groups):
                self.kube.put("elbv2.k8s.aws/v1beta1", "targetgroupbindings",
                              world.target_group_binding(f"team{i % 50}", tg.name, tg.arn,
                                                         f"svc{i}-{j}", 80))
        self.receiver = CountingReceiver()
        self.receiver.start()
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("LBSCRAPE_", "AWS_"))}
        self.env.update(AWS_ENDPOINT_URL=self.aws.url, AWS_ACCESS_KEY_ID="bench",
                        AWS_SECRET_ACCESS_KEY="bench", AWS_DEFAULT_REGION=REGION,
                        AWS_CONFIG_FILE=os.devnull, AWS_SHARED_CREDENTIALS_FILE=os.devnull,
                        AWS_EC2_METADATA_DISABLED="true", LBSCRAPE_LOG_FORMAT="text",
                        BENCH_ROOT=root)

    @property
    def queries(self) -> int:
        return self.n_lbs * (len(DEFAULT.specs("application"))
                             + self.n_tgs * len(DEFAULT.specs("application", "target_group")))

    def stop(self) -> None:
        self.aws.stop()
        self.kube.stop()
        self.receiver.stop()


def own(labels: Labels) -> bool:
    """lbscrape's own series (lbscrape_run_*, ...), written besides CloudWatch's data."""
    return dict(labels).get("__name__", "").startswith("lbscrape_")


def expectation(starts: dict[str, int], stop: int, period: int = 60) -> Any:
    """Labels -> what every sample once gives, from the series' load balancer's start
    (its checkpoint, else the initial lookback) to `stop`."""
    cache: dict[tuple[str, int], Tally] = {}

    def expected(labels: Labels) -> Tally | None:
        d = dict(labels)
        metric = PROM_NAMES.get(d.get("__name__", ""))
        start = starts.get(d.get("load_balancer", ""))
        if metric is None or start is None:
            return None
        if (metric, start) not in cache:
            cache[(metric, start)] = expected_tally((t * 1000, value(metric, t))
                                                    for t in range(start, stop, period))
        return cache[(metric, start)]

    return expected


def set_checkpoints(kube: FakeKube, ends: dict[str, int]) -> None:
    kube.put("v1", "configmaps", {
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "lbscrape-checkpoint", "namespace": "monitoring"},
        "data": {"checkpoint.json": json.dumps(
            {"format": 1, "load_balancers": {k: isotime(v) for k, v in ends.items()}})}})


def checkpoints(kube: FakeKube) -> dict[str, int]:
    cm = kube.get("v1", "configmaps", "monitoring", "lbscrape-checkpoint")
    if not cm:
        return {}
    ends = json.loads(cm["data"]["checkpoint.json"])["load_balancers"]
    return {k: parse_isotime(v) for k, v in ends.items()}


def gmd_figures(w: World, started: float, latency: float, concurrency: int,
                wall: float, periods: int) -> str:
    calls = w.aws.calls()
    if not calls:
        return "no GetMetricData call"
    ok = [c for c in calls if not c.throttled]
    throttled = len(calls) - len(ok)
    minimum = max(math.ceil(w.queries / 500), math.ceil(w.queries * periods / 100_800))
    datapoints = sum(c.datapoints for c in ok)
    span = calls[-1].at + latency - calls[0].at
    peak_tps, peak_dps = peak_per_second(calls)
    quota = DPS_RECENT if calls[0].recent else DPS_OLD
    bound = len(ok) * latency / concurrency
    return (f"first GetMetricData after {calls[0].at - started:.2f}s; {len(calls)} calls "
            f"= {len(calls) / minimum:.2f}x the minimum {minimum}, {throttled} throttled; "
            f"wall {wall:.2f}s = {wall / bound if bound else 0:.2f}x calls*latency/"
            f"concurrency ({bound:.2f}s), {wall / (len(ok) * latency) if latency else 0:.2f}x "
            f"sequential; fetch {datapoints / span:,.0f} DPS over {span:.2f}s = "
            f"{datapoints / span / quota:.2f}x the {quota:,} quota, peak 1-s "
            f"{peak_dps:,} DPS ({peak_dps / quota:.2f}x), {peak_tps} TPS "
            f"({peak_tps / TPS_QUOTA:.2f}x)")


def bench_run(size: int, opts: argparse.Namespace, tmp: str) -> None:
    w = World(size, opts.tgs, opts.latency, opts.elb_latency, tmp, opts.root)
    try:
        now = int(time.time()) - 600
        base = ["run", "--cluster", "bench", "--region", REGION, "--kubeconfig", w.kubeconfig,
                "--remote-write-url", w.receiver.write_url, *shlex.split(opts.args)]
        for label, at in (("fresh", now), ("steady", now + 60)):
            w.aws.reset_log()
            w.receiver.reset()
            stop = (at - SETTLE) // 60 * 60
            if label == "steady":  # as if the fresh run had written everything
                set_checkpoints(w.kube, {lb.dimension: stop - 60 for lb in w.lbs})
            done = checkpoints(w.kube)
            starts = {lb.dimension: done.get(lb.dimension, stop - 600) for lb in w.lbs}
            started = time.monotonic()
            m = run_child([*base, "--now", str(at)], w.env)
            w.receiver.drain()
            problems = w.receiver.check(expectation(starts, stop), own)
            series = w.queries
            per_series = w.queries // w.n_lbs
            want = sum(per_series * (stop - s) // 60 for s in starts.values())
            got = w.receiver.total(own)
            data_series = sum(1 for labels in w.receiver.series if not own(labels))
            exact = "exact" if not problems and got == want and data_series == series \
                else f"NOT EXACT ({len(problems)} series differ, e.g. {problems[:1]})"
            print(f"run {size} ALBs x {opts.tgs} TGs, {label}, {opts.latency * 1000:.0f} ms/call: "
                  f"rc={m.rc} wall {m.wall:.2f}s, CPU {m.cpu:.2f}s, peak RSS {m.rss_mb:.0f} MB; "
                  f"{got:,}/{want:,} samples landed ({got / want:.3f}), {exact}; "
                  + gmd_figures(w, started, opts.latency, opts.concurrency, m.wall,
                                (stop - min(starts.values())) // 60))
            if m.rc:
                print(f"    {m.summary()}")
    finally:
        w.stop()


def bench_backfill(opts: argparse.Namespace, tmp: str) -> None:
    """The command at its default limits (instant, and at the per-call latency with a
    larger range, to see the quota), then the loop alone at no rate limit: lbscrape's
    own speed."""
    hours = opts.backfill_hours
    for n, latency in ((opts.backfill_lbs, 0.0), (opts.backfill_lbs_slow, opts.latency)):
        w = World(n, 0, latency, 0.0, tmp, opts.root)
        try:
            for dest in ("file", "remote-write"):
                _backfill_command(w, n, hours, latency, dest, opts, tmp)
            if latency == 0:
                for dest in ("file", "remote-write"):
                    _backfill_loop(w, n, hours, dest, opts, tmp)
        finally:
            w.stop()


def _backfill_command(w: World, n: int, hours: int, latency: float, dest: str,
                      opts: argparse.Namespace, tmp: str) -> None:
    now = int(time.time())
    start = now - hours * 3600
    w.aws.reset_log()
    w.receiver.reset()
    out = os.path.join(tmp, "backfill.om")
    state = os.path.join(tmp, "backfill-state.json")
    target = ["--output", out] if dest == "file" else ["--remote-write-url", w.receiver.write_url]
    started = time.monotonic()
    m = run_child(["backfill", "--cluster", "bench", "--region", REGION,
                   "--kubeconfig", w.kubeconfig, "--start", str(start), "--end", str(now),
                   "--yes", "--state-file", state, "--now", str(now), *target,
                   *shlex.split(opts.args)], w.env)
    stop = (now - SETTLE) // 60 * 60
    first = start // 60 * 60
    want = w.queries * ((stop - first) // 60)
    got = _count_file(out) if dest == "file" else w.receiver.total(own)
    exact = ""
    if dest == "remote-write":
        problems = w.receiver.check(expectation({lb.dimension: first for lb in w.lbs}, stop),
                                    own)
        exact = ", exact" if not problems and got == want else \
            f", NOT EXACT ({len(problems)} series differ)"
    print(f"backfill {n} ALBs x {hours}h into {dest}, {latency * 1000:.0f} ms/call: "
          f"rc={m.rc} wall {m.wall:.2f}s, CPU {m.cpu:.2f}s, peak RSS {m.rss_mb:.0f} MB; "
          f"{got:,}/{want:,} samples{exact}; end to end {got / m.wall:,.0f} datapoints/s; "
          + gmd_figures(w, started, latency, opts.concurrency, m.wall, (stop - first) // 60))
    if m.rc:
        print(f"    {m.summary()}")
    for path in (out, state):
        if os.path.exists(path):
            os.remove(path)


def _backfill_loop(w: World, n: int, hours: int, dest: str, opts: argparse.Namespace,
                   tmp: str) -> None:
    w.receiver.reset()
    w.aws.quota = None  # CloudWatch with no quota: what lbscrape could do
    target = os.path.join(tmp, "loop.om") if dest == "file" else w.receiver.write_url
    # lbscrape from --root (the working directory comes first), the bench from here.
    env = {**w.env, "PYTHONPATH": ROOT}
    proc = subprocess.run([sys.executable, "-m", "bench.scale", "--loop-child", dest, str(n),
                           str(hours), target], env=env, cwd=opts.root, text=True,
                          capture_output=True, check=False)
    if proc.returncode:
        print(f"backfill loop {n} ALBs x {hours}h into {dest}: failed: {proc.stderr[-400:]}")
        return
    samples, wall, cpu = (float(x) for x in proc.stdout.split())
    if dest == "remote-write":
        assert w.receiver.total() == samples, (w.receiver.total(), samples)
    w.aws.quota = Quota()
    print(f"backfill loop alone (no rate limit) {n} ALBs x {hours}h into {dest}, instant "
          f"stand-in without quota: {samples:,.0f} samples in {wall:.2f}s = {samples / wall:,.0f} "
          f"datapoints/s ({samples / wall / 400_000:.2f}x the 400 k target), "
          f"{samples / cpu:,.0f} per CPU second")
    if os.path.exists(target):
        os.remove(target)


def loop_child(dest: str, n: int, hours: int, target: str) -> None:
    """In a child process: the backfill loop through the library, at no rate limit, as
    the command runs it after planning. Prints samples, wall and CPU seconds."""
    import inspect

    import lbscrape.cli
    from lbscrape.aws import session as aws
    from lbscrape.core.config import RemoteWriteSettings
    from lbscrape.core.model import LoadBalancer
    from lbscrape.flows import backfill
    from lbscrape.prom import remote_write
    from lbscrape.prom.series import lb_labels

    # As `lbscrape` sets them for itself.
    gc.set_threshold(*getattr(lbscrape.cli, "GC_THRESHOLDS", gc.get_threshold()))
    now = int(time.time())
    targets = []
    for lb in (make_lb(REGION, i, 0) for i in range(n)):
        m = LoadBalancer(lb.arn, lb.name, "application", lb.dimension, ())
        targets += backfill.targets_of(m, DEFAULT, lb_labels(m, "bench", REGION), True)
    window = backfill.plan_range(now - hours * 3600, now, 60, SETTLE, now)
    plan = backfill.make_plan(window, targets)
    s = aws.session(REGION)
    light = getattr(aws, "cloudwatch_client", None)
    cw = light(s, 10) if light else aws.client(s, "cloudwatch")
    extra: dict[str, Any] = {}
    if "limits" in inspect.signature(backfill.run).parameters:
        from lbscrape.aws.limits import UNLIMITED
        extra["limits"] = UNLIMITED
    with tempfile.TemporaryDirectory() as tmp:
        state = backfill.State(window, tuple(targets), dest)
        store = backfill.StateFile(os.path.join(tmp, "state.json"))
        sink: Any = backfill.OpenMetricsSink(target, state, False) if dest == "file" else \
            backfill.RemoteWriteSink(remote_write.Client(RemoteWriteSettings(target)))
        cpu, started = time.process_time(), time.monotonic()
        backfill.run(plan, state, store, cw, sink, **extra)
        wall, cpu = time.monotonic() - started, time.process_time() - cpu
        sink.close()
    print(state.samples_written, wall, cpu)


def _count_file(path: str) -> int:
    if not os.path.exists(path):
        return 0
    with open(path, "rb") as f:
        return sum(1 for line in f if not line.startswith(b"#"))


def bench_help(root: str) -> None:
    for args in (["--help"], ["run", "--help"]):
        took = []
        for _ in range(7):
            started = time.monotonic()
            subprocess.run([sys.executable, "-m", "lbscrape", *args], stdout=subprocess.DEVNULL,
                           check=True, cwd=root)
            took.append(time.monotonic() - started)
        print(f"lbscrape {' '.join(args)}: median {statistics.median(took):.3f}s of 7 "
              f"({statistics.median(took) / 0.25:.2f}x the 0.25 s target)")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="50,350,2000,5000")
    p.add_argument("--tgs", type=int, default=3)
    p.add_argument("--latency", type=float, default=0.3)
    p.add_argument("--elb-latency", type=float, default=0.1)
    p.add_argument("--concurrency", type=int, default=10)
    p.add_argument("--backfill-lbs", type=int, default=200)
    p.add_argument("--backfill-hours", type=int, default=6)
    p.add_argument("--backfill-lbs-slow", type=int, default=600,
                   help="ALBs of the backfill at the per-call latency (a longer fetch)")
    p.add_argument("--loop-child", nargs=4, help=argparse.SUPPRESS)
    p.add_argument("--args", default="")
    p.add_argument("--only", choices=["run", "backfill", "help"])
    p.add_argument("--root", default=ROOT,
                   help="the lbscrape tree to run, e.g. an export of an older commit")
    opts = p.parse_args()
    if opts.loop_child:
        dest, n, hours, target = opts.loop_child
        loop_child(dest, int(n), int(hours), target)
        return
    with tempfile.TemporaryDirectory(prefix="lbscrape-bench-") as tmp:
        if opts.only in (None, "help"):
            bench_help(opts.root)
        if opts.only in (None, "run"):
            for size in (int(s) for s in opts.sizes.split(",")):
                bench_run(size, opts, tmp)
        if opts.only in (None, "backfill"):
            bench_backfill(opts, tmp)


if __name__ == "__main__":
    main()
