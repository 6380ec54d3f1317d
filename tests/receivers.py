"""Remote-write receivers that no binary here provides, on 127.0.0.1 in front of the real
Prometheus: they answer as Mimir/Cortex/AMP and Thanos Receive document it
(shared/reference/remote-write.md, their source), and store through Prometheus, so a
test reads back what was really stored.

- Ingest is partial, as theirs is: every valid sample lands, and the answer names the
  first refused one (Mimir, Cortex, AMP: 400 with "... (err-mimir-sample-out-of-order).
  The affected sample has timestamp ... and is from series {...}"; Thanos: 409 with
  "add N samples: out of order sample"). Prometheus 2.42 itself is all-or-nothing, so
  each series is forwarded on its own, and a refused one sample by sample.
- A tenant header (X-Scope-OrgID; THANOS-TENANT) is required where multi-tenancy is on:
  without it Mimir answers 401 "no org id".
- `throttle`: the next requests get 429 (with the Retry-After given, or none), before
  anything is ingested, as a distributor's rate limit does.
- `verifier`: every request's SigV4 signature is checked first (AMP); a bad one is 403.
"""

from __future__ import annotations

import base64
import hmac
import http.client
import json
import re
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import urlsplit

import snappy
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import ReadOnlyCredentials

from lbscrape.prom.prompb import WriteRequest
from tests.loopback import LoopbackServer

MIMIR_REASONS = {
    "out of order sample": "the sample has been rejected because another sample with a more "
    "recent timestamp has already been ingested and out-of-order samples are not allowed "
    "(err-mimir-sample-out-of-order)",
    "out of bounds": "the sample has been rejected because its timestamp is too old "
    "(err-mimir-sample-timestamp-too-old)",
    "too old sample": "the sample has been rejected because its timestamp is too old "
    "(err-mimir-sample-timestamp-too-old)",
    "duplicate sample for timestamp": "the sample has been rejected because another sample "
    "with the same timestamp, but a different value, has already been ingested "
    "(err-mimir-sample-duplicate-timestamp)",
}
RATE_LIMITED = ("the request has been rejected because the tenant exceeded the ingestion rate "
                "limit, set to 10000 items/s with a maximum allowed burst of 200000 "
                "(err-mimir-tenant-max-ingestion-rate)")
# Signed by every remote-write request lbscrape sends (host and date by SigV4 itself).
REQUIRED_SIGNED = {"host", "x-amz-date", "content-encoding", "content-type",
                   "x-prometheus-remote-write-version"}


@dataclass(frozen=True)
class Refusal:
    labels: tuple[tuple[str, str], ...]
    timestamp_ms: int
    reason: str
    """Prometheus's own text: 'out of order sample', 'out of bounds', ..."""


@dataclass
class Seen:
    headers: dict[str, str]
    samples: int
    status: int
    refused: int = 0


@dataclass
class Keys:
    """Access key ID -> (secret, session token or None), as IAM and STS know them.
    `sts`: the answers STS (moto, through a FaultProxy) gave so far, to learn the
    credentials of assumed roles from."""

    known: dict[str, tuple[str, str | None]] = field(default_factory=dict)
    expired: set[str] = field(default_factory=set)
    sts: Callable[[], Iterable[bytes]] | None = None

    def get(self, key_id: str) -> tuple[str, str | None] | None:
        if key_id not in self.known and self.sts:
            for answer in self.sts():
                found = [re.search(f"<{t}>([^<]+)</{t}>", answer.decode(errors="replace"))
                         for t in ("AccessKeyId", "SecretAccessKey", "SessionToken")]
                if found[0] and found[1] and found[2]:
                    self.known[found[0].group(1)] = (found[1].group(1), found[2].group(1))
        return self.known.get(key_id)


