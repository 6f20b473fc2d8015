"""The edge test harness: scriptable upstreams and the rendered edge in front of them.

The upstreams stand in for the services so the edge's own behaviour (TLS, headers, limits, cache,
retries) is tested exactly and quickly; tests/e2e runs the same config in front of the real ones.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from gateway.devcert import DevCert
from gateway.distributed import free_port


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]


class Upstream:
    """An HTTP/1.1 keep-alive server recording what reached it.

    GET /cache/<kind>: a counter body with the Cache-Control of <kind> (public, private, none);
    /status/<code>: that status as problem+json; anything else echoes. `drop` makes it read the
    request and close the connection without answering (a replica dying mid-request).
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.seen: list[Seen] = []
        self.drop = False
        self.hits = 0
        upstream = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                if length:
                    self.rfile.read(length)
                upstream.seen.append(Seen(self.command, self.path, {k.lower(): v for k, v in self.headers.items()}))
                if upstream.drop:
                    self.close_connection = True
                    return
                upstream.respond(self)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.server.daemon_threads = True
        self.address = f"127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def respond(self, handler: BaseHTTPRequestHandler) -> None:
        status, headers = 200, {"content-type": "application/json"}
        body: dict[str, Any] = {"server": self.name, "path": handler.path, "pad": "x" * 2048}
        parts = handler.path.split("?")[0].strip("/").split("/")
        if parts[0] == "cache":
            self.hits += 1
            body = {"server": self.name, "hits": self.hits}
            cache_control = {"public": "public, max-age=1", "private": "private, max-age=60"}.get(parts[1])
            if cache_control:
                headers["cache-control"] = cache_control
        elif parts[0] == "status":
            status, headers = int(parts[1]), {"content-type": "application/problem+json"}
            body = {"title": "from upstream", "status": status}
        payload = json.dumps(body).encode()
        handler.send_response(status)
        for key, value in {**headers, "content-length": str(len(payload)), "x-request-id": "upstream-own"}.items():
            handler.send_header(key, value)
        handler.end_headers()
        if handler.command != "HEAD":
            handler.wfile.write(payload)

    def requests(self, method: str | None = None) -> list[Seen]:
        return [s for s in self.seen if method is None or s.method == method]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass
class Edge:
    plain_url: str
    https_url: str
    redirect_url: str
    cert: DevCert
    prefix: Path
    upstreams: dict[str, list[Upstream]] = field(default_factory=dict)

    def access_log(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in (self.prefix / "access.log").read_text().splitlines()]


