"""GetMetricData: plan the calls (pure), then fetch them.

Cost is per metric requested, so every (load balancer, metric, statistic) is asked for
once per window, packed up to 500 queries per call, and a call is kept under CloudWatch's
100,800-datapoint limit by splitting long windows in time. A failed call fails only the
load balancers whose queries it carried.
"""

from __future__ import annotations

import functools
import json
import logging
import random
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionError,
    HTTPClientError,
    NoCredentialsError,
)

from lbscrape.aws.limits import UNLIMITED, RateLimiter
from lbscrape.core.budget import Abandoned, Budget, unlimited
from lbscrape.core.catalog import KINDS, Catalog
from lbscrape.core.errors import NO_CREDENTIALS, AwsError
from lbscrape.core.model import LoadBalancer, MetricSpec, Sample, TargetGroup, Window, isotime

log = logging.getLogger(__name__)

MAX_QUERIES_PER_CALL = 500
MAX_DATAPOINTS_PER_CALL = 100_800

# Errors that every call would hit: stop the run with one clear line instead of
# failing each load balancer with the same message.
FATAL_CODES = frozenset(
    {"ExpiredToken", "ExpiredTokenException", "InvalidClientTokenId",
     "UnrecognizedClientException", "InvalidSignatureException", "SignatureDoesNotMatch",
     "AuthFailure", "AccessDenied", "AccessDeniedException"}
)

# Retried, as botocore's standard mode would: throttles slow every worker down (see
# lbscrape.aws.limits), transient failures wait a little (full jitter).
THROTTLE_CODES = frozenset(
    {"Throttling", "ThrottlingException", "ThrottledException", "RequestThrottledException",
     "TooManyRequestsException", "RequestLimitExceeded", "RequestThrottled",
     "SlowDown", "EC2ThrottledException", "BandwidthLimitExceeded"}
)
TRANSIENT_CODES = frozenset({"RequestTimeout", "RequestTimeoutException",
                             "PriorRequestNotComplete", "InternalServiceError",
                             "InternalFailure", "ServiceUnavailable"})
MAX_ATTEMPTS = 4
RETRY_BASE = 0.5


class CloudWatchClient(Protocol):
    def get_metric_data(self, **kwargs: Any) -> dict[str, Any]: ...


@dataclass(frozen=True)
class FetchTarget:
    """Everything to fetch for one load balancer, or for one of its target groups."""

    lb_key: str
    """The load balancer it belongs to: a failure fails that load balancer."""
    dimensions: tuple[tuple[str, str], ...]
    window: Window
    specs: tuple[MetricSpec, ...]
    target_group: str = ""
    """The target group's dimension value; "" for the load balancer's own metrics."""


@dataclass(frozen=True)
class Query:
    id: str
    lb_key: str
    dimensions: tuple[tuple[str, str], ...]
    spec: MetricSpec
    target_group: str = ""


@dataclass(frozen=True)
class Call:
    window: Window
    queries: tuple[Query, ...]

    @property
    def datapoints(self) -> int:
        return len(self.queries) * self.window.periods

    def request(self) -> dict[str, Any]:
        return {
            "MetricDataQueries": [
                {
                    "Id": q.id,
                    "MetricStat": {
                        "Metric": {
                            "Namespace": q.spec.namespace,
                            "MetricName": q.spec.metric,
                            "Dimensions": [{"Name": n, "Value": v} for n, v in q.dimensions],
                        },
                        "Period": self.window.period,
                        "Stat": q.spec.stat,
                    },
                    "ReturnData": True,
                }
                for q in self.queries
            ],
            "StartTime": datetime.fromtimestamp(self.window.start, UTC),
            "EndTime": datetime.fromtimestamp(self.window.end, UTC),
            "ScanBy": "TimestampAscending",
        }


def split_window(window: Window, max_periods: int) -> list[Window]:
    """Cut a window into consecutive pieces of at most max_periods periods."""
    step = max_periods * window.period
    return [
        Window(s, min(s + step, window.end), window.period)
        for s in range(window.start, window.end, step)
    ]


