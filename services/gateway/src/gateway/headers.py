"""What the Nginx edge does in distributed mode, done the same way by the embedded gateway:
request ids, security headers on every response, CORS for the configured origins, the two
per-client-IP rate limits (problem+json 429 with Retry-After), `no-store` on answers to
requests with credentials, a 404 for the services' internal APIs and metrics, and a 413 for
request bodies above the edge's limit (counted while they stream in).
infra/nginx/ is the reference; the values come from GatewaySettings.

Calls between the embedded services go through the same app (common.http.LazyASGITransport) but
are not public traffic: `in_process` marks them, and the edge lets them straight through, as the
direct service-to-service URLs of the distributed mode never pass Nginx.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass

from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# Set on the scope of the embedded services' calls to each other (never by a server on a socket).
IN_PROCESS = "triple.in_process"

# The same values as infra/nginx/edge_headers.conf.
SECURITY_HEADERS = [
    (b"strict-transport-security", b"max-age=63072000; includeSubDomains"),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=()"),
    (b"cross-origin-opener-policy", b"same-origin"),
]
CSP = b"default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
DOCS_CSP = (b"default-src 'none'; script-src https://cdn.jsdelivr.net 'unsafe-inline'; "
            b"style-src https://cdn.jsdelivr.net; img-src https://fastapi.tiangolo.com data:; connect-src 'self'; "
            b"frame-ancestors 'none'; base-uri 'none'; form-action 'none'")
# The web app (everything outside /api and /media) loads only its own files and plays HLS through
# Media Source (blob: media, hls.js's blob: worker); the local provider's page posts its own forms.
APP_CSP = (b"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
           b"media-src 'self' blob:; connect-src 'self'; worker-src 'self' blob:; object-src 'none'; "
           b"frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
LOCAL_CHECKOUT_CSP = (b"default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'; "
                      b"form-action 'self'")
DOCS_PATH = re.compile(r"^/api/[a-z]+/docs$")
# The strict zone's paths, as in gateway.conf.template.
LOGIN_PATH = re.compile(r"^/api/auth/(login|register|(me/)?password[a-z/_-]*|forgot[a-z/_-]*|reset[a-z/_-]*)$")
# Never public, as `location ~ ^/api/[a-z]+/(internal(/|$)|metrics$)` in gateway.conf.template.
HIDDEN_PATH = re.compile(r"^/api/[a-z]+/(internal(/|$)|metrics$)")
# nginx's `client_max_body_size 1m` (infra/nginx/http.conf; tests/test_nginx_config.py keeps them equal).
MAX_BODY_BYTES = 1024 * 1024
# The one location with its own body limit (5g, checked by playback): local-storage video uploads.
UPLOAD_PATH = re.compile(r"^/api/playback/assets/[0-9a-fA-F-]{36}/upload$")
VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
CORS_METHODS = b"GET, HEAD, POST, PUT, PATCH, DELETE"
CORS_HEADERS = b"Authorization, Content-Type, Idempotency-Key, X-Request-ID"
CORS_EXPOSE = b"X-Request-ID, Retry-After, ETag"
# Response headers the edge owns (a service's own values are replaced; Vary is added to).
OWNED = {b"x-request-id", b"cache-control", b"access-control-allow-origin", b"access-control-allow-credentials",
         b"access-control-expose-headers", b"content-security-policy", *(name for name, _ in SECURITY_HEADERS)}


def parse_rate(rate: str) -> float:
    """nginx's `10r/s` / `5r/m` as requests per second."""
    match = re.fullmatch(r"(\d+)r/([sm])", rate.strip())
    if match is None:
        raise ValueError(f"a rate is <n>r/s or <n>r/m, not {rate!r}")
    return int(match.group(1)) / (1 if match.group(2) == "s" else 60)


@dataclass
class _Bucket:
    excess: float
    at: float


