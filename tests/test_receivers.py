"""Receivers that refuse: the run must neither lose data silently nor wedge.

Real Prometheus (with and without an out-of-order window), a stub endpoint that answers
400 to everything, as a wrong path or a misconfigured proxy does, and receivers that
answer as Mimir, Cortex, Grafana Cloud and Thanos Receive do (tests/receivers.py) in
front of the real Prometheus. What a crash-repeat costs on each is asserted here.
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
from tests.receivers import Receiver, crash_then_repeat, exactly_once
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


# --- Mimir, Cortex, AMP, Thanos: loopback receivers in front of the real Prometheus ----


TENANT = "team-a"


@pytest.fixture
def mimir(prometheus):
    receiver = Receiver(prometheus, "mimir")
    receiver.start()
    yield receiver
    receiver.stop()


def test_mimir_crash_repeat_lands_once_with_the_tenant_on_every_request(
        aws, kube, prometheus, mimir, tmp_path):
    scene = Scene(aws, kube, prometheus)
    r = crash_then_repeat(scene, mimir.push_url, tmp_path, "--remote-write-tenant", TENANT)
    exactly_once(scene, r)
    assert mimir.tenants() == {TENANT}
    repeat = mimir.seen[r.requests("first"):]
    # The repeat: the whole window (10 minutes) in one request, ingested partially with
    # a 400 naming the first refused sample: 8 minutes refused; the 9th repeats each
    # series' newest sample, which a TSDB takes again as a no-op; the 10th is new. What
    # Mimir stored is not sent again: the repeat costs this one request.
    assert [(s.status, s.refused) for s in repeat] == [(400, repeat[0].samples * 8 // 10)]
    assert r.requests("second") == 1


def test_mimir_without_a_tenant_is_refused_with_401(aws, kube, prometheus, mimir):
    scene = Scene(aws, kube, prometheus)
    result = scene.run(scene.clock, remote_write_url=mimir.push_url, expect=1)
    assert "refused: HTTP 401: no org id" in summary(result)
    # The data's request, then the own series' (refused alike): nothing else.
    assert [s.status for s in mimir.seen] == [401, 401] and scene.checkpoint() is None
    assert scene.stored("alb_request_count_sum") == {}


def test_mimir_429_is_retried_with_and_without_retry_after(aws, kube, prometheus, mimir):
    scene = Scene(aws, kube, prometheus)
    mimir.throttle = ["1", None]
    started = time.monotonic()
    result = scene.run(scene.clock, "--remote-write-tenant", TENANT, "--remote-write-retries",
                       "2", remote_write_url=mimir.push_url)
    assert time.monotonic() - started >= 1.0  # Retry-After: 1 was honoured
    assert [s.status for s in mimir.seen] == [429, 429, 200, 200]  # then the own series
    assert "err-mimir-tenant-max-ingestion-rate" in result.stderr  # the retry is logged
    assert scene.stored("alb_request_count_sum")[scene.alb.name] == scene.expected(
        scene.requests, end_for(scene.clock) - 600, end_for(scene.clock))


def test_mimir_too_old_backfill_stops_with_advice_and_resumes_into_a_window(
        aws, kube, prometheus, mimir, tmp_path):
    """Mimir refuses samples more than 1h older than the tenant's newest unless its
    out_of_order_time_window covers them; here Prometheus behind it plays the tenant."""
    from tests.test_backfill import World, assert_exact, write_live_sample

    w = World(aws, kube)
    write_live_sample(prometheus)
    args = ("--remote-write-url", mimir.push_url, "--remote-write-tenant", TENANT,
            "--state-file", str(tmp_path / "state.json"), "--remote-write-retries", "0")
    result = w.backfill(*args, expect=1)
    assert "err-mimir-sample-timestamp-too-old" in result.stderr
    assert "out_of_order_time_window (Mimir)" in result.stderr
    prometheus.stop()
    prometheus.ooo_window = "1d"
    prometheus.start()
    w.backfill(*args, "--resume")
    assert_exact(prometheus, w)
    assert mimir.tenants() == {TENANT}


def test_grafana_cloud_basic_auth_with_an_api_token(aws, kube, prometheus, tmp_path):
    """Grafana Cloud's Mimir: the instance ID as user, an access-policy token as the
    password; the tenant comes from the credentials, no X-Scope-OrgID."""
    token = tmp_path / "token"
    token.write_text("glc_eyJvIjoiMTIzNCJ9\n")
    receiver = Receiver(prometheus, "mimir", tenant_header=None,
                        basic_auth=("123456", "glc_eyJvIjoiMTIzNCJ9"))
    receiver.start()
    try:
        scene = Scene(aws, kube, prometheus)
        wrong = tmp_path / "wrong"
        wrong.write_text("glc_other\n")
        bad = scene.run(scene.clock, "--remote-write-username", "123456",
                        "--remote-write-password-file", str(wrong),
                        remote_write_url=receiver.push_url, expect=1)
        assert "HTTP 401: invalid authentication credentials" in summary(bad)
        scene.run(scene.clock, "--remote-write-username", "123456",
                  "--remote-write-password-file", str(token),
                  remote_write_url=receiver.push_url)
    finally:
        receiver.stop()
    assert scene.stored("alb_request_count_sum")[scene.alb.name] == scene.expected(
        scene.requests, end_for(scene.clock) - 600, end_for(scene.clock))


def test_thanos_crash_repeat_409s_land_once_with_the_tenant_header(aws, kube, prometheus,
                                                                  tmp_path):
    receiver = Receiver(prometheus, "thanos", tenant_header="THANOS-TENANT")
    receiver.start()
    try:
        scene = Scene(aws, kube, prometheus)
        r = crash_then_repeat(scene, receiver.push_url, tmp_path,
                              "--remote-write-header", f"THANOS-TENANT={TENANT}")
    finally:
        receiver.stop()
    exactly_once(scene, r)
    assert receiver.tenants() == {TENANT}
    repeat = receiver.seen[r.requests("first"):]
    # Ingested partially, as Mimir's, but the 409 names no sample, so lbscrape splits
    # the request as for Prometheus until each refusal is proven: the repeated minutes
    # (the 9th too: the first request stored the new minute) are refused again sample by
    # sample, and nothing is stored twice.
    assert repeat[0].status == 409 and repeat[0].refused == repeat[0].samples * 8 // 10
    assert r.requests("second") == len(repeat) == 170
    assert r.rejected("second") == 9 * repeat[0].samples // 10


def test_prometheus_crash_repeat_lands_once(aws, kube, prometheus, tmp_path):
    """The baseline the others are compared with: all-or-nothing requests."""
    scene = Scene(aws, kube, prometheus)
    r = crash_then_repeat(scene, prometheus.write_url, tmp_path)
    exactly_once(scene, r)
    # The whole window refused (400, nothing stored); then split until each refused
    # sample is proven refused (lbscrape.prom.delivery): the 8 repeated minutes' samples
    # refused, the 9th (each series' newest sample, again) a no-op, the new one written.
    per_minute = int(r.first.split("samples_written=")[1].split()[0]) // 10
    assert r.requests("second") == 154
    assert r.rejected("second") == 8 * per_minute
