"""The test world: a real Prometheus, moto in server mode, the fake Kubernetes API, and
helpers to seed them with load balancers, owners and CloudWatch traffic.

Used by the tests and by the demo (tests/demo.py), so both exercise the same parts.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import boto3

PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _Child:
    """A receiver binary run as a child process with a temp data dir of its own."""

    dir: str
    proc: subprocess.Popen[bytes] | None

    def stop(self) -> None:
        """Stop only the process this object started, by its PID."""
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.proc = None
        if getattr(self, "log", None):
            self.log.close()

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)



class Prometheus(_Child):
    """Debian's prometheus as a plain child process on 127.0.0.1 with a temp TSDB."""

    def __init__(self, port: int | None = None, ooo_window: str | None = None) -> None:
        self.port = port or free_port()
        self.dir = tempfile.mkdtemp(prefix="lbscrape-prom-")
        self.ooo_window = ooo_window
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def write_url(self) -> str:
        return f"{self.url}/api/v1/write"

    def start(self, timeout: float = 20.0) -> Prometheus:
        """Start and wait until ready; if it does not get there, stop it, remove its
        directory and raise with the end of its log."""
        try:
            return self._start(timeout)
        except BaseException as e:
            log = self._log_tail()
            self.cleanup()
            raise RuntimeError(f"prometheus did not start: {e}; its log ends: {log}") from e

    def _start(self, timeout: float) -> Prometheus:
        config = os.path.join(self.dir, "prometheus.yml")
        with open(config, "w") as f:
            f.write("global:\n  scrape_interval: 1m\n")
            if self.ooo_window:
                f.write(f"storage:\n  tsdb:\n    out_of_order_time_window: {self.ooo_window}\n")
        self.log = open(os.path.join(self.dir, "prometheus.log"), "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={self.dir}/data",
             f"--web.listen-address=127.0.0.1:{self.port}", "--web.enable-remote-write-receiver",
             "--log.level=warn"],
            stdout=self.log, stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("prometheus exited")
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1) as r:
                    if r.status == 200:
                        return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("prometheus did not become ready")

    def _log_tail(self) -> str:
        try:
            with open(os.path.join(self.dir, "prometheus.log"), "rb") as f:
                return f.read()[-1000:].decode("utf-8", "replace")
        except OSError:
            return "(none)"

    def query(self, expr: str, at: float | None = None) -> dict[tuple[tuple[str, str], ...], float]:
        """An instant query: {sorted labels: value}."""
        q = urllib.parse.urlencode({"query": expr,
                                    "time": f"{at if at is not None else time.time():.3f}"})
        with urllib.request.urlopen(f"{self.url}/api/v1/query?{q}", timeout=10) as r:
            doc = json.load(r)
        return {tuple(sorted(res["metric"].items())): float(res["value"][1])
                for res in doc["data"]["result"]}

    def raw(self, selector: str, at: float | None = None, lookback: str = "3h") -> dict[
            tuple[tuple[str, str], ...], list[tuple[int, float]]]:
        """Every stored sample matching `selector`: {sorted labels: [(ts_ms, value)]}."""
        q = urllib.parse.urlencode({"query": f"{selector}[{lookback}]",
                                    "time": f"{at if at is not None else time.time():.3f}"})
        with urllib.request.urlopen(f"{self.url}/api/v1/query?{q}", timeout=10) as r:
            doc = json.load(r)
        out = {}
        for res in doc["data"]["result"]:
            labels = tuple(sorted(res["metric"].items()))
            out[labels] = [(round(float(t) * 1000), float(v)) for t, v in res["values"]]
        return out


VICTORIA_METRICS = shutil.which("victoria-metrics") or "/usr/bin/victoria-metrics"


