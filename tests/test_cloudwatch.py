"""GetMetricData planning (pure) and fetching, against a real boto3 client with Stubber.

Stubber answers inside botocore before any HTTP request is made, so nothing here talks
to AWS (or even to the moto server the autouse fixture starts).
"""

from __future__ import annotations

import random
import re
import socket
import zlib
from collections import defaultdict
from datetime import UTC, datetime

import boto3
import pytest
from botocore.config import Config
from botocore.stub import Stubber

from lbscrape.aws.cloudwatch import (
    MAX_ATTEMPTS,
    MAX_DATAPOINTS_PER_CALL,
    MAX_QUERIES_PER_CALL,
    Call,
    FetchTarget,
    fetch,
    plan_calls,
    split_window,
)
from lbscrape.aws.limits import UNLIMITED, RateLimiter
from lbscrape.core.catalog import default_specs
from lbscrape.core.errors import AwsError
from lbscrape.core.model import MetricSpec, Sample, Window

T0 = 1_795_392_000  # 2026-11-23T00:00:00Z
ALB_SPECS = default_specs("application")
NLB_SPECS = default_specs("network")
ID_RE = re.compile(r"^[a-z][A-Za-z0-9_]*$")


def target(i: int, window: Window, specs=ALB_SPECS) -> FetchTarget:
    dim = f"app/k8s-lb{i}/{i:016x}"
    return FetchTarget(dim, (("LoadBalancer", dim),), window, tuple(specs))


def check_call_limits(calls):
    for c in calls:
        assert 1 <= len(c.queries) <= MAX_QUERIES_PER_CALL
        assert c.datapoints <= MAX_DATAPOINTS_PER_CALL
        assert c.window.periods * len(c.queries) == c.datapoints
        ids = [q.id for q in c.queries]
        assert len(ids) == len(set(ids)), "duplicate Id in one call"
        for qid in ids:
            assert ID_RE.match(qid), qid
        req = c.request()
        assert len(req["MetricDataQueries"]) == len(c.queries)
        assert len({q["Id"] for q in req["MetricDataQueries"]}) == len(c.queries)


def coverage(calls):
    """(lb_key, spec) -> the windows of the calls that ask for it, in time order."""
    out = defaultdict(list)
    for c in calls:
        for q in c.queries:
            out[(q.lb_key, q.spec)].append(c.window)
    return {k: sorted(v, key=lambda w: w.start) for k, v in out.items()}


def tiles(pieces, window):
    """The pieces cover `window` exactly once: contiguous, disjoint, same period."""
    if not pieces or pieces[0].start != window.start or pieces[-1].end != window.end:
        return False
    if any(p.period != window.period or p.empty for p in pieces):
        return False
    return all(a.end == b.start for a, b in zip(pieces, pieces[1:], strict=False))


# --- plan_calls ------------------------------------------------------------------------


