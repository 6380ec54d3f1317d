"""An HTTP reverse proxy on 127.0.0.1 that records requests and injects faults.

Put it between lbscrape and moto, Prometheus or the fake Kubernetes API to slow
responses down (or never answer: a long delay, cut short by stop()), answer with an error
status, or reset the connection, exactly where a real network or server would.
"""

from __future__ import annotations

import http.client
import socket
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import urlsplit

from tests.loopback import LoopbackServer


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    status: int | None = None
    """The status it was answered with (None: reset, or not answered yet)."""
    answer: bytes = b""
    """The upstream's answer body, when the request was forwarded."""

    def mentions(self, text: str) -> bool:
        """True if the operation name appears in the path, a target header or the body."""
        return (text in self.path or text in self.headers.get("X-Amz-Target", "")
                or text.encode() in self.body)


@dataclass
class Rule:
    match: Callable[[Request], bool]
    delay: float = 0.0
    status: int | None = None
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    reset: bool = False
    after: bool = False
    """Apply delay/reset after forwarding: the upstream did the work, the answer is lost."""
    rewrite: Callable[[Request, bytes], bytes] | None = None
    """Forward, then answer with rewrite(request, upstream's body) (a doctored answer)."""
    times: int = 1_000_000


class FaultProxy(LoopbackServer):
    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.rules: list[Rule] = []
        self.seen: list[Request] = []
        self._lock = threading.Lock()
        self.stopping = threading.Event()  # ends every delay

    def handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(_Handler):
            owner = proxy

        return Handler

    def stop(self) -> None:
        self.stopping.set()
        super().stop()

    def add(self, rule: Rule) -> Rule:
        with self._lock:
            self.rules.append(rule)
        return rule

    def _rule_for(self, req: Request) -> Rule | None:
        with self._lock:
            self.seen.append(req)
            for rule in self.rules:
                if rule.times > 0 and rule.match(req):
                    rule.times -= 1
                    return rule
        return None


class _Handler(BaseHTTPRequestHandler):
    owner: FaultProxy
    protocol_version = "HTTP/1.1"

    def _do(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        req = Request(self.command, self.path, dict(self.headers.items()), body)
        rule = self.owner._rule_for(req)
        if rule and rule.rewrite:
            status, headers, data = self._forward(body)
            self._reply(status, headers, rule.rewrite(req, data), req)
            return
        if rule and rule.after:
            answer = self._forward(body)
            req.answer = answer[2]
            self.owner.stopping.wait(rule.delay)
            if rule.reset:
                self._reset()
            else:
                self._reply(*answer, req)
            return
        if rule and rule.delay:
            self.owner.stopping.wait(rule.delay)
        if rule and rule.reset:
            self._reset()
            return
        if rule and rule.status is not None:
            self._reply(rule.status, rule.headers, rule.body, req)
            return
        answer = self._forward(body)
        req.answer = answer[2]
        self._reply(*answer, req)

    def _reset(self) -> None:
        # SO_LINGER 0: close with a TCP RST, as a dying server or load balancer does.
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True
        self.connection.close()

    def _forward(self, body: bytes) -> tuple[int, dict[str, str], bytes]:
        conn = http.client.HTTPConnection(*self.owner.upstream, timeout=60)
        try:
            headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
            conn.request(self.command, self.path, body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
            keep = {k: v for k, v in resp.getheaders()
                    if k.lower() not in ("transfer-encoding", "connection", "content-length")}
            return resp.status, keep, data
        finally:
            conn.close()

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _do

    def _reply(self, status: int, headers: dict[str, str], body: bytes,
               req: Request | None = None) -> None:
        if req is not None:
            req.status = status
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass
