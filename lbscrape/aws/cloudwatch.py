"""GetMetricData: plan the calls (pure), then fetch them.

Cost is per metric requested, so every (load balancer, metric, statistic) is asked for
once per window, packed up to 500 queries per call, and a call is kept under CloudWatch's
100,800-datapoint limit by splitting long windows in time. A failed call fails only the
load balancers whose queries it carried.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

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


def fetch(client: CloudWatchClient, calls: Sequence[Call], budget: Budget | None = None
          ) -> FetchResult:
    budget = budget or unlimited()
    result = FetchResult()
    for i, call in enumerate(calls):
        if budget.stopping:
            for q in call.queries:
                result.failed.setdefault(q.lb_key, f"not fetched: {budget.reason}")
            continue
        try:
            _fetch_call(client, call, result, budget)
        except Abandoned:  # the call in flight ran out of time: keep what came before it
            log.warning("GetMetricData abandoned in flight: %s", budget.reason)
            for later in calls[i:]:
                for q in later.queries:
                    result.failed.setdefault(q.lb_key, f"not fetched: {budget.reason} "
                                                       "(a call in flight was abandoned)")
            break
    return result


def _fetch_call(client: CloudWatchClient, call: Call, result: FetchResult, budget: Budget
                ) -> None:
    by_id = {q.id: q for q in call.queries}
    points: dict[str, dict[int, float]] = {q.id: {} for q in call.queries}
    status: dict[str, str] = {}
    request = call.request()
    token = None
    while True:
        if token:
            if budget.stopping:
                _fail_all(call, result, f"not fetched: {budget.reason}")
                return
            request["NextToken"] = token
        result.calls += 1
        result.metrics_requested += len(call.queries)
        try:
            resp = client.get_metric_data(**request)
        except NoCredentialsError as e:
            raise AwsError(NO_CREDENTIALS) from e
        except ClientError as e:
            code = e.response.get("Error", {}).get("Code", "")
            if code in FATAL_CODES:
                raise AwsError(f"CloudWatch GetMetricData refused: {code}: {_msg(e)}") from e
            _fail_all(call, result, f"GetMetricData failed: {code}: {_msg(e)}")
            return
        except BotoCoreError as e:
            _fail_all(call, result, f"GetMetricData failed: {e}")
            return
        for r in resp.get("MetricDataResults", []):
            qid = r.get("Id")
            if qid not in points:
                continue
            status[qid] = r.get("StatusCode", "Complete")
            for ts, value in zip(r.get("Timestamps", []), r.get("Values", []), strict=False):
                points[qid][int(ts.timestamp())] = float(value)
            if status[qid] in ("InternalError", "Forbidden"):
                msgs = "; ".join(m.get("Value", "") for m in r.get("Messages", []))
                result.failed.setdefault(
                    by_id[qid].lb_key, f"{by_id[qid].spec.metric}: {status[qid]} {msgs}".strip()
                )
        token = resp.get("NextToken")
        if not token:
            break
    w = call.window
    for qid, q in by_id.items():
        if qid not in status:
            result.failed.setdefault(q.lb_key, f"{q.spec.metric}: missing from the response")
        elif status[qid] == "PartialData":
            result.failed.setdefault(q.lb_key, f"{q.spec.metric}: PartialData without NextToken")
        # Keep only whole periods inside the window: the settle rule depends on it.
        samples = [
            Sample(ts * 1000, v)
            for ts, v in sorted(points[qid].items())
            if w.start <= ts < w.end and (ts - w.start) % w.period == 0
        ]
        if q.target_group:
            result.tg_samples.setdefault((q.lb_key, q.target_group, q.spec), []).extend(samples)
        else:
            result.samples.setdefault((q.lb_key, q.spec), []).extend(samples)


def _fail_all(call: Call, result: FetchResult, reason: str) -> None:
    log.warning("%s (%d queries, window %s..%s)", reason, len(call.queries),
                isotime(call.window.start), isotime(call.window.end))
    for q in call.queries:
        result.failed.setdefault(q.lb_key, reason)


def _msg(e: ClientError) -> str:
    return str(e.response.get("Error", {}).get("Message", "")).strip()

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
