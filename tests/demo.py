"""The README's demo: one real `lbscrape run` against an embedded world.

moto (server mode) holds three load balancers with 30 minutes of synthetic traffic, a
fake Kubernetes API holds the Ingresses and Services that own them, and a local
Prometheus receives the samples. lbscrape runs as a separate process, configured only
with environment variables, exactly as the CronJob runs it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import random
import re
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from datetime import UTC, datetime

from moto.server import ThreadedMotoServer

from lbscrape.mixin.settings import parse_duration
from lbscrape.prom import self_metrics
from tests import world
from tests.fakekube import FakeKube

REGION = "us-east-1"
MINUTES = 30


def seed_world(aws: world.Aws, kube: FakeKube, now: int, rng: random.Random) -> None:
    """The demo's three load balancers, their traffic and their owners (also the world
    scripts/image-test runs the image against)."""
    storefront = aws.create_lb("k8s-shop-storefro-5c1d8e2a40")
    api = aws.create_lb("k8s-payments-api-7f3b9c1d22")
    ledger = aws.create_lb("k8s-payments-ledger-9a8b7c6d5e", "network")
    for lb, scale in ((storefront, 1.0), (api, 0.4), (ledger, 1.0)):
        seed_traffic(aws, lb, now, rng, scale)
    kube.put("networking.k8s.io/v1", "ingressclasses", world.ingress_class())
    kube.put("networking.k8s.io/v1", "ingresses",
             world.ingress("shop", "storefront", storefront.dns_name))
    kube.put("networking.k8s.io/v1", "ingresses",
             world.ingress("payments", "api", api.dns_name))
    kube.put("v1", "services", world.service("payments", "ledger", ledger.dns_name,
                                             lb_class="service.k8s.aws/nlb"))


def seed_traffic(aws: world.Aws, lb: world.SeededLb, now: int, rng: random.Random,
                 scale: float) -> None:
    first = now // 60 * 60 - MINUTES * 60
    minutes = [first + 60 * i for i in range(MINUTES + 1)]
    if lb.type == "application":
        req = {ts: round(scale * (900 + 300 * math.sin(ts / 900)) * rng.uniform(0.9, 1.1))
               for ts in minutes}
        aws.put(lb, "RequestCount", req.items())
        aws.put(lb, "HTTPCode_Target_2XX_Count", [(t, round(n * 0.97)) for t, n in req.items()])
        aws.put(lb, "HTTPCode_Target_4XX_Count", [(t, round(n * 0.025)) for t, n in req.items()])
        # 5xx are sparse, as CloudWatch publishes them only when non-zero.
        aws.put(lb, "HTTPCode_ELB_5XX_Count",
                [(t, rng.randint(1, 9)) for t in minutes if rng.random() < 0.25])
        aws.put(lb, "TargetResponseTime",
                [(t, round(rng.uniform(0.04, 0.09), 4)) for t in minutes])
        aws.put(lb, "ProcessedBytes", [(t, n * 2_150) for t, n in req.items()])
        aws.put(lb, "ConsumedLCUs", [(t, round(n / 25_000, 4)) for t, n in req.items()])
    else:
        aws.put(lb, "NewFlowCount", [(t, rng.randint(200, 260)) for t in minutes])
        aws.put(lb, "ActiveFlowCount", [(t, rng.randint(40, 60)) for t in minutes])
        aws.put(lb, "ProcessedBytes", [(t, rng.randint(3_000_000, 4_000_000)) for t in minutes])
        aws.put(lb, "TCP_Client_Reset_Count", [(t, rng.randint(0, 3)) for t in minutes])


def main() -> int:
    """The demo; everything it starts is stopped and everything it creates is removed at
    its end, also when it fails."""
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's per-request lines
    with contextlib.ExitStack() as stack:
        tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="lbscrape-demo-"))
        moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        moto.start()
        stack.callback(moto.stop)
        kube = FakeKube()
        kube.start()
        stack.callback(kube.stop)
        prom = world.Prometheus()
        stack.callback(prom.cleanup)
        prom.start()
        return demo(tmp, moto, kube, prom)
    raise AssertionError("unreachable")


def demo(tmp: str, moto: ThreadedMotoServer, kube: FakeKube, prom: world.Prometheus) -> int:
    rng = random.Random(42)
    host, port = moto.get_host_and_port()
    env = {
        "AWS_ENDPOINT_URL": f"http://{host}:{port}", "AWS_ACCESS_KEY_ID": "demo",
        "AWS_SECRET_ACCESS_KEY": "demo", "AWS_REGION": REGION,
        "AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    }
    os.environ.update(env)
    print(f"demo world: moto {env['AWS_ENDPOINT_URL']}, fake Kubernetes API {kube.url}, "
          f"Prometheus {prom.url}")
    aws = world.Aws(REGION)
    now = int(time.time())
    seed_world(aws, kube, now, rng)
    kube.put("v1", "services", world.service("shop", "checkout-pending", None,
                                             lb_class="service.k8s.aws/nlb"))
    kubeconfig = kube.write_kubeconfig(os.path.join(tmp, "kubeconfig"))

    run_env = {**os.environ, **env,
               "KUBECONFIG": kubeconfig,
               "LBSCRAPE_CLUSTER": "demo",
               "LBSCRAPE_REMOTE_WRITE_URL": prom.write_url,
               "LBSCRAPE_LABEL": "env=demo",
               "LBSCRAPE_LOG_FORMAT": "text"}
    run_env.pop("KUBERNETES_SERVICE_HOST", None)
    print("\n$ lbscrape run        (configured through LBSCRAPE_* env vars)")
    proc = subprocess.run([sys.executable, "-m", "lbscrape", "run"], env=run_env)
    if proc.returncode != 0:
        print(f"lbscrape run exited {proc.returncode}", file=sys.stderr)
        return proc.returncode
    show(prom)
    show_own(prom)
    show_mixin(prom, run_env, os.path.join(tmp, "mixin"))
    cm = kube.get("v1", "configmaps", "monitoring", "lbscrape-checkpoint") or {}
    print("\ncheckpoint ConfigMap monitoring/lbscrape-checkpoint:")
    print("  " + (cm.get("data") or {}).get("checkpoint.json", "(none)").replace("\n", "\n  "))
    return 0


def show(prom: world.Prometheus) -> None:
    metrics = ["alb_request_count_sum", "alb_http_code_elb_5xx_count_sum",
               "alb_target_response_time_average", "nlb_new_flow_count_sum",
               "nlb_processed_bytes_sum"]
    rows = []
    for name in metrics:
        for labels, samples in sorted(prom.raw(name).items()):
            d = dict(labels)
            owner = d.get("ingress") and f"ingress/{d['ingress']}" or f"service/{d.get('service')}"
            rows.append((name, d["load_balancer_name"], f"{d.get('namespace')}/{owner}",
                         str(len(samples)), _hhmm(samples[0][0]), _hhmm(samples[-1][0]),
                         f"{samples[-1][1]:.10g}"))
    head = ("metric", "load_balancer_name", "owner", "samples", "first", "last", "last value")
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    print("\nWhat landed in Prometheus (raw samples, CloudWatch timestamps, UTC):")
    for r in [head, *rows]:
        print("  " + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)))
    print("\nEvery series also carries cluster=\"demo\", region=\"us-east-1\", env=\"demo\" and "
          "load_balancer=<CloudWatch dimension>.")


# The README's queries on lbscrape's own series.
QUERIES = [
    ("the month's bill so far at list price, $",
     "sum_over_time(lbscrape_run_cloudwatch_metrics_requested[30d]) / 1000 * 0.01"),
    ("the worst freshness of each load balancer, s",
     "max_over_time(lbscrape_load_balancer_lag_seconds[10m])"),
    ("is it running? 1 when no run has written for 5 minutes, empty while it runs",
     'absent_over_time(lbscrape_run_success{cluster="demo"}[5m])'),
]


def show_own(prom: world.Prometheus) -> None:
    """lbscrape's own series, one sample each, and the README's queries on them."""
    rows, stamps = [], set()
    for name in (*self_metrics.RUN_SERIES, self_metrics.LAG, self_metrics.BUILD_INFO):
        order = ("found", "written", "failed")  # the contract's, not the alphabet's
        for labels, samples in sorted(prom.raw(name).items(), key=lambda kv: [
                order.index(v) if v in order else 0 for k, v in kv[0] if k == "state"]):
            d = {k: v for k, v in labels if k not in ("__name__", "cluster", "region", "env")}
            if name == self_metrics.LAG:
                d = {"load_balancer_name": d["load_balancer_name"]}
            sel = name + ("{" + ",".join(f'{k}="{v}"' for k, v in d.items()) + "}" if d else "")
            rows.extend((sel, f"{v:.10g}") for _, v in samples)
            stamps.update(t for t, _ in samples)
    when = ", ".join(datetime.fromtimestamp(t / 1000, UTC).strftime("%H:%M:%S.%f")[:-3]
                     for t in sorted(stamps))
    print(f"\nlbscrape's own series (one sample each, stamped with the run's end, {when} UTC;"
          "\nall carry cluster, region and env, each lag its load balancer's labels):")
    width = max(len(sel) for sel, _ in rows)
    for sel, value in rows:
        print(f"  {sel.ljust(width)}  {value}")
    print("\nThe README's queries on them:")
    for what, expr in QUERIES:
        result = prom.query(expr)
        shown = "; ".join(f"{dict(k).get('load_balancer_name', '')}{' ' if k else ''}{v:.6g}"
                          .strip() for k, v in sorted(result.items())) or "empty"
        print(f"  {expr}\n    {what}: {shown}")


def show_mixin(prom: world.Prometheus, env: dict[str, str], out: str) -> None:
    """Write the dashboards and alerts, then run one panel as Grafana would."""
    print(f"\n$ lbscrape mixin --output-dir {out}")
    subprocess.run([sys.executable, "-m", "lbscrape", "mixin", "--output-dir", out], env=env,
                   check=True)
    with open(os.path.join(out, "dashboards", "lbscrape-alb.json")) as f:
        board = json.load(f)
    panel = next(p for p in board["panels"] if p["title"] == "Requests per second")
    expr = panel["targets"][0]["expr"].replace("$__interval_ms", "60000")
    expr = re.sub(r"\$\w+", ".*", expr.replace("$__interval", "1m"))  # variables at All
    # As Grafana draws it: the panel's range shifted back by the data lag (its timeShift),
    # so the newest minute shown is complete.
    shift = parse_duration(panel.get("timeShift", "0s"))
    end = (time.time() - shift) // 60 * 60
    q = urllib.parse.urlencode({"query": expr, "start": end - 900, "end": end, "step": 60})
    with urllib.request.urlopen(f"{prom.url}/api/v1/query_range?{q}", timeout=10) as r:
        result = json.load(r)["data"]["result"]
    print(f"\nPanel '{panel['title']}' of '{board['title']}', 15 minutes to {shift // 60}m ago "
          "(its timeShift), all owners:")
    print(f"  {expr}")
    for s in result:
        values = [float(v) for _, v in s["values"]]
        print(f"  {owner(s['metric'])}: {values[-1]:.1f} req/s at the newest minute, "
              f"{sum(values) / len(values):.1f} on average over {len(values)} minutes")


def owner(labels: dict[str, str]) -> str:
    """How a series names its owner: an IngressGroup's carries ingress_group and neither
    namespace nor ingress; a Service's carries service."""
    if "ingress_group" in labels:
        return f"IngressGroup {labels['ingress_group']}"
    name = labels.get("ingress") or labels.get("service") or "?"
    return f"{labels.get('namespace', '?')}/{name}"


def _hhmm(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%H:%M")


if __name__ == "__main__":
    sys.exit(main())