def test_many_lbs_are_packed_500_queries_per_call():
    win = Window(T0 - 600, T0, 60)
    targets = [target(i, win) for i in range(1200)]
    calls = plan_calls(targets)
    check_call_limits(calls)
    n = 1200 * len(ALB_SPECS)
    assert len(ALB_SPECS) == 14
    assert len(calls) == -(-n // MAX_QUERIES_PER_CALL)  # 34: packed, not one call per LB
    assert all(c.window == win for c in calls)
    cov = coverage(calls)
    assert set(cov) == {(t.lb_key, s) for t in targets for s in t.specs}
    assert all(v == [win] for v in cov.values()), "a query asked twice"


def test_long_window_is_limited_by_datapoints_per_call():
    win = Window(T0 - 5 * 3600, T0, 60)  # 300 periods: 336 queries fit in 100,800 points
    targets = [target(i, win) for i in range(100)]
    calls = plan_calls(targets)
    check_call_limits(calls)
    assert max(len(c.queries) for c in calls) == MAX_DATAPOINTS_PER_CALL // 300
    cov = coverage(calls)
    assert len(cov) == 100 * 14
    assert all(v == [win] for v in cov.values())


def test_hundred_day_window_is_split_in_time():
    win = Window(T0 - 100 * 86400, T0, 60)  # 144,000 periods > 100,800
    specs = ALB_SPECS[:2]
    calls = plan_calls([target(0, win, specs)])
    check_call_limits(calls)
    assert len({c.window for c in calls}) >= 2
    pieces = sorted({c.window for c in calls}, key=lambda w: w.start)
    assert pieces[0].start == win.start and pieces[-1].end == win.end
    for a, b in zip(pieces, pieces[1:], strict=False):
        assert a.end == b.start, "gap or overlap between time pieces"
    for p in pieces:
        assert p.period == 60 and (p.start - win.start) % 60 == 0
    cov = coverage(calls)
    assert set(cov) == {(target(0, win).lb_key, s) for s in specs}
    for v in cov.values():
        assert tiles(v, win)
        assert sum(p.periods for p in v) == 144_000


def test_different_windows_never_share_a_call():
    w1 = Window(T0 - 600, T0, 60)
    w2 = Window(T0 - 1200, T0, 60)
    w3 = Window(T0 - 600, T0, 300)
    targets = [target(i, [w1, w2, w3][i % 3], NLB_SPECS) for i in range(90)]
    calls = plan_calls(targets)
    check_call_limits(calls)
    by_lb = {t.lb_key: t.window for t in targets}
    for c in calls:
        assert {by_lb[q.lb_key] for q in c.queries} == {c.window}
    assert {c.window for c in calls} == {w1, w2, w3}


def test_empty_windows_and_no_specs_make_no_calls():
    assert plan_calls([target(0, Window(T0, T0, 60)), target(1, Window(T0 - 600, T0, 60), ()),
                       target(2, Window(T0, T0 - 60, 60))]) == []


@pytest.mark.parametrize("seed", range(6))
def test_random_plans_respect_the_limits_and_ask_each_period_once(seed):
    rng = random.Random(seed)
    targets = []
    for i in range(rng.randrange(1, 900)):
        period = rng.choice([60, 300])
        start = T0 - rng.choice([1, 10, 300, 2000, 30000, 120_000]) * period
        targets.append(target(i, Window(start, T0, period), rng.choice([ALB_SPECS, NLB_SPECS])))
    calls = plan_calls(targets)
    check_call_limits(calls)
    cov = coverage(calls)
    assert set(cov) == {(t.lb_key, s) for t in targets for s in t.specs}
    for t in targets:
        for s in t.specs:
            assert tiles(cov[(t.lb_key, s)], t.window), (t, s)


def test_split_window_pieces():
    win = Window(T0, T0 + 10 * 60, 60)
    assert split_window(win, 4) == [Window(T0, T0 + 240, 60), Window(T0 + 240, T0 + 480, 60),
                                    Window(T0 + 480, T0 + 600, 60)]
    assert split_window(win, 10) == [win]


def test_request_shape():
    win = Window(T0 - 600, T0, 300)
    (call,) = plan_calls([target(7, win, NLB_SPECS[:1])])
    req = call.request()
    assert req["StartTime"] == datetime.fromtimestamp(T0 - 600, UTC)
    assert req["EndTime"] == datetime.fromtimestamp(T0, UTC)
    assert req["ScanBy"] == "TimestampAscending"
    (q,) = req["MetricDataQueries"]
    assert q["MetricStat"] == {
        "Metric": {"Namespace": "AWS/NetworkELB", "MetricName": NLB_SPECS[0].metric,
                   "Dimensions": [{"Name": "LoadBalancer", "Value": "app/k8s-lb7/0000000000000007"}]},
        "Period": 300, "Stat": NLB_SPECS[0].stat}
    assert q["ReturnData"] is True


# --- fetch ------------------------------------------------------------------------------


@pytest.fixture
def cw():
    client = boto3.client("cloudwatch", region_name="us-east-1",
                          aws_access_key_id="testing", aws_secret_access_key="testing")
    with Stubber(client) as stubber:
        yield client, stubber
        stubber.assert_no_pending_responses()


def value(lb_key: str, metric: str, ts: int) -> float:
    return float(zlib.crc32(f"{lb_key}|{metric}|{ts}".encode()) % 100_000) / 4


def dt(ts: int) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


def result(q, timestamps, status="Complete", messages=()):
    r = {"Id": q.id, "Label": q.spec.metric, "Timestamps": [dt(t) for t in timestamps],
         "Values": [value(q.lb_key, q.spec.metric, t) for t in timestamps], "StatusCode": status}
    if messages:
        r["Messages"] = [{"Code": "x", "Value": m} for m in messages]
    return r


def full_response(call: Call, descending=False):
    ts = list(range(call.window.start, call.window.end, call.window.period))
    if descending:
        ts.reverse()
    return {"MetricDataResults": [result(q, ts) for q in call.queries]}


def expected_samples(lb_key, spec, window):
    return [Sample(t * 1000, value(lb_key, spec.metric, t))
            for t in range(window.start, window.end, window.period)]


WIN = Window(T0 - 600, T0, 60)


def test_fetch_complete(cw):
    client, stub = cw
    targets = [target(i, WIN, ALB_SPECS[:3]) for i in range(2)]
    (call,) = plan_calls(targets)
    stub.add_response("get_metric_data", full_response(call), call.request())
    res = fetch(client, [call])
    assert res.failed == {}
    assert res.calls == 1
    assert res.metrics_requested == 6
    assert set(res.samples) == {(t.lb_key, s) for t in targets for s in t.specs}
    for (lb, spec), got in res.samples.items():
        assert got == expected_samples(lb, spec, WIN)


def test_next_token_pages_are_merged_by_id(cw):
    client, stub = cw
    t = target(0, WIN, ALB_SPECS[:2])
    (call,) = plan_calls([t])
    q0, q1 = call.queries
    ts = list(range(WIN.start, WIN.end, 60))
    page1 = {"MetricDataResults": [result(q0, ts[:4], "PartialData"), result(q1, ts)],
             "NextToken": "tok-1"}
    page2 = {"MetricDataResults": [result(q0, ts[4:7], "PartialData")], "NextToken": "tok-2"}
    page3 = {"MetricDataResults": [result(q0, ts[7:])]}
    stub.add_response("get_metric_data", page1, call.request())
    stub.add_response("get_metric_data", page2, {**call.request(), "NextToken": "tok-1"})
    stub.add_response("get_metric_data", page3, {**call.request(), "NextToken": "tok-2"})
    res = fetch(client, [call])
    assert res.failed == {}
    assert res.calls == 3
    assert res.samples[(t.lb_key, q0.spec)] == expected_samples(t.lb_key, q0.spec, WIN)
    assert res.samples[(t.lb_key, q1.spec)] == expected_samples(t.lb_key, q1.spec, WIN)


def test_partial_data_without_next_token_fails_the_lb(cw):
    client, stub = cw
    ok, partial = target(0, WIN, ALB_SPECS[:1]), target(1, WIN, ALB_SPECS[:1])
    (call,) = plan_calls([ok, partial])
    ts = list(range(WIN.start, WIN.end, 60))
    q_ok, q_partial = call.queries
    assert q_partial.lb_key == partial.lb_key
    stub.add_response("get_metric_data", {"MetricDataResults": [
        result(q_ok, ts), result(q_partial, ts[:3], "PartialData")]})
    res = fetch(client, [call])
    assert set(res.failed) == {partial.lb_key}
    assert "PartialData" in res.failed[partial.lb_key]
    assert res.samples[(ok.lb_key, q_ok.spec)] == expected_samples(ok.lb_key, q_ok.spec, WIN)


@pytest.mark.parametrize("status", ["Forbidden", "InternalError"])
def test_bad_status_fails_only_that_lb(cw, status):
    client, stub = cw
    targets = [target(i, WIN, ALB_SPECS[:2]) for i in range(3)]
    (call,) = plan_calls(targets)
    ts = list(range(WIN.start, WIN.end, 60))
    bad = targets[1].lb_key
    results = [result(q, ts) if q.lb_key != bad or q.spec != ALB_SPECS[1]
               else result(q, [], status, ["no access to this metric"])
               for q in call.queries]
    stub.add_response("get_metric_data", {"MetricDataResults": results})
    res = fetch(client, [call])
    assert set(res.failed) == {bad}
    assert status in res.failed[bad] and ALB_SPECS[1].metric in res.failed[bad]
    assert "no access to this metric" in res.failed[bad]
    for t in targets:
        if t.lb_key != bad:
            for s in t.specs:
                assert res.samples[(t.lb_key, s)] == expected_samples(t.lb_key, s, WIN)


def test_missing_id_fails_that_lb(cw):
    client, stub = cw
    targets = [target(i, WIN, ALB_SPECS[:1]) for i in range(2)]
    (call,) = plan_calls(targets)
    ts = list(range(WIN.start, WIN.end, 60))
    stub.add_response("get_metric_data", {"MetricDataResults": [result(call.queries[0], ts)]})
    res = fetch(client, [call])
    assert set(res.failed) == {call.queries[1].lb_key}
    assert "missing" in res.failed[call.queries[1].lb_key]


def quick_limiter():
    """No rate limit, and a short pause after a throttle."""
    return RateLimiter(UNLIMITED, pause=0.01)


@pytest.mark.parametrize("throttled", [0, 1])
def test_throttled_call_fails_only_the_lbs_it_carried(cw, throttled):
    client, stub = cw
    targets = [target(i, WIN) for i in range(40)]  # 560 queries: two calls
    calls = plan_calls(targets)
    assert len(calls) == 2
    lbs = [{q.lb_key for q in c.queries} for c in calls]
    assert lbs[0] & lbs[1], "expected one LB to span both calls"
    for i, c in enumerate(calls):
        if i == throttled:
            for _ in range(MAX_ATTEMPTS):  # throttled every time it is tried
                stub.add_client_error("get_metric_data", service_error_code="Throttling",
                                      service_message="Rate exceeded", http_status_code=400)
        else:
            stub.add_response("get_metric_data", full_response(c), c.request())
    limiter = quick_limiter()
    res = fetch(client, calls, limiter=limiter)
    assert limiter.throttles == MAX_ATTEMPTS
    assert res.calls == MAX_ATTEMPTS + 1
    assert set(res.failed) == lbs[throttled]
    assert all("Throttling" in why for why in res.failed.values())
    for t in targets:
        if t.lb_key in lbs[throttled]:
            continue
        for s in t.specs:
            assert res.samples[(t.lb_key, s)] == expected_samples(t.lb_key, s, WIN)


@pytest.mark.parametrize("code, status", [("Throttling", 400), ("InternalServiceError", 500),
                                          ("ServiceUnavailable", 503)])
def test_throttles_and_transient_errors_are_retried(cw, code, status):
    client, stub = cw
    (call,) = plan_calls([target(0, WIN, ALB_SPECS[:2])])
    stub.add_client_error("get_metric_data", service_error_code=code, http_status_code=status)
    stub.add_response("get_metric_data", full_response(call), call.request())
    limiter = quick_limiter()
    res = fetch(client, [call], limiter=limiter)
    assert res.failed == {} and res.calls == 2
    assert limiter.throttles == (code == "Throttling")
    assert res.samples[(call.queries[0].lb_key, ALB_SPECS[0])] == expected_samples(
        call.queries[0].lb_key, ALB_SPECS[0], WIN)


def test_connection_error_fails_the_call_without_raising():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # Nothing listens on the port now: connection refused, at once, on loopback.
    client = boto3.client(
        "cloudwatch", region_name="us-east-1", endpoint_url=f"http://127.0.0.1:{port}",
        aws_access_key_id="testing", aws_secret_access_key="testing",
        config=Config(retries={"max_attempts": 1, "mode": "standard"}, connect_timeout=2))
    targets = [target(i, WIN, ALB_SPECS[:1]) for i in range(2)]
    calls = plan_calls(targets)
    res = fetch(client, calls)
    assert set(res.failed) == {t.lb_key for t in targets}
    assert all("GetMetricData failed" in why for why in res.failed.values())


def test_datapoints_outside_the_window_or_unaligned_are_dropped(cw):
    client, stub = cw
    t = target(0, WIN, ALB_SPECS[:1])
    (call,) = plan_calls([t])
    (q,) = call.queries
    inside = list(range(WIN.start, WIN.end, 60))
    noise = [WIN.start - 60, WIN.start + 30, WIN.start + 61, WIN.end, WIN.end + 60,
             WIN.end - 1]
    stub.add_response("get_metric_data", {"MetricDataResults": [result(q, inside + noise)]})
    res = fetch(client, [call])
    assert res.failed == {}
    assert res.samples[(t.lb_key, q.spec)] == expected_samples(t.lb_key, q.spec, WIN)


def test_results_are_sorted_ascending_even_when_returned_descending(cw):
    client, stub = cw
    targets = [target(i, WIN, ALB_SPECS[:2]) for i in range(2)]
    (call,) = plan_calls(targets)
    stub.add_response("get_metric_data", full_response(call, descending=True))
    res = fetch(client, [call])
    for (lb, spec), got in res.samples.items():
        assert [s.timestamp_ms for s in got] == sorted(s.timestamp_ms for s in got)
        assert got == expected_samples(lb, spec, WIN)


def test_split_window_results_are_joined_in_time_order(cw):
    client, stub = cw
    win = Window(T0 - 3600, T0, 60)
    targets = [target(i, win, ALB_SPECS[:2]) for i in range(3)]
    (whole,) = plan_calls(targets)
    # The same queries asked in three time pieces, as plan_calls does for huge windows.
    calls = [Call(piece, whole.queries) for piece in split_window(win, 25)]
    assert len(calls) == 3
    for c in calls:
        stub.add_response("get_metric_data", full_response(c, descending=True), c.request())
    res = fetch(client, calls)
    assert res.failed == {}
    for t in targets:
        for s in t.specs:
            assert res.samples[(t.lb_key, s)] == expected_samples(t.lb_key, s, win)


def test_unknown_ids_in_the_response_are_ignored(cw):
    client, stub = cw
    t = target(0, WIN, ALB_SPECS[:1])
    (call,) = plan_calls([t])
    (q,) = call.queries
    ts = list(range(WIN.start, WIN.end, 60))
    stray = {"Id": "zz9", "Timestamps": [dt(ts[0])], "Values": [1e9], "StatusCode": "Forbidden"}
    stub.add_response("get_metric_data", {"MetricDataResults": [stray, result(q, ts)]})
    res = fetch(client, [call])
    assert res.failed == {}
    assert list(res.samples) == [(t.lb_key, q.spec)]


@pytest.mark.parametrize("code", ["ExpiredToken", "ExpiredTokenException", "AccessDenied",
                                  "InvalidClientTokenId"])
def test_credential_errors_stop_the_run(cw, code):
    client, stub = cw
    calls = plan_calls([target(i, w, ALB_SPECS[:1]) for i, w in
                        enumerate([WIN, Window(T0 - 1200, T0, 60)])])
    assert len(calls) == 2
    stub.add_client_error("get_metric_data", service_error_code=code,
                          service_message="The security token included in the request is expired",
                          http_status_code=403)
    with pytest.raises(AwsError) as e:
        fetch(client, calls)
    assert code in str(e.value)
    assert "expired" in str(e.value)
    # The second call was never made (the Stubber would complain about an unexpected call).


def test_other_client_errors_do_not_stop_the_run(cw):
    client, stub = cw
    targets = [target(0, WIN, ALB_SPECS[:1]), target(1, Window(T0 - 1200, T0, 60), ALB_SPECS[:1])]
    calls = plan_calls(targets)
    stub.add_client_error("get_metric_data", service_error_code="InvalidParameterCombination",
                          service_message="bad", http_status_code=400)
    stub.add_response("get_metric_data", full_response(calls[1]), calls[1].request())
    res = fetch(client, calls)
    assert set(res.failed) == {calls[0].queries[0].lb_key}
    ok = calls[1].queries[0].lb_key
    assert res.samples[(ok, ALB_SPECS[0])] == expected_samples(ok, ALB_SPECS[0], calls[1].window)


def test_metric_spec_is_part_of_the_result_key(cw):
    # Two stats of one metric are two queries and two results.
    client, stub = cw
    specs = (MetricSpec("AWS/NetworkELB", "ActiveFlowCount", "Average", "nlb_a_average"),
             MetricSpec("AWS/NetworkELB", "ActiveFlowCount", "Maximum", "nlb_a_maximum"))
    t = target(0, WIN, specs)
    (call,) = plan_calls([t])
    ts = list(range(WIN.start, WIN.end, 60))
    a, b = call.queries
    rb = result(b, ts)
    rb["Values"] = [v + 1 for v in rb["Values"]]
    stub.add_response("get_metric_data", {"MetricDataResults": [result(a, ts), rb]})
    res = fetch(client, [call])
    got_a = res.samples[(t.lb_key, specs[0])]
    got_b = res.samples[(t.lb_key, specs[1])]
    assert [x.value + 1 for x in got_a] == [x.value for x in got_b]
