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
from tests.test_run import Scene, end_for, summary


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


def test_repeated_window_costs_a_request_per_minute_not_per_sample(aws, kube, prometheus):
    scene = Scene(aws, kube, prometheus)
    result = _crash_then_repeat(scene, scene.clock - 120, scene.clock)
    s = summary(result)
    requests = int(s.split("remote_write_requests=")[1].split()[0])
    # 2 LBs x 10 repeated minutes, plus a request or two each for the new minutes.
    assert requests <= 2 * 10 + 6, s
    assert scene.stored("alb_request_count_sum")[scene.alb.name] == scene.expected(
        scene.requests, end_for(scene.clock - 120) - 600, end_for(scene.clock))
    assert scene.checkpoint()[scene.alb.dimension] == _iso(end_for(scene.clock))


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
