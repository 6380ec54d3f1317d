"""A loopback stand-in for the AWS APIs a run calls at scale, fast enough to measure
lbscrape rather than itself: CloudWatch GetMetricData and ELBv2 DescribeLoadBalancers,
DescribeTargetGroups and DescribeTags.

It speaks the wire protocols boto3 1.44 uses through AWS_ENDPOINT_URL, as observed:
CloudWatch in the JSON 1.0 protocol (`X-Amz-Target: GraniteServiceVersion20100801.
GetMetricData`, epoch-second timestamps; the service model also lists CBOR and query,
which botocore does not pick), ELBv2 in the query protocol (form body, XML answers with
moto's fields). tests/test_standin.py checks its answers against moto's for the same
calls.

CloudWatch's data is dense and computable: every (metric, dimensions) has a datapoint
at every period start, `value(metric, ts)`, so a receiver can check every sample. Each
GetMetricData answer waits `latency` seconds; with `quota` set, calls beyond CloudWatch's
rates (per second, estimated datapoints as CloudWatch counts them) are refused with
`Throttling`, as CloudWatch would. `log` records each call for the benchmark's figures.
"""

from __future__ import annotations

import json
import threading
import time
import zlib
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs
from xml.sax.saxutils import escape

from tests.loopback import LoopbackServer

ACCOUNT = "123456789012"
GMD_TARGET = "GraniteServiceVersion20100801.GetMetricData"
ELB_NS = "http://elasticloadbalancing.amazonaws.com/doc/2015-12-01/"
RECENT = 3 * 3600  # CloudWatch's DPS quota is higher for a StartTime older than this


