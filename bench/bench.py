"""Figures for the hot paths, printed, not asserted: `.venv/bin/python -m bench.bench`.

1. encode: WriteRequest + snappy for live-run shapes and a backfill shape, against the
   2 M samples/s per core target, the protobuf runtime it replaced and snappy alone.
2. plan_calls: GetMetricData planning for many load balancers.
3. backfill memory: peak Python memory of a backfill to an OpenMetrics file, for a
   short and a 15-day range, with an in-process CloudWatch stand-in (flat, not growing),
   at no rate limit (the stand-in has no quota).

Scale (concurrency, quotas, thousands of load balancers, CPU per run): bench/scale.py.
4. repeat cost: a crash between write and checkpoint makes the next run re-send its
   window; Prometheus refuses the old samples whole and does not say which, so each
   refused sample is proven on its own (lbscrape.prom.delivery). Printed next to the cost
   before that (a refused minute skipped whole, losing any other series' samples in it),
   and for the steady state (50 ALBs with 2 target groups each, one minute) as a ratio to
   its 5 s bound. Measured against a real Prometheus (Debian's), so it needs `scripts/test`
   to have installed it.
5. own series: what a run keeps to count the zeros it wrote (a 50-minute catch-up of 1,000
   ALBs with no errors: every sparse counter zero-filled) and building the series of a run
   of 5,000 load balancers.
"""

from __future__ import annotations

import math
import os
import tempfile
import time
import tracemalloc
from datetime import UTC, datetime
from typing import Any

import snappy

from lbscrape.aws.cloudwatch import FetchTarget, plan_calls
from lbscrape.aws.limits import UNLIMITED
from lbscrape.core.catalog import DEFAULT, default_specs
from lbscrape.core.config import RemoteWriteSettings
from lbscrape.core.model import LoadBalancer, Owner, Sample, Series, TargetGroup, Window
from lbscrape.flows import backfill
from lbscrape.prom import delivery, remote_write, self_metrics, wire
from lbscrape.prom.series import build_series, lb_labels, tg_labels, zero_fill


def series(n_series: int, n_samples: int, t0: int) -> list[Series]:
    return [
        Series(tuple(sorted({"__name__": f"alb_metric_{i % 14}_sum", "cluster": "bench",
                             "load_balancer": f"app/lb-{i // 14}/0123456789abcdef",
                             "load_balancer_name": f"lb-{i // 14}", "namespace": "ns",
                             "ingress": f"ing-{i // 14}", "region": "us-east-1"}.items())),
               tuple(Sample((t0 + 60 * j) * 1000, float(j % 97)) for j in range(n_samples)))
        for i in range(n_series)
    ]


def lbscrape_series(n_lbs: int, n_samples: int, t0: int, tgs: int = 0) -> list[Series]:
    """What a run builds: per ALB its 14 default series and 10 per target group, labelled
    by lb_labels/tg_labels, zero-filled, one datapoint a minute."""
    specs = DEFAULT.specs("application")
    tg_specs = DEFAULT.specs("application", "target_group")
    out: list[Series] = []
    for i in range(n_lbs):
        name = f"k8s-ns{i}-web-{i:010d}"
        lb = LoadBalancer(f"arn:aws:elasticloadbalancing:us-east-1:123456789012:loadbalancer/"
                          f"app/{name}/0123456789abcdef", name, "application",
                          f"app/{name}/0123456789abcdef", (Owner("Ingress", f"ns{i}", "web", ()),),
                          tuple(TargetGroup(f"{name[:26]}-{g}",
                                            f"targetgroup/{name[:26]}-{g}/0123456789abcdef")
                                for g in range(tgs)))
        base = lb_labels(lb, "bench", "us-east-1", (("env", "prod"),))
        for labels, sp in [(base, specs), *((tg_labels(base, g), tg_specs)
                                            for g in lb.target_groups)]:
            data = {spec: [Sample((t0 + 60 * j) * 1000, float((i + j) % 97))
                           for j in range(n_samples)] for spec in sp}
            out += build_series(data, labels)
    return out


