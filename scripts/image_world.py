"""The demo world for scripts/image-test, served from the host while the image runs.

    image_world.py serve DIR    start moto, the fake Kubernetes API and a Prometheus on
                                127.0.0.1, seeded as scripts/demo seeds them; write into DIR
                                the container's kubeconfig, web-identity token and env file,
                                and world.json; then serve until SIGTERM or SIGINT and stop
                                everything it started
    image_world.py check DIR [--none]
                                what the real `lbscrape run` must have left: exact samples in
                                Prometheus (every landed sample equals the seeded datapoint
                                of its minute) and the checkpoint ConfigMap; with --none,
                                that nothing landed and no checkpoint was stored (dry run)

It is a helper of scripts/image-test (which starts and stops it by PID), not a test of the
default suite. It reuses the test world (tests/world.py, tests/fakekube.py, tests/demo.py).
"""

from __future__ import annotations

import json
import logging
import os
import random
import signal
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from tests import world  # noqa: E402
from tests.demo import REGION, seed_world  # noqa: E402

CLUSTER = "image-test"
# Where scripts/image-test mounts the world's files in the container (read-only).
KUBECONFIG_PATH = "/etc/lbscrape/kubeconfig"
TOKEN_PATH = "/var/run/secrets/eks.amazonaws.com/serviceaccount/token"
# (Prometheus metric, CloudWatch metric, load-balancer name, owner label, owner)
CHECKED = [
    ("alb_request_count_sum", "RequestCount", "k8s-shop-storefro-5c1d8e2a40",
     "ingress", "storefront"),
    ("alb_request_count_sum", "RequestCount", "k8s-payments-api-7f3b9c1d22", "ingress", "api"),
    ("alb_http_code_target_2xx_count_sum", "HTTPCode_Target_2XX_Count",
     "k8s-shop-storefro-5c1d8e2a40", "ingress", "storefront"),
    ("nlb_new_flow_count_sum", "NewFlowCount", "k8s-payments-ledger-9a8b7c6d5e",
     "service", "ledger"),
]
MIN_SAMPLES = 5  # a first run writes the last ~8 settled minutes of its 10m lookback


class RecordingAws(world.Aws):
    """world.Aws that remembers every datapoint it seeds: {(lb, metric): {ts: value}}."""

    def __init__(self, region: str) -> None:
        super().__init__(region)
        self.seeded: dict[tuple[str, str], dict[int, float]] = {}

    def put(self, lb: world.SeededLb, metric: str, points: Any) -> None:
        points = list(points)
        self.seeded.setdefault((lb.name, metric), {}).update(dict(points))
        super().put(lb, metric, points)