class VictoriaMetrics(_Child):
    """Debian's single-node victoria-metrics as a child process on 127.0.0.1 with a temp
    storage dir. `dedup`: its -dedup.minScrapeInterval (None: off, its default)."""

    def __init__(self, dedup: str | None = None, retention: str = "1") -> None:
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="lbscrape-vm-")
        self.dedup = dedup
        self.retention = retention
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def write_url(self) -> str:
        return f"{self.url}/api/v1/write"

    def start(self, timeout: float = 20.0) -> VictoriaMetrics:
        self.log = open(os.path.join(self.dir, "victoria-metrics.log"), "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [VICTORIA_METRICS, f"-storageDataPath={self.dir}/data",
             f"-httpListenAddr=127.0.0.1:{self.port}", f"-retentionPeriod={self.retention}",
             "-loggerLevel=WARN", *([f"-dedup.minScrapeInterval={self.dedup}"]
                                    if self.dedup else [])],
            stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"victoria-metrics exited: see {self.dir}")
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=1) as r:
                    if r.status == 200:
                        return self
            except OSError:
                time.sleep(0.02)
        raise RuntimeError("victoria-metrics did not become ready")

    def get(self, path: str) -> bytes:
        with urllib.request.urlopen(f"{self.url}{path}", timeout=30) as r:
            return bytes(r.read())

    def export(self, selector: str) -> dict[tuple[tuple[str, str], ...], list[tuple[int, float]]]:
        """Every raw sample stored for `selector`, duplicates included, from
        /api/v1/export (after a flush, so the last second's writes are in it):
        {sorted labels: [(ts_ms, value)] in time order}."""
        self.get("/internal/force_flush")
        q = urllib.parse.urlencode({"match[]": selector, "start": "0"})
        out: dict[tuple[tuple[str, str], ...], list[tuple[int, float]]] = {}
        for line in self.get(f"/api/v1/export?{q}").splitlines():
            doc = json.loads(line)
            labels = tuple(sorted(doc["metric"].items()))
            out.setdefault(labels, []).extend(zip(doc["timestamps"], doc["values"],
                                                  strict=True))
        return {k: sorted(v) for k, v in out.items()}


@dataclass(frozen=True)
class SeededLb:
    arn: str
    name: str
    type: str
    dns_name: str
    dimension: str


@dataclass(frozen=True)
class SeededTg:
    arn: str
    name: str
    dimension: str


class Aws:
    """boto3 clients against moto's server (AWS_ENDPOINT_URL must point at it)."""

    def __init__(self, region: str = "us-east-1") -> None:
        self.region = region
        self.elbv2 = boto3.client("elbv2", region_name=region)
        self.elb = boto3.client("elb", region_name=region)
        self.cloudwatch = boto3.client("cloudwatch", region_name=region)
        ec2 = boto3.client("ec2", region_name=region)
        vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
        self.subnets = [
            ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.0.{i}.0/24",
                              AvailabilityZone=f"{region}{az}")["Subnet"]["SubnetId"]
            for i, az in enumerate("ab")
        ]

    def create_lb(self, name: str, lb_type: str = "application",
                  tags: dict[str, str] | None = None) -> SeededLb:
        lb = self.elbv2.create_load_balancer(
            Name=name, Subnets=self.subnets, Type=lb_type, Scheme="internet-facing",
            **_tags(tags))["LoadBalancers"][0]
        arn = lb["LoadBalancerArn"]
        return SeededLb(arn, name, lb_type, lb["DNSName"], arn.split(":", 5)[5][len("loadbalancer/"):])

    def create_classic(self, name: str, tags: dict[str, str] | None = None) -> SeededLb:
        """A classic ELB; its dimension (LoadBalancerName) is the name, it has no ARN."""
        lb = self.elb.create_load_balancer(
            LoadBalancerName=name, AvailabilityZones=[f"{self.region}a"],
            Listeners=[{"Protocol": "TCP", "LoadBalancerPort": 80, "InstancePort": 30080}],
            **_tags(tags))
        return SeededLb("", name, "classic", lb["DNSName"], name)

    def create_tg(self, lb: SeededLb, name: str, port: int = 80) -> SeededTg:
        """A target group forwarded to by a listener of `lb` (so it lists the LB)."""
        vpc = self.elbv2.describe_load_balancers(LoadBalancerArns=[lb.arn])[
            "LoadBalancers"][0]["VpcId"]
        proto = "HTTP" if lb.type == "application" else "TCP"
        tg = self.elbv2.create_target_group(Name=name, Protocol=proto, Port=port, VpcId=vpc,
                                            TargetType="ip")["TargetGroups"][0]
        self.elbv2.create_listener(LoadBalancerArn=lb.arn, Protocol=proto, Port=port,
                                   DefaultActions=[{"Type": "forward",
                                                    "TargetGroupArn": tg["TargetGroupArn"]}])
        arn = tg["TargetGroupArn"]
        return SeededTg(arn, name, arn.split(":", 5)[5])

    def put_tg(self, lb: SeededLb, tg: SeededTg, metric: str,
               points: Iterable[tuple[int, float]]) -> None:
        """Datapoints published per (TargetGroup, LoadBalancer), in the order lbscrape
        queries: moto matches dimensions in order, CloudWatch as a set."""
        self._put(lb, metric, points, [("TargetGroup", tg.dimension),
                                       ("LoadBalancer", lb.dimension)])

    def put(self, lb: SeededLb, metric: str, points: Iterable[tuple[int, float]]) -> None:
        """One datapoint per (timestamp seconds, value) for the LB's dimension."""
        dim = "LoadBalancerName" if lb.type == "classic" else "LoadBalancer"
        self._put(lb, metric, points, [(dim, lb.dimension)])

    def _put(self, lb: SeededLb, metric: str, points: Iterable[tuple[int, float]],
             dims: list[tuple[str, str]]) -> None:
        ns = {"application": "AWS/ApplicationELB", "network": "AWS/NetworkELB",
              "classic": "AWS/ELB"}[lb.type]
        data = [
            {"MetricName": metric, "Timestamp": datetime.fromtimestamp(ts, UTC), "Value": v,
             "Dimensions": [{"Name": n, "Value": x} for n, x in dims]}
            for ts, v in points
        ]
        for i in range(0, len(data), 500):
            self.cloudwatch.put_metric_data(Namespace=ns, MetricData=data[i:i + 500])