class RateLimit:
    """nginx limit_req with `burst=N nodelay`: a leaky bucket per key, the first request plus N more
    at once, then `rate`; refused requests do not count."""

    def __init__(self, rate: str, burst: int, retry_after: int) -> None:
        self.rate = parse_rate(rate)
        self.burst = burst
        self.retry_after = retry_after
        self._buckets: dict[str, _Bucket] = {}

    def allow(self, key: str, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= 100_000:
                self._prune(now)
            self._buckets[key] = _Bucket(0.0, now)
            return True
        excess = max(0.0, bucket.excess - self.rate * (now - bucket.at)) + 1
        if excess > self.burst:
            return False
        bucket.excess, bucket.at = excess, now
        return True

    def _prune(self, now: float) -> None:
        drained = [k for k, b in self._buckets.items() if b.excess - self.rate * (now - b.at) <= 0]
        for key in drained:
            del self._buckets[key]


def csp_for(path: str) -> bytes:
    """The `$edge_csp` map of infra/nginx/http.conf."""
    if DOCS_PATH.match(path):
        return DOCS_CSP
    if path.startswith("/api/billing/local-checkout/"):
        return LOCAL_CHECKOUT_CSP
    return CSP if path.startswith(("/api/", "/media/")) else APP_CSP


def in_process(app: ASGIApp) -> ASGIApp:
    """`app` for the services' own calls to each other: marked so the edge passes them through."""

    async def marked(scope: Scope, receive: Receive, send: Send) -> None:
        await app({**scope, IN_PROCESS: True}, receive, send)

    return marked


class EdgeMiddleware:
    """The embedded gateway's edge, outermost around every mounted service."""

    def __init__(self, app: ASGIApp, *, cors_origins: Iterable[str] = (), api_limit: RateLimit | None = None,
                 login_limit: RateLimit | None = None, max_body_bytes: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.cors_origins = {o.rstrip("/") for o in cors_origins}
        self.api_limit = api_limit
        self.login_limit = login_limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get(IN_PROCESS):
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        incoming = headers.get(b"x-request-id", b"").decode("latin-1")
        request_id = incoming if VALID_REQUEST_ID.match(incoming) else uuid.uuid4().hex
        # The services see (and log) the edge's id, as behind Nginx.
        scope["headers"] = [(k, v) for k, v in scope.get("headers") or [] if k != b"x-request-id"]
        scope["headers"].append((b"x-request-id", request_id.encode()))
        path: str = scope.get("path", "")
        origin = headers.get(b"origin", b"").decode("latin-1")
        allowed_origin = origin if origin in self.cors_origins else ""
        credentials = b"authorization" in headers or b"cookie" in headers
        extra = self._edge_headers(request_id, path, allowed_origin)

        if scope.get("method") == "OPTIONS" and b"access-control-request-method" in headers:
            if allowed_origin:
                extra += [(b"access-control-allow-methods", CORS_METHODS),
                          (b"access-control-allow-headers", CORS_HEADERS), (b"access-control-max-age", b"600")]
            await self._answer(send, 204, b"", extra)
            return

        # nginx matches its locations on the normalised URI (decoded, `//` merged).
        if HIDDEN_PATH.match(re.sub("/{2,}", "/", path)):
            await self._problem(send, 404, "Not Found", request_id, extra)
            return

        limit = self.login_limit if LOGIN_PATH.match(path) else self.api_limit if path.startswith("/api/") else None
        client = (scope.get("client") or ("unknown", 0))[0]
        if limit is not None and not limit.allow(client):
            await self._problem(send, 429, "Too Many Requests", request_id,
                                [*extra, (b"retry-after", str(limit.retry_after).encode())])
            return

        body_limit = None if UPLOAD_PATH.match(path) else self.max_body_bytes
        declared = headers.get(b"content-length", b"")
        if body_limit is not None and declared.isdigit() and int(declared) > body_limit:
            await self._problem(send, 413, "Payload Too Large", request_id, extra)
            return
        refused = started = False
        received = 0

        async def receive_within_limit() -> Message:
            """A chunked body is counted as it arrives: past the limit the edge answers 413 and the
            service sees a disconnect (nginx stops reading too), never a 30 MB body in memory."""
            nonlocal refused, received
            message = await receive()
            if body_limit is None or message["type"] != "http.request":
                return message
            received += len(message.get("body", b""))
            if received > body_limit:
                if not refused and not started:
                    await self._problem(send, 413, "Payload Too Large", request_id, extra)
                refused = True
                return {"type": "http.disconnect"}
            return message

        async def send_with_edge_headers(message: Message) -> None:
            nonlocal started
            if refused:
                return  # the 413 is the answer; whatever the service says after the disconnect is dropped
            if message["type"] == "http.response.start":
                started = True
                own = [(k, v) for k, v in message.get("headers", []) if k.lower() not in OWNED]
                theirs = {k.lower(): v for k, v in message.get("headers", [])}
                cache_control = theirs.get(b"cache-control")
                if path.startswith("/api/"):
                    cache_control = b"no-store" if credentials else cache_control or b"no-store"
                if cache_control is not None:
                    own.append((b"cache-control", cache_control))
                message["headers"] = [*own, *extra]
            await send(message)

        try:
            await self.app(scope, receive_within_limit, send_with_edge_headers)
        except ClientDisconnect:
            if not refused:
                raise  # a real client that went away; the one the edge cut off got its 413

    def _edge_headers(self, request_id: str, path: str, allowed_origin: str) -> list[tuple[bytes, bytes]]:
        extra = [(b"x-request-id", request_id.encode()), *SECURITY_HEADERS,
                 (b"content-security-policy", csp_for(path)), (b"vary", b"Origin")]
        if allowed_origin:
            extra += [(b"access-control-allow-origin", allowed_origin.encode()),
                      (b"access-control-allow-credentials", b"true"),
                      (b"access-control-expose-headers", CORS_EXPOSE)]
        return extra

    @classmethod
    async def _problem(cls, send: Send, status: int, title: str, request_id: str,
                       headers: list[tuple[bytes, bytes]]) -> None:
        """An error the edge answers itself, with the body of nginx's @problem location."""
        body = json.dumps({"type": "about:blank", "title": title, "status": status, "request_id": request_id}).encode()
        await cls._answer(send, status, body, [*headers, (b"cache-control", b"no-store"),
                                               (b"content-type", b"application/problem+json")])

    @staticmethod
    async def _answer(send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
        await send({"type": "http.response.start", "status": status,
                    "headers": [*headers, (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})