def protobuf_encode(data: list[Series]) -> bytes:
    """How remote_write.encode built requests before lbscrape.prom.wire: the protobuf
    runtime, a Python call per field."""
    from lbscrape.prom.prompb import WriteRequest

    req = WriteRequest()
    for s in data:
        ts = req.timeseries.add()
        for name, value in s.labels:
            ts.labels.add(name=name, value=value)
        for sample in s.samples:
            ts.samples.add(value=sample.value, timestamp=sample.timestamp_ms)
    return bytes(snappy.compress(req.SerializeToString()))


def _cpu(f: Any, data: Any, fresh: Any = None, repeat: int = 5) -> float:
    """Best CPU seconds of `repeat` calls (the machine is shared: the best is the least
    disturbed); `fresh` runs before each call, untimed."""
    best = math.inf
    for _ in range(repeat):
        if fresh:
            fresh()
        start = time.process_time()
        f(data)
        best = min(best, time.process_time() - start)
    return best


ENCODE_TARGET = 2e6  # samples/s per core (issue 15)


def bench_encode() -> None:
    """encode() of lbscrape's request shapes, on one core (process CPU time): a fresh
    process (caches empty, as every CronJob run starts), the same request again (a
    bisected or repeated one), the protobuf runtime it replaced, and snappy alone."""
    print(f"encode, samples/s per core; target {ENCODE_TARGET / 1e6:.0f} M "
          f"(load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores):")
    t0 = 1_700_000_000
    shapes = (("live, 1 minute (steady state)", lbscrape_series(500, 1, t0, tgs=3)),
              ("live, 10 minutes (first run)", lbscrape_series(200, 10, t0, tgs=3)),
              ("backfill, 500 minutes", lbscrape_series(4, 500, t0, tgs=3)),
              ("bench.series 14000 x 10", series(14_000, 10, t0)),
              ("bench.series 2000 x 500", series(2_000, 500, t0)))
    for name, data in shapes:
        total = delivery.count(data)
        raw = wire.write_request(data)
        cold = total / _cpu(remote_write.encode, data, wire.clear_caches)
        warm = total / _cpu(remote_write.encode, data)
        before = total / _cpu(protobuf_encode, data, repeat=3)
        alone = total / _cpu(snappy.compress, raw)
        body = remote_write.encode(data)
        print(f"  {name}: {len(data)} series, {total} samples, {len(body) / total:.1f} B/sample: "
              f"fresh {cold / 1e6:.2f} M ({cold / ENCODE_TARGET:.2f}x target, "
              f"{cold / alone:.2f}x snappy alone), again {warm / 1e6:.2f} M "
              f"({warm / ENCODE_TARGET:.2f}x); protobuf runtime {before / 1e6:.2f} M "
              f"({cold / before:.1f}x faster now); snappy alone {alone / 1e6:.0f} M")


def bench_plan() -> None:
    specs = default_specs("application")
    targets = [FetchTarget(f"lb{i}", (("LoadBalancer", f"app/lb{i}/x"),),
                           Window(0, 600, 60), specs) for i in range(2_000)]
    start = time.perf_counter()
    calls = plan_calls(targets)
    took = time.perf_counter() - start
    print(f"plan_calls 2000 ALBs x 14 metrics, 10-minute window: {len(calls)} calls, "
          f"{sum(len(c.queries) for c in calls)} metrics, {took * 1000:.0f} ms")


class _FakeCloudWatch:
    """Answers GetMetricData with one datapoint per period for every query."""

    def get_metric_data(self, **req: Any) -> dict[str, Any]:
        start, end = int(req["StartTime"].timestamp()), int(req["EndTime"].timestamp())
        out = []
        for q in req["MetricDataQueries"]:
            period = q["MetricStat"]["Period"]
            stamps = [datetime.fromtimestamp(t, UTC) for t in range(start, end, period)]
            out.append({"Id": q["Id"], "StatusCode": "Complete", "Timestamps": stamps,
                        "Values": [float(i % 97) for i in range(len(stamps))]})
        return {"MetricDataResults": out}