def value(metric: str, ts: int) -> float:
    """The datapoint every series of `metric` has at `ts` (seconds)."""
    return float((ts // 60 + zlib.crc32(metric.encode())) % 10007)


@dataclass(frozen=True)
class Tg:
    name: str
    arn: str
    port: int = 80


@dataclass(frozen=True)
class Lb:
    name: str
    arn: str
    dns_name: str
    type: str = "application"
    target_groups: tuple[Tg, ...] = ()
    tags: tuple[tuple[str, str], ...] = ()
    vpc: str = "vpc-0123456789abcdef0"
    created: str = "2026-01-01T00:00:00.000000Z"

    @property
    def dimension(self) -> str:
        return self.arn.split(":", 5)[5].removeprefix("loadbalancer/")


def make_lb(region: str, i: int, n_tgs: int = 0, prefix: str = "k8s-team") -> Lb:
    """The i-th load balancer of a generated world, with n_tgs target groups."""
    name = f"{prefix}{i}-web-{i:010x}"[:32]
    arn_base = f"arn:aws:elasticloadbalancing:{region}:{ACCOUNT}"
    tgs = tuple(Tg(f"k8s-t{i}-web-tg{j}", f"{arn_base}:targetgroup/k8s-t{i}-web-tg{j}/"
                   f"{i * 8 + j:016x}") for j in range(n_tgs))
    return Lb(name, f"{arn_base}:loadbalancer/app/{name}/{i:016x}",
              f"{name}-{1000 + i}.{region}.elb.amazonaws.com", target_groups=tgs)


@dataclass
class Quota:
    """CloudWatch's GetMetricData quotas, per second."""

    tps: float = 50
    dps_recent: float = 180_000
    dps_old: float = 396_000


@dataclass
class GmdCall:
    at: float
    """time.monotonic() when the request arrived."""
    queries: int
    datapoints: int
    """Estimated as CloudWatch does: queries x (end - start) / period."""
    recent: bool
    throttled: bool
    answered: float = 0.0
    """time.monotonic() when the answer was sent."""
    first_dimension: str = ""
    """The first query's first dimension value: which load balancer the call is for."""


@dataclass
class AwsStandIn(LoopbackServer):
    lbs: list[Lb] = field(default_factory=list)
    latency: float = 0.0
    """Seconds each GetMetricData answer waits."""
    elb_latency: float = 0.0
    """Seconds each ELBv2 answer waits."""
    quota: Quota | None = None
    clock: Any = time.time
    """The wall clock that decides whether a StartTime is recent."""
    log: list[GmdCall] = field(default_factory=list)
    elb_calls: list[tuple[float, str]] = field(default_factory=list)
    refuse: Any = None
    """GmdCall -> None, or (status, code, message) to answer it with instead."""

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._frag: dict[tuple[str, int, int, int, bool], str] = {}
        self._member_xml: dict[str, str] = {}
        self._tg_xml: dict[str, str] = {}

    def handler(self) -> type[BaseHTTPRequestHandler]:
        standin = self

        class Handler(_Handler):
            owner = standin

        return Handler

    # --- CloudWatch -----------------------------------------------------------------
    def get_metric_data(self, req: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
        arrived = time.monotonic()
        queries = req.get("MetricDataQueries") or []
        start, end = int(req["StartTime"]), int(req["EndTime"])
        ascending = req.get("ScanBy") == "TimestampAscending"
        periods = {q["MetricStat"]["Period"] for q in queries}
        if len(queries) > 500:
            return _json_error(400, "ValidationError", "The collection MetricDataQueries "
                               "must not have a size greater than 500.")
        estimated = sum((end - start) // q["MetricStat"]["Period"] for q in queries)
        if estimated > 100_800:
            return _json_error(400, "ValidationError", "too many datapoints requested")
        recent = start >= self.clock() - RECENT
        throttled = self._over_quota(arrived, estimated, recent)
        dims = queries[0]["MetricStat"]["Metric"].get("Dimensions") if queries else None
        call = GmdCall(arrived, len(queries), estimated, recent, throttled,
                       first_dimension=dims[0]["Value"] if dims else "")
        with self._lock:
            self.log.append(call)
        refusal = self.refuse(call) if self.refuse else None
        if throttled or refusal:
            call.answered = time.monotonic()
            return _json_error(*(refusal or (400, "Throttling", "Rate exceeded")))
        results = []
        for q in queries:
            stat = q["MetricStat"]
            metric = stat["Metric"]["MetricName"]
            frag = self._fragment(metric, start, end, stat["Period"], ascending)
            results.append(f'{{"Id":{json.dumps(q["Id"])},"Label":{json.dumps(metric)},'
                           f'"StatusCode":"Complete",{frag}}}')
        body = ('{"MetricDataResults":[' + ",".join(results) + '],"Messages":[]}').encode()
        wait = self.latency - (time.monotonic() - arrived)
        if wait > 0 and periods:
            time.sleep(wait)
        call.answered = time.monotonic()
        return 200, {"Content-Type": "application/x-amz-json-1.0"}, body

    def _fragment(self, metric: str, start: int, end: int, period: int, ascending: bool) -> str:
        key = (metric, start, end, period, ascending)
        frag = self._frag.get(key)
        if frag is None:
            stamps = list(range(start, end, period))
            if not ascending:
                stamps.reverse()
            frag = (f'"Timestamps":{json.dumps(stamps)},'
                    f'"Values":{json.dumps([value(metric, t) for t in stamps])}')
            with self._lock:
                if len(self._frag) > 10_000:
                    self._frag.clear()
                self._frag[key] = frag
        return frag

    def _over_quota(self, now: float, datapoints: int, recent: bool) -> bool:
        """Would this call exceed CloudWatch's rates over the last second?"""
        if self.quota is None:
            return False
        with self._lock:
            last = [c for c in self.log[-2000:] if c.at > now - 1 and not c.throttled]
        dps = self.quota.dps_recent if recent else self.quota.dps_old
        return (len(last) + 1 > self.quota.tps
                or sum(c.datapoints for c in last) + datapoints > dps)

    # --- ELBv2 ----------------------------------------------------------------------
    def elbv2(self, form: dict[str, list[str]]) -> tuple[int, dict[str, str], bytes]:
        action = form.get("Action", [""])[0]
        with self._lock:
            self.elb_calls.append((time.monotonic(), action))
        if self.elb_latency:
            time.sleep(self.elb_latency)
        if action == "DescribeLoadBalancers":
            return self._describe_lbs(form)
        if action == "DescribeTargetGroups":
            return self._describe_tgs(form)
        if action == "DescribeTags":
            return self._describe_tags(form)
        return _xml_error(400, "InvalidAction", f"the stand-in does not serve {action!r}")

    def _describe_lbs(self, form: dict[str, list[str]]) -> tuple[int, dict[str, str], bytes]:
        names, arns = _members(form, "Names"), _members(form, "LoadBalancerArns")
        chosen = [lb for lb in self.lbs if (not names or lb.name in names)
                  and (not arns or lb.arn in arns)]
        missing = set(names) - {lb.name for lb in chosen}
        if missing or set(arns) - {lb.arn for lb in chosen}:
            return _xml_error(400, "LoadBalancerNotFound", "One or more load balancers not found")
        page, marker = _page(chosen, form)
        members = "".join(self._lb_member(lb) for lb in page)
        return _xml_ok("DescribeLoadBalancers",
                       f"<LoadBalancers>{members}</LoadBalancers>{marker}")

    def _lb_member(self, lb: Lb) -> str:
        xml = self._member_xml.get(lb.arn)
        if xml is None:
            xml = (
                f"<member><LoadBalancerArn>{escape(lb.arn)}</LoadBalancerArn>"
                f"<DNSName>{escape(lb.dns_name)}</DNSName>"
                "<CanonicalHostedZoneId>Z35SXDOTRQ7X7K</CanonicalHostedZoneId>"
                f"<CreatedTime>{lb.created}</CreatedTime>"
                f"<LoadBalancerName>{escape(lb.name)}</LoadBalancerName>"
                f"<Scheme>internet-facing</Scheme><VpcId>{lb.vpc}</VpcId>"
                f"<State><Code>active</Code></State><Type>{lb.type}</Type>"
                "<AvailabilityZones><member><ZoneName>us-east-1a</ZoneName><SubnetId>"
                "subnet-0a0a0a0a0a0a0a0a0</SubnetId></member><member><ZoneName>us-east-1b"
                "</ZoneName><SubnetId>subnet-0b0b0b0b0b0b0b0b0</SubnetId></member>"
                "</AvailabilityZones><SecurityGroups/><IpAddressType>ipv4</IpAddressType>"
                "</member>")
            self._member_xml[lb.arn] = xml
        return xml

    def _describe_tgs(self, form: dict[str, list[str]]) -> tuple[int, dict[str, str], bytes]:
        lb_arn = form.get("LoadBalancerArn", [""])[0]
        wanted = _members(form, "TargetGroupArns")
        tgs = [(tg, lb) for lb in self.lbs for tg in lb.target_groups
               if (not lb_arn or lb.arn == lb_arn) and (not wanted or tg.arn in wanted)]
        page, marker = _page(tgs, form)
        members = "".join(self._tg_member(tg, lb) for tg, lb in page)
        return _xml_ok("DescribeTargetGroups",
                       f"<TargetGroups>{members}</TargetGroups>{marker}")

    def _tg_member(self, tg: Tg, lb: Lb) -> str:
        xml = self._tg_xml.get(tg.arn)
        if xml is None:
            xml = (
                f"<member><TargetGroupArn>{escape(tg.arn)}</TargetGroupArn>"
                f"<TargetGroupName>{escape(tg.name)}</TargetGroupName>"
                f"<Protocol>HTTP</Protocol><Port>{tg.port}</Port><VpcId>{lb.vpc}</VpcId>"
                "<HealthCheckProtocol>HTTP</HealthCheckProtocol><HealthCheckPort>traffic-port"
                "</HealthCheckPort><HealthCheckEnabled>true</HealthCheckEnabled>"
                "<HealthCheckIntervalSeconds>30</HealthCheckIntervalSeconds>"
                "<HealthCheckTimeoutSeconds>5</HealthCheckTimeoutSeconds><HealthyThresholdCount>"
                "5</HealthyThresholdCount><UnhealthyThresholdCount>2</UnhealthyThresholdCount>"
                "<HealthCheckPath>/</HealthCheckPath><Matcher><HttpCode>200</HttpCode></Matcher>"
                f"<LoadBalancerArns><member>{escape(lb.arn)}</member></LoadBalancerArns>"
                "<TargetType>ip</TargetType><ProtocolVersion>HTTP1</ProtocolVersion>"
                "<IpAddressType>ipv4</IpAddressType></member>")
            self._tg_xml[tg.arn] = xml
        return xml

    def _describe_tags(self, form: dict[str, list[str]]) -> tuple[int, dict[str, str], bytes]:
        by_arn = {lb.arn: lb for lb in self.lbs}
        out = []
        for arn in _members(form, "ResourceArns"):
            tags = "".join(f"<member><Key>{escape(k)}</Key><Value>{escape(v)}</Value></member>"
                           for k, v in by_arn[arn].tags) if arn in by_arn else ""
            out.append(f"<member><ResourceArn>{escape(arn)}</ResourceArn>"
                       f"{f'<Tags>{tags}</Tags>' if tags else '<Tags/>'}</member>")
        return _xml_ok("DescribeTags", f"<TagDescriptions>{''.join(out)}</TagDescriptions>")

    # --- figures --------------------------------------------------------------------
    def calls(self) -> list[GmdCall]:
        with self._lock:
            return list(self.log)

    def reset_log(self) -> None:
        with self._lock:
            self.log.clear()
            self.elb_calls.clear()


def most_in_flight(calls: list[GmdCall]) -> int:
    """The most calls being answered at the same time."""
    events = sorted([(c.at, 1) for c in calls] + [(c.answered, -1) for c in calls])
    most = now = 0
    for _, step in events:
        now += step
        most = max(most, now)
    return most


def peak_per_second(calls: list[GmdCall]) -> tuple[int, int]:
    """The most calls, and the most estimated datapoints, in any one-second window."""
    ok = [c for c in calls if not c.throttled]
    best_calls = best_dps = 0
    j = 0
    for i, c in enumerate(ok):
        while ok[j].at <= c.at - 1:
            j += 1
        best_calls = max(best_calls, i - j + 1)
        best_dps = max(best_dps, sum(x.datapoints for x in ok[j:i + 1]))
    return best_calls, best_dps


def _members(form: dict[str, list[str]], name: str) -> list[str]:
    """Query-protocol lists: Name.member.1, Name.member.2, ..."""
    found = sorted((int(k.rsplit(".", 1)[1]), v[0]) for k, v in form.items()
                   if k.startswith(f"{name}.member."))
    return [v for _, v in found]


def _page(items: list[Any], form: dict[str, list[str]]) -> tuple[list[Any], str]:
    start = int(form.get("Marker", ["0"])[0] or 0)
    size = int(form.get("PageSize", ["400"])[0])
    page = items[start:start + size]
    more = start + size < len(items)
    return page, f"<NextMarker>{start + size}</NextMarker>" if more else ""


def _xml_ok(action: str, result: str) -> tuple[int, dict[str, str], bytes]:
    body = (f'<{action}Response xmlns="{ELB_NS}"><{action}Result>{result}</{action}Result>'
            f"<ResponseMetadata><RequestId>standin</RequestId></ResponseMetadata>"
            f"</{action}Response>")
    return 200, {"Content-Type": "text/xml"}, body.encode()


def _xml_error(status: int, code: str, message: str) -> tuple[int, dict[str, str], bytes]:
    body = (f'<ErrorResponse xmlns="{ELB_NS}"><Error><Type>Sender</Type><Code>{code}</Code>'
            f"<Message>{escape(message)}</Message></Error><RequestId>standin</RequestId>"
            "</ErrorResponse>")
    return status, {"Content-Type": "text/xml"}, body.encode()


def _json_error(status: int, code: str, message: str) -> tuple[int, dict[str, str], bytes]:
    # CloudWatch is awsQueryCompatible: the legacy code also travels in a header.
    return status, {"Content-Type": "application/x-amz-json-1.0",
                    "x-amzn-query-error": f"{code};Sender"}, json.dumps(
        {"__type": code, "message": message}).encode()


class _Handler(BaseHTTPRequestHandler):
    owner: AwsStandIn
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:  # noqa: N802
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        target = self.headers.get("X-Amz-Target", "")
        if target == GMD_TARGET:
            answer = self.owner.get_metric_data(json.loads(body))
        elif target:
            answer = _json_error(400, "UnknownOperationException", f"not served: {target}")
        else:
            answer = self.owner.elbv2(parse_qs(body.decode()))
        status, headers, data = answer
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass
