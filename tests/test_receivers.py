"""Receivers that refuse: the run must neither lose data silently nor wedge.

Real Prometheus (with and without an out-of-order window) and a stub endpoint that
answers 400 to everything, as a wrong path or a misconfigured proxy does.
"""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from lbscrape.core.config import parse_remote_write_url
from lbscrape.core.errors import ConfigError
from tests import world
from tests.fakereceiver import decode, push
from tests.faultproxy import FaultProxy
from tests.test_run import Scene, end_for, logs, summary


class Always400(BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = b"unsupported format\n"
        self.send_response(400)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def always400():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Always400)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/api/v1/write"
    server.shutdown()
    server.server_close()


def test_an_endpoint_refusing_everything_fails_the_run_and_moves_no_checkpoint(
        aws, kube, prometheus, always400):
    scene = Scene(aws, kube, prometheus)
    result = scene.run(scene.clock, remote_write_url=always400, expect=1)
    assert "refused every sample" in summary(result)
    assert scene.checkpoint() is None
    requests = int(summary(result).split("remote_write_requests=")[1].split()[0])
    assert requests < 60, "gave up early instead of bisecting every sample"


def _crash_then_repeat(scene, first, second):
    """Write at `first` with the checkpoint store failing, then run again at `second`."""
    scene.kube.inject("POST", "/configmaps", 500, times=5)
    scene.run(first, expect=1)
    assert scene.checkpoint() is None
    return scene.run(second)


def _counter(result, name):
    return int(summary(result).split(f"{name}=")[1].split()[0])