def serve(directory: str) -> int:
    from moto.server import ThreadedMotoServer

    from tests.fakekube import FakeKube

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    kube = FakeKube()
    prom = world.Prometheus()
    started: list[Any] = []
    try:
        moto.start()
        started.append(moto.stop)
        host, port = moto.get_host_and_port()
        aws_env = {
            "AWS_ENDPOINT_URL": f"http://{host}:{port}", "AWS_ACCESS_KEY_ID": "image-test",
            "AWS_SECRET_ACCESS_KEY": "image-test", "AWS_DEFAULT_REGION": REGION,
            "AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        }
        os.environ.update(aws_env)
        os.environ.pop("AWS_PROFILE", None)
        kube.start()
        started.append(kube.stop)
        started.append(prom.cleanup)
        prom.start()

        aws = RecordingAws(REGION)
        now = int(time.time())
        rng = random.Random(42)
        seed_world(aws, kube, now, rng)

        kube.write_kubeconfig(os.path.join(directory, "kubeconfig"))
        with open(os.path.join(directory, "web-identity-token"), "w") as f:
            f.write("image-test-web-identity-token\n")
        for name in ("kubeconfig", "web-identity-token"):
            os.chmod(os.path.join(directory, name), 0o644)  # read by uid 65532
        # As cronjob/cronjob.yaml configures the container, plus the world's endpoints. AWS
        # credentials come as IRSA gives them to the pod: a role and a web-identity token
        # file, exchanged by botocore through (moto's) STS AssumeRoleWithWebIdentity.
        env = {"AWS_ENDPOINT_URL": aws_env["AWS_ENDPOINT_URL"], "AWS_DEFAULT_REGION": REGION,
               "AWS_ROLE_ARN": "arn:aws:iam::123456789012:role/lbscrape",
               "AWS_WEB_IDENTITY_TOKEN_FILE": TOKEN_PATH, "AWS_STS_REGIONAL_ENDPOINTS": "regional",
               "AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
               "AWS_EC2_METADATA_DISABLED": "true",  # no fallback to the host's credentials
               "KUBECONFIG": KUBECONFIG_PATH,
               "LBSCRAPE_CLUSTER": CLUSTER, "LBSCRAPE_REMOTE_WRITE_URL": prom.write_url,
               "LBSCRAPE_LABEL": "env=image-test", "LBSCRAPE_LOG_FORMAT": "json"}
        with open(os.path.join(directory, "env"), "w") as f:
            f.writelines(f"{k}={v}\n" for k, v in env.items())
        assert prom.proc
        doc = {"prometheus": prom.url, "prometheus_pid": prom.proc.pid,
               "kube": kube.url, "token": kube.token,
               "seeded": [[lb, metric, sorted(points.items())]
                          for (lb, metric), points in aws.seeded.items()]}
        with open(os.path.join(directory, "world.json"), "w") as f:
            json.dump(doc, f)
        # Written last: scripts/image-test waits for this file.
        with open(os.path.join(directory, "ready"), "w") as f:
            f.write(f"moto {aws_env['AWS_ENDPOINT_URL']}, fake Kubernetes API {kube.url}, "
                    f"Prometheus {prom.url}\n")
        stop.wait()
        return 0
    finally:
        for fn in reversed(started):
            fn()


def _get(url: str, token: str | None = None) -> tuple[int, Any]:
    req = urllib.request.Request(url)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as e:
        return e.code, None


def check(directory: str, none: bool) -> int:
    with open(os.path.join(directory, "world.json")) as f:
        doc = json.load(f)
    seeded = {(lb, metric): {int(ts): v for ts, v in points}
              for lb, metric, points in doc["seeded"]}
    problems: list[str] = []
    total = 0
    for prom_name, cw_metric, lb, owner_label, owner in CHECKED:
        selector = (f'{prom_name}{{cluster="{CLUSTER}",env="image-test",'
                    f'load_balancer_name="{lb}",{owner_label}="{owner}"}}[3h]')
        q = urllib.parse.urlencode({"query": selector, "time": f"{time.time():.3f}"})
        status, body = _get(f"{doc['prometheus']}/api/v1/query?{q}")
        if status != 200:
            problems.append(f"Prometheus query {selector}: HTTP {status}")
            continue
        results = body["data"]["result"]
        samples = [(round(float(t)), float(v)) for r in results for t, v in r["values"]]
        total += len(samples)
        if none:
            if samples:
                problems.append(f"{prom_name} {lb}: {len(samples)} samples after a dry run")
            continue
        if len(results) != 1:
            problems.append(f"{prom_name} {lb}: {len(results)} series, want 1")
        if len(samples) < MIN_SAMPLES:
            problems.append(f"{prom_name} {lb}: {len(samples)} samples, want >= {MIN_SAMPLES}")
        want = seeded[(lb, cw_metric)]
        wrong = [(t, v, want.get(t)) for t, v in samples if want.get(t) != v]
        if wrong:
            problems.append(f"{prom_name} {lb}: {len(wrong)} samples differ from the seeded "
                            f"datapoints, e.g. (ts, got, seeded) {wrong[0]}")
        else:
            print(f"  {prom_name}{{load_balancer_name={lb}}}: {len(samples)} samples, "
                  f"each equal to its seeded datapoint")
    status, cm = _get(f"{doc['kube']}/api/v1/namespaces/monitoring/configmaps/"
                      "lbscrape-checkpoint", doc["token"])
    if none and status != 404:
        problems.append(f"checkpoint ConfigMap after a dry run: HTTP {status}, want 404")
    if not none:
        if status != 200:
            problems.append(f"checkpoint ConfigMap: HTTP {status}, want 200")
        else:
            lbs = json.loads(cm["data"]["checkpoint.json"]).get("load_balancers", {})
            print(f"  checkpoint ConfigMap monitoring/lbscrape-checkpoint: "
                  f"{len(lbs) if isinstance(lbs, dict) else '?'} load balancers")
    if none and not problems:
        print("  nothing in Prometheus, no checkpoint ConfigMap")
    for p in problems:
        print(f"  FAIL: {p}")
    return 1 if problems else 0


def main(argv: list[str]) -> int:
    if len(argv) >= 2 and argv[0] == "serve":
        return serve(argv[1])
    if len(argv) >= 2 and argv[0] == "check":
        return check(argv[1], "--none" in argv[2:])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
