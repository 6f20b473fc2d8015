"""The embedded gateway's edge does what the Nginx one does (tests/test_edge.py): same headers,
request ids, CORS and rate limits, with nginx's limit_req arithmetic."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from gateway.headers import MAX_BODY_BYTES, EdgeMiddleware, RateLimit, in_process, parse_rate
from gateway.settings import GatewaySettings

seen_request_ids: list[str] = []


async def echo(request: Request) -> JSONResponse:
    seen_request_ids.append(request.headers["x-request-id"])
    return JSONResponse({"ok": True}, headers={"x-request-id": "service-own", "cache-control": "public, max-age=1",
                                               "vary": "Accept-Encoding"})


bytes_read: list[int] = []


async def read_body(request: Request) -> JSONResponse:
    """A service that reads the whole body, as FastAPI does for JSON."""
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        bytes_read.append(size)
    return JSONResponse({"size": size})


def client(*, internal: bool = False, **limits: Any) -> httpx.AsyncClient:
    """A client from outside, or (`internal`) one service calling another as embedded.py wires it."""
    app = Starlette(routes=[Route("/api/{service}/assets/{asset}/upload", read_body, methods=["PUT"]),
                            Route("/api/{service}/body", read_body, methods=["POST"]),
                            Route("/api/{service}/{rest:path}", echo, methods=["GET", "POST"])],
                    middleware=[Middleware(EdgeMiddleware, cors_origins=["https://app.example.test"], **limits)])
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=in_process(app) if internal else app,
                                                           client=("198.51.100.7", 1234)),
                             base_url="http://embedded")


async def test_headers_and_request_ids_on_every_response() -> None:
    async with client() as http:
        ok = await http.get("/api/catalog/courses")
        missing = await http.get("/nowhere")
        for response in (ok, missing):
            assert response.headers["strict-transport-security"] == "max-age=63072000; includeSubDomains"
            assert response.headers["x-content-type-options"] == "nosniff"
            assert response.headers["referrer-policy"] == "no-referrer"
            assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
            assert len(response.headers.get_list("x-request-id")) == 1
        assert missing.status_code == 404
        # The service saw the edge's id, and the client gets that one back.
        assert ok.headers["x-request-id"] == seen_request_ids[-1] != "service-own"
        passed = await http.get("/api/catalog/courses", headers={"X-Request-ID": "client-id.7"})
        assert passed.headers["x-request-id"] == "client-id.7" == seen_request_ids[-1]
        assert ok.headers["cache-control"] == "public, max-age=1"
        assert "Accept-Encoding" in ok.headers.get_list("vary") and "Origin" in ok.headers.get_list("vary")
        authed = await http.get("/api/catalog/courses", headers={"Authorization": "Bearer x"})
        assert authed.headers.get_list("cache-control") == ["no-store"]
        docs = await http.get("/api/catalog/docs")
        assert "https://cdn.jsdelivr.net" in docs.headers["content-security-policy"]


async def test_cors_for_configured_origins_only() -> None:
    async with client() as http:
        allowed = await http.get("/api/catalog/courses", headers={"Origin": "https://app.example.test"})
        assert allowed.headers["access-control-allow-origin"] == "https://app.example.test"
        assert allowed.headers["access-control-allow-credentials"] == "true"
        other = await http.get("/api/catalog/courses", headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in other.headers
        preflight = await http.options("/api/billing/checkout", headers={
            "Origin": "https://app.example.test", "Access-Control-Request-Method": "POST"})
        assert preflight.status_code == 204 and "POST" in preflight.headers["access-control-allow-methods"]
        refused = await http.options("/api/billing/checkout", headers={
            "Origin": "https://evil.example", "Access-Control-Request-Method": "POST"})
        assert "access-control-allow-methods" not in refused.headers


async def test_login_zone_five_a_minute_then_problem_429() -> None:
    settings = GatewaySettings()
    login = RateLimit(settings.login_rate_limit, settings.login_burst, retry_after=12)
    async with client(login_limit=login, api_limit=RateLimit("100r/s", 200, retry_after=1)) as http:
        statuses = [(await http.post("/api/auth/login", json={})).status_code for _ in range(7)]
        assert statuses == [200] * 5 + [429] * 2
        refused = await http.post("/api/auth/login", json={}, headers={"X-Forwarded-For": "203.0.113.9"})
        assert refused.status_code == 429, "X-Forwarded-For is not the client address"
        assert refused.headers["retry-after"] == "12"
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.json()["status"] == 429 and refused.headers["x-content-type-options"] == "nosniff"
        assert (await http.get("/api/auth/me")).status_code == 200, "the API zone is separate"


HIDDEN = ("/api/catalog/internal/courses/1", "/api/billing/internal", "/api/playback/metrics",
          "/api/catalog//internal/x", "/api/catalog/internal%2Fx")


async def test_internal_apis_and_metrics_are_404_from_outside_only() -> None:
    async with client() as http:
        for path in HIDDEN:
            hidden = await http.get(path)
            assert hidden.status_code == 404, path
            assert hidden.headers["content-type"] == "application/problem+json"
            assert hidden.json()["title"] == "Not Found" and hidden.headers["x-content-type-options"] == "nosniff"
        # Only those exact paths: a public route that merely contains the word still works.
        assert (await http.get("/api/catalog/courses/internal-tools")).status_code == 200
        assert (await http.get("/api/catalog/metrics-report")).status_code == 200
    # The services' calls to each other pass the edge untouched (limits included; common.http
    # sends the caller's request id).
    one = RateLimit("1r/m", 0, retry_after=60)
    async with client(internal=True, api_limit=one) as http:
        statuses = [(await http.get(path, headers={"X-Request-ID": "svc-call"})).status_code
                    for path in HIDDEN[:3] for _ in range(3)]
        assert statuses == [200] * 9


async def test_bodies_above_one_mib_are_413_while_they_stream() -> None:
    async with client() as http:
        at_limit = await http.post("/api/billing/body", content=b"x" * MAX_BODY_BYTES)
        assert at_limit.status_code == 200 and at_limit.json() == {"size": MAX_BODY_BYTES}
        declared = await http.post("/api/billing/body", content=b"x" * (MAX_BODY_BYTES + 1))
        assert declared.status_code == 413
        assert declared.headers["content-type"] == "application/problem+json"
        assert declared.json()["title"] == "Payload Too Large" and declared.headers["x-request-id"]

        bytes_read.clear()
        chunk = b"x" * 65536

        async def thirty_mib() -> AsyncIterator[bytes]:  # chunked: no Content-Length to refuse up front
            for _ in range(30 * 16):
                yield chunk

        streamed = await http.post("/api/billing/body", content=thirty_mib())
        assert streamed.status_code == 413 and streamed.json()["status"] == 413
        assert max(bytes_read) <= MAX_BODY_BYTES, "the service never reads past the limit"
        # The upload location keeps its own limit (playback checks the size it signed), as in nginx.
        upload = await http.put(f"/api/playback/assets/{uuid.uuid4()}/upload", content=b"x" * (2 * MAX_BODY_BYTES))
        assert upload.status_code == 200 and upload.json() == {"size": 2 * MAX_BODY_BYTES}
    async with client(internal=True) as http:  # the services' own calls meet no edge
        assert (await http.post("/api/billing/body", content=b"x" * (MAX_BODY_BYTES + 1))).status_code == 200


def test_rate_limit_follows_nginx_limit_req() -> None:
    limit = RateLimit("5r/m", 4, retry_after=12)
    assert [limit.allow("a", now=0.0) for _ in range(6)] == [True] * 5 + [False]
    assert limit.allow("b", now=0.0), "per key"
    assert not limit.allow("a", now=11.0) and limit.allow("a", now=12.1)
    assert parse_rate("100r/s") == 100 and parse_rate("30r/m") == 0.5
    with pytest.raises(ValueError, match="rate"):
        parse_rate("5/min")