class Receiver(LoopbackServer):
    def __init__(self, prometheus: Any, style: str = "mimir", *,
                 tenant_header: str | None = "X-Scope-OrgID",
                 verifier: SigV4Verifier | None = None,
                 basic_auth: tuple[str, str] | None = None) -> None:
        assert style in ("mimir", "thanos")
        self.write_url = prometheus.write_url
        self.style = style
        self.tenant_header = tenant_header
        self.verifier = verifier
        self.basic_auth = basic_auth
        self.throttle: list[str | None] = []
        self.seen: list[Seen] = []
        self._lock = threading.Lock()

    @property
    def push_url(self) -> str:
        return f"{self.url}/api/v1/receive" if self.style == "thanos" else \
            f"{self.url}/api/v1/push"

    def handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                headers = {k.lower(): v for k, v in self.headers.items()}
                status, text, extra = receiver.answer(self.path, headers, body)
                data = text.encode()
                self.send_response(status)
                for k, v in extra.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        return Handler

    def answer(self, path: str, headers: dict[str, str], body: bytes
               ) -> tuple[int, str, dict[str, str]]:
        with self._lock:  # one request at a time, in order, like one ingester
            seen = Seen(headers, 0, 0)
            self.seen.append(seen)
            seen.status, text, extra = self._answer(path, headers, body, seen)
            return seen.status, text, extra

    def _answer(self, path: str, headers: dict[str, str], body: bytes, seen: Seen
                ) -> tuple[int, str, dict[str, str]]:
        if self.verifier and (why := self.verifier.check("POST", path, headers, body)):
            return 403, json.dumps({"message": why}), {"Content-Type": "application/json"}
        if self.basic_auth and headers.get("authorization") != basic(*self.basic_auth):
            return 401, "invalid authentication credentials", {}
        tenant = headers.get(self.tenant_header.lower(), "") if self.tenant_header else ""
        if self.tenant_header and self.style == "mimir" and not tenant:
            return 401, "no org id", {}
        if self.throttle:
            retry_after = self.throttle.pop(0)
            return 429, RATE_LIMITED, {"Retry-After": retry_after} if retry_after else {}
        wr = WriteRequest()
        try:
            wr.ParseFromString(snappy.uncompress(body))
        except Exception as e:  # noqa: BLE001 - what a receiver says about garbage
            return 400, f"decode: {e}", {}
        seen.samples = sum(len(ts.samples) for ts in wr.timeseries)
        refused = ingest(self.write_url, wr)
        seen.refused = len(refused)
        if not refused:
            return (200, "", {})
        first = refused[0]
        if self.style == "thanos":
            same = sum(r.reason == first.reason for r in refused)
            return 409, (f"store locally for endpoint 127.0.0.1:10901: add {same} samples: "
                         f"{first.reason}"), {}
        when = datetime.fromtimestamp(first.timestamp_ms / 1000, UTC).isoformat() \
            .replace("+00:00", "Z")
        series = "{" + ", ".join(f'{k}="{v}"' for k, v in first.labels) + "}"
        return 400, (f"failed pushing to ingester: user={tenant or 'anonymous'}: "
                     f"{MIMIR_REASONS.get(first.reason, first.reason)}. The affected sample "
                     f"has timestamp {when} and is from series {series}"), {}

    def tenants(self) -> set[str]:
        return {s.headers.get((self.tenant_header or "").lower(), "") for s in self.seen}


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def ingest(write_url: str, wr: WriteRequest) -> list[Refusal]:
    """Store every sample Prometheus takes; the refused ones, in request order."""
    parts = urlsplit(write_url)
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=10)
    refused: list[Refusal] = []
    try:
        for ts in wr.timeseries:
            one = WriteRequest()
            one.timeseries.add().CopyFrom(ts)
            if _post(conn, parts.path, one) is None:
                continue
            labels = tuple((lb.name, lb.value) for lb in ts.labels)
            for sample in ts.samples:
                single = WriteRequest()
                t = single.timeseries.add()
                t.labels.extend(ts.labels)
                t.samples.add(value=sample.value, timestamp=sample.timestamp)
                if (why := _post(conn, parts.path, single)) is not None:
                    refused.append(Refusal(labels, sample.timestamp, why))
    finally:
        conn.close()
    return refused


def _post(conn: http.client.HTTPConnection, path: str, wr: WriteRequest) -> str | None:
    """None if Prometheus stored it, else its reason (one kept-alive connection)."""
    conn.request("POST", path, body=snappy.compress(wr.SerializeToString()),
                 headers={"Content-Encoding": "snappy"})
    resp = conn.getresponse()
    text = resp.read().decode().strip()
    return None if resp.status < 300 else text


