"""A threaded HTTP server on 127.0.0.1 with a free port, for the test world's fakes."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # clients that time out or are reset on purpose leave broken pipes behind


class LoopbackServer:
    """Subclasses say which handler serves them; start() binds a free loopback port."""

    _server: QuietServer | None = None

    def handler(self) -> type[BaseHTTPRequestHandler]:
        raise NotImplementedError

    def start(self) -> str:
        self._server = QuietServer(("127.0.0.1", 0), self.handler())
        # A short poll: stop() waits up to one interval (0.5s by default, per server).
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                         daemon=True).start()
        return self.url

    def stop(self) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()

    @property
    def url(self) -> str:
        assert self._server
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"