def bench_backfill_memory() -> None:
    now = 1_800_000_000
    with tempfile.TemporaryDirectory() as tmp:
        for days, fill in ((1, False), (15, False), (15, True)):
            targets = [backfill.Target(
                f"app/lb-{i}/0123456789abcdef", f"lb-{i}",
                (("LoadBalancer", f"app/lb-{i}/0123456789abcdef"),),
                (("cluster", "bench"), ("load_balancer_name", f"lb-{i}")),
                DEFAULT.specs("application"),
                DEFAULT.fill_plan("application") if fill else None) for i in range(5)]
            window = backfill.plan_range(now - days * 86400 + 600, now, 60, 120, now)
            plan = backfill.make_plan(window, targets)
            state = backfill.State(window, tuple(targets), "file")
            store = backfill.StateFile(os.path.join(tmp, f"state-{days}-{fill}.json"))
            sink = backfill.OpenMetricsSink(os.path.join(tmp, f"out-{days}.om"), state, False)
            tracemalloc.start()
            started = time.perf_counter()
            backfill.run(plan, state, store, _FakeCloudWatch(), sink, limits=UNLIMITED)
            took = time.perf_counter() - started
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
            sink.close()
            print(f"backfill {days:2d} days x 5 ALBs, zero-fill {'on ' if fill else 'off'}: "
                  f"{len(plan.calls)} calls, {plan.metrics_requested} metrics "
                  f"(${plan.dollars:.4f}), {state.samples_written:,} samples in {took:.1f}s, "
                  f"peak {peak / 2**20:.0f} MiB")

# Measured on this 2-core machine before exact refusal handling (commit 7c35233):
# (ALBs, minutes) -> (requests, seconds).
BEFORE = {(1, 10): (11, 0.02), (10, 10): (101, 0.15), (50, 30): (1502, 2.27)}
STEADY_BOUND = 5.0  # seconds, for one repeated minute of 50 ALBs with their target groups
STEADY_BEFORE = {1: (1, 0.08), 2: (151, 0.74)}  # written minutes -> (requests, seconds)


def _labelled(data: list[Series], run: str) -> list[Series]:
    return [Series(tuple(sorted({**dict(s.labels), "run": run}.items())), s.samples)
            for s in data]


def _with_target_groups(n_lbs: int, minutes: int, t0: int) -> list[delivery.LbBatch]:
    """Per ALB its 14 series and 2 target groups of 10 series each."""
    batches = []
    for i in range(n_lbs):
        own = series(14, minutes, t0)
        tgs = [Series(tuple(sorted({**dict(s.labels), "target_group": f"tg-{i}-{g}",
                                    "__name__": f"alb_tg_metric_{k}_sum"}.items())), s.samples)
               for g in range(2) for k, s in enumerate(series(10, minutes, t0))]
        data = _labelled([Series(tuple(sorted({**dict(s.labels),
                                              "load_balancer_name": f"lb-{i}"}.items())),
                                 s.samples) for s in own + tgs], "steady")
        batches.append(delivery.LbBatch(f"lb{i}", tuple(data), t0 + 60 * minutes))
    return batches


def _repeat(client: remote_write.Client, written: list[delivery.LbBatch],
            repeated: list[delivery.LbBatch]) -> tuple[int, delivery.Delivery, float]:
    delivery.deliver(client, delivery.plan_requests(written, 20_000))
    before = client.requests
    start = time.perf_counter()
    out = delivery.deliver(client, delivery.plan_requests(repeated, 20_000))
    return client.requests - before, out, time.perf_counter() - start