def _tags(tags: dict[str, str] | None) -> dict[str, Any]:
    """The Tags argument, left out when empty (the API wants at least one)."""
    return {"Tags": [{"Key": k, "Value": v} for k, v in tags.items()]} if tags else {}


def target_group_binding(namespace: str, name: str, tg_arn: str, service: str,
                         port: int | str) -> dict[str, Any]:
    return {"apiVersion": "elbv2.k8s.aws/v1beta1", "kind": "TargetGroupBinding",
            "metadata": {"namespace": namespace, "name": name},
            "spec": {"targetGroupARN": tg_arn, "targetType": "ip",
                     "serviceRef": {"name": service, "port": port}}}


def ingress_class(name: str = "alb", controller: str = "ingress.k8s.aws/alb") -> dict[str, Any]:
    return {"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass",
            "metadata": {"name": name}, "spec": {"controller": controller}}


def ingress(namespace: str, name: str, hostname: str | None, class_name: str | None = "alb",
            annotations: dict[str, str] | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"rules": [{"http": {"paths": [{"path": "/", "pathType": "Prefix",
                            "backend": {"service": {"name": name, "port": {"number": 80}}}}]}}]}
    if class_name:
        spec["ingressClassName"] = class_name
    return {
        "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
        "metadata": {"namespace": namespace, "name": name, "annotations": annotations or {}},
        "spec": spec,
        "status": {"loadBalancer": {"ingress": [{"hostname": hostname}] if hostname else []}},
    }


def service(namespace: str, name: str, hostname: str | None, lb_class: str | None = None,
            annotations: dict[str, str] | None = None, svc_type: str = "LoadBalancer"
            ) -> dict[str, Any]:
    spec: dict[str, Any] = {"type": svc_type, "ports": [{"port": 443, "protocol": "TCP"}]}
    if lb_class:
        spec["loadBalancerClass"] = lb_class
    return {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"namespace": namespace, "name": name, "annotations": annotations or {}},
        "spec": spec,
        "status": {"loadBalancer": {"ingress": [{"hostname": hostname}] if hostname else []}},
    }