def _series_minutes(scene, lb):
    """{series name: [timestamps s]} of every data series of `lb` in Prometheus (not
    lbscrape's own lag series, which carries the data's labels)."""
    got = scene.prom.raw(f'{{load_balancer_name="{lb.name}",__name__!~"lbscrape_.+"}}')
    return {dict(k)["__name__"]: [t // 1000 for t, _ in v] for k, v in got.items()}


def test_repeated_window_is_written_exactly_at_about_a_request_per_refused_sample(
        aws, kube, prometheus):
    """A crash after the write: every series already holds the window. Prometheus does
    not say which series it refuses, so each repeated sample is proven refused on its
    own; the new minutes land, nothing else is lost."""
    scene = Scene(aws, kube, prometheus)
    result = _crash_then_repeat(scene, scene.clock - 120, scene.clock)
    start, end = end_for(scene.clock - 120) - 600, end_for(scene.clock)
    rejected, requests = _counter(result, "samples_rejected"), _counter(result, "remote_write_requests")
    series = {**_series_minutes(scene, scene.alb), **_series_minutes(scene, scene.nlb)}
    # The repeat's window (10 minutes back from its end) holds 8 written minutes; the
    # newest is each series' newest, an identical duplicate, accepted.
    assert rejected == 7 * len(series)
    # Per LB a request per repeated minute for the group, the first one halved; the
    # request and its split by LB; the rest at once.
    assert rejected < requests <= rejected + 2 * (8 + 2 + 1) + 3, summary(result)
    assert scene.stored("alb_request_count_sum")[scene.alb.name] == scene.expected(
        scene.requests, start, end)
    assert scene.stored("nlb_new_flow_count_sum")[scene.nlb.name] == scene.expected(
        scene.flows, start, end)
    assert all(ts == list(range(start, end, 60)) for ts in series.values()), series
    assert scene.checkpoint()[scene.alb.dimension] == _iso(end)


def test_a_series_holding_a_later_sample_loses_only_its_own_refused_samples(
        aws, kube, prometheus):
    """Another writer (a backfill, a second lbscrape) wrote one series of the ALB ahead
    of lbscrape's checkpoint. Only that series' samples before it are refused; the other
    series of the ALB and the NLB land exactly; the next run does not send them again."""
    scene = Scene(aws, kube, prometheus)
    first, second = scene.clock - 300, scene.clock - 60
    scene.run(first)
    end1, end2 = end_for(first), end_for(second)
    (victim,) = prometheus.raw("alb_request_count_sum")
    foreign = end1 + 120  # of end1..end1+180: two out of order, one with another value
    assert push(prometheus.write_url, [(victim, [(foreign * 1000, 4242.0)])]) == 204
    result = scene.run(second)
    s = summary(result)
    assert "lbs_failed=0" in s and _counter(result, "samples_rejected") == 3, s
    assert scene.stored("alb_request_count_sum")[scene.alb.name] == (
        scene.expected(scene.requests, end1 - 600, end1) + [(foreign, 4242.0)]
        + scene.expected(scene.requests, foreign + 60, end2))
    assert scene.stored("alb_target_response_time_average")[scene.alb.name] == [
        (ts, 0.25 + scene.minutes.index(ts) / 100) for ts in range(end1 - 600, end2, 60)]
    assert scene.stored("alb_http_code_elb_5xx_count_sum")[scene.alb.name] == [
        (ts, float(scene.minutes.index(ts) % 3)) for ts in range(end1 - 600, end2, 60)]
    others = {k: v for k, v in _series_minutes(scene, scene.alb).items()
              if k != "alb_request_count_sum"}
    assert len(others) > 5 and all(ts == list(range(end1 - 600, end2, 60))
                                   for ts in others.values())
    assert scene.stored("nlb_new_flow_count_sum")[scene.nlb.name] == scene.expected(
        scene.flows, end1 - 600, end2)
    # Logged once per load balancer and reason, naming the series.
    refused = [r["msg"] for r in logs(result) if r["msg"].startswith("remote write refused")]
    assert len(refused) == 2, refused
    assert all(scene.alb.name in m and "alb_request_count_sum{" in m for m in refused)
    assert any("out of order sample" in m for m in refused)
    assert any("duplicate sample for timestamp" in m for m in refused)
    assert scene.checkpoint() == {scene.alb.dimension: _iso(end2), scene.nlb.dimension: _iso(end2)}
    # The next run starts past the refused samples: it never sends them again.
    proxy = FaultProxy(prometheus.url)
    proxy.start()
    try:
        result = scene.run(scene.clock, remote_write_url=f"{proxy.url}/api/v1/write")
    finally:
        proxy.stop()
    sent = [ts for r in proxy.seen if r.method == "POST" for _, samples in decode(r.body)
            for ts, _ in samples]
    assert sent and min(sent) >= end2 * 1000
    assert _counter(result, "samples_rejected") == 0


def test_with_an_out_of_order_window_a_repeat_is_one_request(aws, kube, prometheus):
    """Identical samples inside the out-of-order window are accepted again, unchanged."""
    prometheus.stop()
    ooo = world.Prometheus(ooo_window="1h").start()
    try:
        scene = Scene(aws, kube, ooo)
        result = _crash_then_repeat(scene, scene.clock - 120, scene.clock)
        assert _counter(result, "remote_write_requests") == 1
        assert _counter(result, "samples_rejected") == 0
        start, end = end_for(scene.clock - 120) - 600, end_for(scene.clock)
        assert scene.stored("alb_request_count_sum")[scene.alb.name] == scene.expected(
            scene.requests, start, end)
        assert all(ts == list(range(start, end, 60))
                   for ts in _series_minutes(scene, scene.alb).values())
    finally:
        ooo.cleanup()


def test_out_of_order_window_too_old_500_is_a_refusal_not_an_outage(aws, kube, prometheus):
    """Prometheus 2.42 with out_of_order_time_window answers a sample older than the
    window with 500 "too old sample"; that must not be retried forever or stop the run."""
    prometheus.stop()
    ooo = world.Prometheus(ooo_window="1m").start()
    try:
        scene = Scene(aws, kube, ooo)
        result = _crash_then_repeat(scene, scene.clock - 120, scene.clock)
        assert "lbs_failed=0" in summary(result)
        assert scene.stored("alb_request_count_sum")[scene.alb.name] == scene.expected(
            scene.requests, end_for(scene.clock - 120) - 600, end_for(scene.clock))
        assert scene.stored("nlb_new_flow_count_sum")[scene.nlb.name] == scene.expected(
            scene.flows, end_for(scene.clock - 120) - 600, end_for(scene.clock))
    finally:
        ooo.cleanup()


@pytest.mark.parametrize("url", ["https://user:s3cr/et@mimir.example/api/v1/push",
                                 "https://svc:12/x@mimir.example/api/v1/push"])
def test_unencoded_password_is_refused_without_showing_it(url):
    with pytest.raises(ConfigError) as e:
        parse_remote_write_url(url)
    assert "s3cr" not in str(e.value) and "12/x" not in str(e.value)
    assert "percent-encoded" in str(e.value)


def test_summary_line_is_logged_when_a_run_aborts(aws, kube, prometheus):
    scene = Scene(aws, kube, prometheus)
    kube.inject("GET", "/services", 500, times=10)
    result = scene.run(scene.clock, expect=1)
    s = summary(result)
    assert s.startswith("run aborted owners=0 lbs_found=0") and "duration=" in s
    assert "Kubernetes API: list services: 500" in s


def _iso(ts):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


class HtmlNotFound(Always400):
    def do_POST(self):  # noqa: N802
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = b"<!DOCTYPE html><html><body>Not Found</body></html>"
        self.send_response(404)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def test_an_html_answer_is_called_out_as_a_probable_wrong_url(aws, kube, prometheus):
    server = ThreadingHTTPServer(("127.0.0.1", 0), HtmlNotFound)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        scene = Scene(aws, kube, prometheus)
        url = f"http://127.0.0.1:{server.server_address[1]}/graph"
        result = scene.run(scene.clock, remote_write_url=url, expect=1)
    finally:
        server.shutdown()
        server.server_close()
    s = summary(result)
    assert "HTTP 404: an HTML page (is the URL the remote-write endpoint" in s
    assert "<html" not in s and scene.checkpoint() is None