class SigV4Verifier:
    """Checks a request's SigV4 signature as AMP does: service `aps`, the workspace's
    region, a fresh date, the headers that must be signed, and the signature itself,
    recomputed with botocore from the request as received (method, path, signed headers
    and the SHA-256 of the body) and the secret of the access key."""

    def __init__(self, region: str, keys: Keys, service: str = "aps") -> None:
        self.region = region
        self.keys = keys
        self.service = service
        self.verified: list[str] = []
        """Access key IDs of the requests that passed, in order."""

    def check(self, method: str, path: str, headers: dict[str, str], body: bytes
              ) -> str | None:
        """None when the signature is good, else AMP's message."""
        m = re.match(r"AWS4-HMAC-SHA256 Credential=([^/]+)/(\d{8})/([^/]+)/([^/]+)/"
                     r"aws4_request, SignedHeaders=([^,]+), Signature=([0-9a-f]{64})$",
                     headers.get("authorization", ""))
        if not m:
            return "Missing Authentication Token"
        key_id, day, region, service, signed, signature = m.groups()
        if service != self.service:
            return f"Credential should be scoped to correct service: '{self.service}'."
        if region != self.region:
            return (f"Credential should be scoped to a valid region, not '{region}'. "
                    f"Credential should be scoped to the region '{self.region}'.")
        amz_date = headers.get("x-amz-date", "")
        try:
            at = datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
        except ValueError:
            return "X-Amz-Date is missing or malformed"
        if amz_date[:8] != day or abs(at.timestamp() - time.time()) > 300:
            return "Signature expired"
        if key_id in self.keys.expired:
            return "The security token included in the request is expired"
        if (known := self.keys.get(key_id)) is None:
            return "The security token included in the request is invalid."
        secret, token = known
        names = signed.split(";")
        missing = (REQUIRED_SIGNED | ({"x-amz-security-token"} if token else set())) - set(names)
        if missing:
            return f"headers not signed: {', '.join(sorted(missing))}"
        if token and headers.get("x-amz-security-token") != token:
            return "The security token included in the request is invalid."
        req = AWSRequest(method=method, url=f"http://{headers['host']}{path}", data=body,
                         headers={n: headers[n] for n in names})
        req.context["timestamp"] = amz_date
        auth = SigV4Auth(ReadOnlyCredentials(key_id, secret, token), self.service, region)
        want = auth.signature(auth.string_to_sign(req, auth.canonical_request(req)), req)
        if auth.signed_headers(auth.headers_to_sign(req)) != signed or \
                not hmac.compare_digest(want, signature):
            return ("The request signature we calculated does not match the signature you "
                    "provided. Check your AWS Secret Access Key and signing method.")
        self.verified.append(key_id)
        return None


@dataclass(frozen=True)
class Repeat:
    first_end: int
    second_end: int
    first: str
    second: str
    """The two runs' summary lines."""

    def requests(self, which: str) -> int:
        return int(getattr(self, which).split("remote_write_requests=")[1].split()[0])

    def rejected(self, which: str) -> int:
        return int(getattr(self, which).split("samples_rejected=")[1].split()[0])


def crash_then_repeat(scene: Any, url: str, tmp: Any, *extra: str) -> Repeat:
    """A run whose checkpoint is lost after its samples were written (as when the pod
    is killed between the write and the checkpoint), then the next run a minute later,
    which starts from no checkpoint and repeats the first run's last 9 minutes. Without
    lbscrape's own series, so that what a receiver saw is the data's requests alone."""
    from tests.test_run import end_for, summary

    first, second = scene.clock - 120, scene.clock - 60
    extra = (*extra, "--no-self-metrics")
    r1 = scene.run(first, "--checkpoint-file", str(tmp / "lost.json"), *extra,
                   remote_write_url=url)
    r2 = scene.run(second, "--checkpoint-file", str(tmp / "checkpoint.json"), *extra,
                   remote_write_url=url)
    return Repeat(end_for(first), end_for(second), summary(r1), summary(r2))


def exactly_once(scene: Any, r: Repeat) -> None:
    """Every settled minute of both runs is in Prometheus once, with its value."""
    for metric, values, lb in (("alb_request_count_sum", scene.requests, scene.alb),
                               ("nlb_new_flow_count_sum", scene.flows, scene.nlb)):
        assert scene.stored(metric)[lb.name] == scene.expected(
            values, r.first_end - 600, r.second_end), metric
    zeros = scene.stored("alb_http_code_elb_5xx_count_sum")[scene.alb.name]
    assert [ts for ts, _ in zeros] == list(range(r.first_end - 600, r.second_end, 60))