def _cut(batches: list[delivery.LbBatch], minutes: int) -> list[delivery.LbBatch]:
    """The first `minutes` of each batch."""
    out = []
    for b in batches:
        cut = tuple(Series(s.labels, s.samples[:minutes]) for s in b.series)
        out.append(delivery.LbBatch(b.lb_key, cut, cut[0].samples[-1].timestamp_ms // 1000 + 60))
    return out


def bench_repeat() -> None:
    from tests.world import Prometheus

    for ooo in (None, "1h"):
        prom = Prometheus(ooo_window=ooo).start()
        try:
            client = remote_write.Client(RemoteWriteSettings(prom.write_url))
            t0 = int(time.time()) // 60 * 60 - 1800
            where = "Prometheus" if ooo is None else f"Prometheus, out_of_order_time_window {ooo}"
            for (n_lbs, minutes), (old, old_took) in BEFORE.items():
                data = _labelled(series(14 * n_lbs, minutes, t0), f"{n_lbs}x{minutes}")
                batches = [delivery.LbBatch(f"lb{i}", tuple(data[14 * i:14 * i + 14]),
                                            t0 + 60 * minutes) for i in range(n_lbs)]
                n, out, took = _repeat(client, batches, batches)
                was = f" (before: {old} requests, {old_took:.2f}s)" if ooo is None else ""
                print(f"repeat of a written {minutes}-minute window, {n_lbs} ALB(s), "
                      f"{delivery.count(data)} samples, {where}: {n} requests, "
                      f"{len(out.rejected)} refused, {len(out.failed)} failed, {took:.2f}s{was}")
            if ooo is None:
                _steady(client, t0 + 1500)
        finally:
            prom.cleanup()


def _steady(client: remote_write.Client, t0: int) -> None:
    """The steady state: a run that wrote its minute (or two) crashed; the next one sends
    them again with its own minute."""
    for written in (1, 2):
        batches = _with_target_groups(50, written + 1, t0)
        n, out, took = _repeat(client, _cut(batches, written), batches)
        samples = sum(delivery.count(b.series) for b in batches)
        old, old_took = STEADY_BEFORE[written]
        print(f"steady-state repeat, 50 ALBs x 2 target groups ({samples} "
              f"samples), {written} written minute(s) sent again with the next: {n} requests, "
              f"{len(out.rejected)} refused, {took:.2f}s = {took / STEADY_BOUND:.0%} of "
              f"the {STEADY_BOUND:.0f}s bound (before: {old} requests, {old_took:.2f}s)")
        t0 += 60 * (written + 1)


def bench_self_metrics() -> None:
    n, minutes = 1_000, 50
    fill = DEFAULT.fill_plan("application")
    traffic = [Sample((1_800_000_000 + 60 * j) * 1000, 100.0 + j) for j in range(minutes)]
    inputs = []
    for i in range(n):
        data = {s: traffic if s == fill.traffic else [] for s in DEFAULT.specs("application")}
        inputs.append((data, zero_fill(data, fill)[0], {"cluster": "bench",
                                                       "load_balancer_name": f"lb-{i}"}))
    tracemalloc.start()
    start = time.perf_counter()
    zeros = {f"lb-{i}": self_metrics.zero_times(*x) for i, x in enumerate(inputs)}
    took = time.perf_counter() - start
    kept = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    through = {k: 1_800_000_000 + 60 * minutes for k in zeros}
    start = time.perf_counter()
    written = self_metrics.zeros_written(zeros, through, ())
    counted = time.perf_counter() - start
    print(f"zeros written, {n} ALBs x {minutes} minutes: {written:,} zeros, kept "
          f"{kept / 2**20:.1f} MiB ({kept / written:.0f} B/zero), {took:.2f}s to note, "
          f"{counted * 1000:.0f} ms to count")
    report = self_metrics.RunReport(
        labels={"cluster": "bench", "region": "r"}, timestamp_ms=1, end=0.0, exit_code=0,
        duration=1.0, version="x", freshness=tuple(self_metrics.Freshness(
            {"cluster": "bench", "load_balancer_name": f"lb-{i}"}, 0) for i in range(5_000)))
    start = time.perf_counter()
    body = remote_write.encode(self_metrics.build(report))
    took = time.perf_counter() - start
    print(f"own series of a run of 5000 load balancers: {took * 1000:.0f} ms to build and "
          f"encode, {len(body) / 1024:.0f} KiB")


if __name__ == "__main__":
    bench_encode()
    bench_plan()
    bench_backfill_memory()
    bench_repeat()
    bench_self_metrics()