def plan_calls(targets: Iterable[FetchTarget], max_queries: int = MAX_QUERIES_PER_CALL
               ) -> list[Call]:
    by_window: dict[Window, list[FetchTarget]] = defaultdict(list)
    for t in targets:
        if not t.window.empty and t.specs:
            by_window[t.window].append(t)
    calls = []
    for window in sorted(by_window, key=lambda w: (w.start, w.end, w.period)):
        pairs = [(t, s) for t in by_window[window] for s in t.specs]
        for piece in split_window(window, MAX_DATAPOINTS_PER_CALL):
            per_call = max(1, min(max_queries, MAX_DATAPOINTS_PER_CALL // piece.periods))
            for i in range(0, len(pairs), per_call):
                chunk = pairs[i : i + per_call]
                queries = tuple(
                    Query(f"q{n}", t.lb_key, t.dimensions, s, t.target_group)
                    for n, (t, s) in enumerate(chunk)
                )
                calls.append(Call(piece, queries))
    return calls


@dataclass
class FetchResult:
    samples: dict[tuple[str, MetricSpec], list[Sample]] = field(default_factory=dict)
    """(lb_key, spec) -> samples in time order, all inside the call's window."""
    tg_samples: dict[tuple[str, str, MetricSpec], list[Sample]] = field(default_factory=dict)
    """(lb_key, target group, spec) -> samples, of the queries with a target group."""
    failed: dict[str, str] = field(default_factory=dict)
    """lb_key -> why its data is incomplete this run."""
    calls: int = 0
    metrics_requested: int = 0

    def add(self, r: CallResult) -> None:
        for q, samples in zip(r.call.queries, r.samples, strict=True):
            if q.target_group:
                self.tg_samples.setdefault((q.lb_key, q.target_group, q.spec), []
                                           ).extend(samples)
            else:
                self.samples.setdefault((q.lb_key, q.spec), []).extend(samples)
        for key, why in r.failed.items():
            self.failed.setdefault(key, why)
        self.calls += r.requests
        self.metrics_requested += r.metrics_requested


@dataclass
class CallResult:
    """What one call (all its pages) brought back."""

    call: Call
    samples: list[list[Sample]]
    """Per query of the call (same order): its samples in time order, inside the window."""
    failed: dict[str, str] = field(default_factory=dict)
    """lb_key -> why the call's data for it is incomplete."""
    requests: int = 0
    """GetMetricData requests made (pages and retries)."""
    metrics_requested: int = 0


def fetch(client: CloudWatchClient, calls: Sequence[Call], budget: Budget | None = None,
          limiter: RateLimiter | None = None) -> FetchResult:
    """The calls one after another, merged (lbscrape.aws.fetcher runs them concurrently)."""
    result = FetchResult()
    budget = budget or unlimited()
    for i, call in enumerate(calls):
        try:
            result.add(fetch_call(client, call, budget, limiter))
        except Abandoned:  # the call in flight ran out of time: keep what came before it
            log.warning("GetMetricData abandoned in flight: %s", budget.reason)
            for later in calls[i:]:
                for q in later.queries:
                    result.failed.setdefault(q.lb_key, f"not fetched: {budget.reason} "
                                                       "(a call in flight was abandoned)")
            break
    return result


def fetch_call(client: CloudWatchClient, call: Call, budget: Budget | None = None,
               limiter: RateLimiter | None = None) -> CallResult:
    """One call, every page of it. Thread-safe: it shares only the limiter."""
    budget = budget or unlimited()
    limiter = limiter or RateLimiter(UNLIMITED)
    out = CallResult(call, [[] for _ in call.queries])
    by_id = {q.id: i for i, q in enumerate(call.queries)}
    pages: list[dict[str, tuple[list[Any], list[Any]]]] = []
    status: dict[str, str] = {}
    request = call.request()
    while True:
        resp = _get(client, request, call, budget, limiter, out)
        if resp is None and not pages:  # fetching stopped before the call was made
            for q in call.queries:
                out.failed.setdefault(q.lb_key, f"not fetched: {budget.reason}")
            return out
        if not isinstance(resp, dict):
            _fail_all(call, out, resp or f"not fetched: {budget.reason}")
            return out
        page: dict[str, tuple[list[Any], list[Any]]] = {}
        for r in resp.get("MetricDataResults", []):
            qid = r.get("Id")
            if qid not in by_id:
                continue
            status[qid] = r.get("StatusCode", "Complete")
            page[qid] = (_epoch(r.get("Timestamps", [])), r.get("Values", []))
            if status[qid] in ("InternalError", "Forbidden"):
                q = call.queries[by_id[qid]]
                msgs = "; ".join(m.get("Value", "") for m in r.get("Messages", []))
                out.failed.setdefault(q.lb_key, f"{q.spec.metric}: {status[qid]} {msgs}".strip())
        pages.append(page)
        token = resp.get("NextToken")
        if not token:
            break
        request["NextToken"] = token
    for qid, i in by_id.items():
        q = call.queries[i]
        if qid not in status:
            out.failed.setdefault(q.lb_key, f"{q.spec.metric}: missing from the response")
        elif status[qid] == "PartialData":
            out.failed.setdefault(q.lb_key, f"{q.spec.metric}: PartialData without NextToken")
        out.samples[i] = _samples(call.window, [p[qid] for p in pages if qid in p])
    return out


def _samples(w: Window, pages: list[tuple[list[Any], list[Any]]]) -> list[Sample]:
    """Whole periods inside the window only (the settle rule depends on it), in time
    order, one per timestamp (a later page wins)."""
    if len(pages) == 1 and len(pages[0][0]) == len(pages[0][1]):
        stamps, values = pages[0]
        every = range(int(stamps[0]), int(stamps[-1]) + 1, w.period) if stamps else range(0)
        if stamps and stamps == list(every) and w.start <= every.start and every.stop <= w.end \
                and (every.start - w.start) % w.period == 0:
            # The usual answer: every period, ascending, inside the window.
            ms = range(every.start * 1000, every.stop * 1000, every.step * 1000)
            return list(map(_new_sample, zip(ms, map(float, values), strict=True)))
    points = dict(p for stamps, values in pages for p in zip(stamps, values, strict=False))
    start, end, period = w.start, w.end, w.period
    return [Sample(int(t) * 1000, float(v)) for t, v in sorted(points.items())
            if start <= t < end and (t - start) % period == 0]


_new_sample = functools.partial(tuple.__new__, Sample)
"""Sample(ms, value) from a (ms, value) pair, without a Python call per sample."""


def _epoch(stamps: list[Any]) -> list[Any]:
    """Timestamps as epoch seconds: the fast parser leaves them so; botocore's parser (or
    a Stubber) gives datetimes."""
    if stamps and isinstance(stamps[0], datetime):
        return [t.timestamp() for t in stamps]
    return stamps


def _get(client: CloudWatchClient, request: dict[str, Any], call: Call, budget: Budget,
         limiter: RateLimiter, out: CallResult) -> dict[str, Any] | str | None:
    """One page: waits for its turn under the rate limits, retries throttles (slowing every
    worker down) and transient failures. Returns the answer, why there is none, or None
    when fetching stopped (the deadline, SIGTERM) before it was asked for."""
    why = ""
    for attempt in range(MAX_ATTEMPTS):
        if not limiter.acquire(call.datapoints, call.window.start, budget.wait):
            return why or None
        out.requests += 1
        out.metrics_requested += len(call.queries)
        try:
            resp = client.get_metric_data(**request)
        except NoCredentialsError as e:
            raise AwsError(NO_CREDENTIALS) from e
        except ClientError as e:
            code = e.response.get("Error", {}).get("Code", "")
            http = e.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
            if code in FATAL_CODES:
                raise AwsError(f"CloudWatch GetMetricData refused: {code}: {_msg(e)}") from e
            why = f"GetMetricData failed: {code}: {_msg(e)}"
            if code in THROTTLE_CODES or http == 429:
                limiter.throttled()
                continue
            if code not in TRANSIENT_CODES and http < 500:
                return why
        except (ConnectionError, HTTPClientError) as e:
            why = f"GetMetricData failed: {e}"
        except BotoCoreError as e:
            return f"GetMetricData failed: {e}"
        else:
            limiter.succeeded()
            return resp
        budget.wait(random.uniform(0, RETRY_BASE * 2 ** attempt))
    return why


def _fail_all(call: Call, result: CallResult, reason: str) -> None:
    log.warning("%s (%d queries, window %s..%s)", reason, len(call.queries),
                isotime(call.window.start), isotime(call.window.end))
    for q in call.queries:
        result.failed.setdefault(q.lb_key, reason)


def _msg(e: ClientError) -> str:
    return str(e.response.get("Error", {}).get("Message", "")).strip()


# GetMetricData's JSON, written and read by lbscrape rather than botocore, whose generic
# (de)serialisers walk the model for every field: about 36 ms of CPU to write 500 queries
# (json.dumps takes 5) and a datetime per datapoint read back (about 25 s per million
# datapoints). Both through botocore's event system, so the client stays boto3's:
# signing, endpoints, errors and metadata are its own. Only JSON: for any other
# protocol, or an answer that is not a 2xx JSON one, botocore does all of it.
_BODY = "lbscrape_body"


def light_client(client: Any) -> Any:
    """`client` (CloudWatch) with the lighter GetMetricData path registered."""
    if client.meta.service_model.resolved_protocol == "json":
        events = client.meta.events
        events.register("provide-client-params.cloudwatch.GetMetricData", _write_request)
        events.register("before-call.cloudwatch.GetMetricData", _put_body)
        events.register("before-parse.cloudwatch.GetMetricData", _read_answer)
    return client


def _write_request(params: dict[str, Any], context: dict[str, Any], **_: Any
                   ) -> dict[str, Any]:
    """provide-client-params: keep the request's JSON; botocore serialises an empty one."""
    doc = {k: int(v.timestamp()) if isinstance(v, datetime) else v for k, v in params.items()}
    context[_BODY] = json.dumps(doc, separators=(",", ":")).encode()
    return {"StartTime": doc["StartTime"], "EndTime": doc["EndTime"], "MetricDataQueries": []}


def _put_body(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
    """before-call: the request's JSON goes out instead of the empty one."""
    if _BODY in context:
        params["body"] = context.pop(_BODY)


def _read_answer(response_dict: dict[str, Any], customized_response_dict: dict[str, Any],
                 **_: Any) -> None:
    """before-parse: a 2xx JSON answer is decoded here (timestamps stay epoch seconds),
    and botocore is left an empty body to parse."""
    headers = response_dict.get("headers") or {}
    if response_dict.get("status_code") != 200 or \
            not str(headers.get("content-type", "")).startswith("application/x-amz-json"):
        return
    customized_response_dict.update(json.loads(response_dict["body"]))
    response_dict["body"] = b"{}"


def target_dimensions(lb: LoadBalancer, tg: TargetGroup) -> tuple[tuple[str, str], ...]:
    """CloudWatch matches the exact set, in any order; moto only in the order published, so
    tests publish in this one."""
    return (("TargetGroup", tg.dimension), ("LoadBalancer", lb.dimension))


def fetch_targets(lbs: Sequence[LoadBalancer], catalog: Catalog,
                  windows: Mapping[str, Window]) -> list[FetchTarget]:
    """Per load balancer its own metrics and each of its target groups', all in its
    window (exactly-once is per load balancer window)."""
    targets = []
    for lb in lbs:
        window = windows[lb.key]
        targets.append(FetchTarget(
            lb.key, ((KINDS[lb.type].dimension, lb.dimension),), window, catalog.specs(lb.type)))
        tg_specs = catalog.specs(lb.type, "target_group")
        targets += [FetchTarget(lb.key, target_dimensions(lb, tg), window, tg_specs,
                                           tg.dimension) for tg in lb.target_groups]
    return targets
