"""pipeline.run with real clients, one of them wrapped to fail: partial failures stay partial."""

from __future__ import annotations

import boto3
from botocore.exceptions import ClientError

from lbscrape.aws import cloudwatch
from lbscrape.core.config import CheckpointLocation, RemoteWriteSettings, RunConfig, WindowSettings
from lbscrape.core.errors import ExitStatus
from lbscrape.flows import pipeline
from lbscrape.kube.checkpoint_store import ConfigMapStore
from lbscrape.kube.client import make_api_client
from lbscrape.prom import remote_write
from tests import world
from tests.test_run import Scene, end_for


class ThrottledFor:
    """The real (moto) CloudWatch client, except calls that ask for one dimension value."""

    def __init__(self, dimension):
        self.real = boto3.client("cloudwatch", region_name="us-east-1")
        self.dimension = dimension
        self.refused = 0

    def get_metric_data(self, **kwargs):
        dims = {d["Value"] for q in kwargs["MetricDataQueries"]
                for d in q["MetricStat"]["Metric"]["Dimensions"]}
        if self.dimension in dims:
            self.refused += 1
            raise ClientError({"Error": {"Code": "Throttling", "Message": "Rate exceeded"}},
                              "GetMetricData")
        return self.real.get_metric_data(**kwargs)


def config():
    return RunConfig(
        cluster="test-cluster", region="us-east-1",
        window=WindowSettings(settle_delay=120, period=60, initial_lookback=600, max_catchup=3000),
        remote_write=None, checkpoint=CheckpointLocation("monitoring", "lbscrape-checkpoint"))


def clients(scene, cloudwatch):
    api, _ = make_api_client(scene.kube.kubeconfig_path, None)
    return pipeline.Clients(
        kube=api, elbv2=boto3.client("elbv2", region_name="us-east-1"),
        elb=boto3.client("elb", region_name="us-east-1"), cloudwatch=cloudwatch,
        store=ConfigMapStore(api, CheckpointLocation("monitoring", "lbscrape-checkpoint")),
        writer=remote_write.Client(RemoteWriteSettings(scene.prom.write_url)))


def test_one_throttled_load_balancer_does_not_stop_the_others(aws, kube, prometheus):
    scene = Scene(aws, kube, prometheus)
    cw = boto3.client("cloudwatch", region_name="us-east-1")
    first = scene.clock - 300
    pipeline.run(config(), clients(scene, cw), first, emit=lambda _: None)
    # A new ALB (no checkpoint, so a different window and its own call) is throttled.
    extra = aws.create_lb("k8s-blog-web-0123456789")
    aws.put(extra, "RequestCount", [(ts, 5.0) for ts in scene.minutes])
    kube.put("networking.k8s.io/v1", "ingresses", world.ingress("blog", "web", extra.dns_name))
    throttled = ThrottledFor(extra.dimension)
    result = pipeline.run(config(), clients(scene, throttled), scene.clock, emit=lambda _: None)
    assert throttled.refused == cloudwatch.MAX_ATTEMPTS  # retried, then given up
    assert result.status == ExitStatus.PARTIAL
    assert list(result.failed) == [extra.name] and "Throttling" in result.failed[extra.name]
    assert result.counters["lbs_written"] == 2
    cp = scene.checkpoint()
    assert extra.dimension not in cp
    assert scene.stored("alb_request_count_sum")[scene.alb.name] == scene.expected(
        scene.requests, end_for(first) - 600, end_for(scene.clock))
    # Next run, no throttling: the ALB catches up from its initial lookback.
    result = pipeline.run(config(), clients(scene, cw), scene.clock, emit=lambda _: None)
    assert result.status == ExitStatus.OK
    assert len(scene.stored("alb_request_count_sum")[extra.name]) == 10
