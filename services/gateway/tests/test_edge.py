"""The edge's own behaviour on a real Nginx: TLS, headers on every response, request ids, CORS,
rate limits keyed on the real client IP, problem+json errors, the microcache and retries."""

from __future__ import annotations

import ssl
import time
import uuid

import httpx
import pytest
from gateway_edgekit import Edge

SECURITY_HEADERS = {
    "strict-transport-security": "max-age=63072000; includeSubDomains",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
}


def assert_edge_headers(response: httpx.Response) -> None:
    for name, value in SECURITY_HEADERS.items():
        assert response.headers.get(name) == value, (response.status_code, name, dict(response.headers))
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    assert response.headers["x-request-id"]
    assert "server" not in response.headers or response.headers["server"] == "nginx"  # server_tokens off


def via_proxy(client_ip: str, proxy: str = "127.0.0.2") -> httpx.Client:
    """A client behind a trusted load balancer (127.0.0.2 or 127.0.0.3) that reports `client_ip`."""
    return httpx.Client(transport=httpx.HTTPTransport(local_address=proxy),
                        headers={"X-Forwarded-For": client_ip})


def login_storm(client: httpx.Client, url: str, count: int, *, spoof: bool = False) -> list[httpx.Response]:
    responses = []
    for _ in range(count):
        headers = {}
        if spoof:  # a fresh "client address" each time, from a connection that is not a trusted proxy
            headers["X-Forwarded-For"] = f"198.51.100.{uuid.uuid4().int % 250 + 1}"
        responses.append(client.post(url + "/api/auth/login", json={"email": "a@b.c", "password": "x"},
                                     headers=headers))
    return responses


# --- TLS -----------------------------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion:DeprecationWarning")
def test_https_with_the_dev_ca_and_modern_protocols_only(edge: Edge) -> None:
    response = httpx.get(edge.https_url + "/api/auth/me", verify=ssl.create_default_context(cafile=edge.cert.ca))
    assert response.status_code == 200 and response.http_version in ("HTTP/1.1", "HTTP/2")
    assert_edge_headers(response)
    old = ssl.create_default_context(cafile=edge.cert.ca)
    old.minimum_version = ssl.TLSVersion.TLSv1
    old.maximum_version = ssl.TLSVersion.TLSv1_1
    old.set_ciphers("ALL:@SECLEVEL=0")
    with pytest.raises(httpx.ConnectError):
        httpx.get(edge.https_url + "/health/live", verify=old)
    with pytest.raises(httpx.ConnectError):  # a certificate nobody trusts is refused, not ignored
        httpx.get(edge.https_url + "/health/live")


def test_plain_http_redirects_to_https_and_keeps_health(edge: Edge) -> None:
    https_port = edge.https_url.rsplit(":", 1)[1]
    response = httpx.get(edge.redirect_url + "/api/catalog/courses?page=2")
    assert response.status_code == 308
    assert response.headers["location"] == f"https://127.0.0.1:{https_port}/api/catalog/courses?page=2"
    assert httpx.get(edge.redirect_url + "/health/live").json() == {"status": "ok"}


# --- headers, ids, errors --------------------------------------------------------------------------


@pytest.mark.parametrize(("path", "status"), [
    ("/api/auth/me", 200),
    ("/api/auth/status/404", 404),  # the service's own 404 passes through untouched
    ("/media/nowhere", 404),  # the edge's 404 (any other path outside /api is the web app)
    ("/api/catalog/internal/x", 404),
    ("/api/catalog/metrics", 404),
    ("/api/playback/anything", 502),  # no replica up
])
def test_headers_on_every_response(edge: Edge, path: str, status: int) -> None:
    response = httpx.get(edge.plain_url + path)
    assert response.status_code == status
    assert_edge_headers(response)
    if status >= 400:
        assert response.headers["content-type"].startswith("application/problem+json")
        problem = response.json()
        assert problem["status"] == status


def test_web_app_is_served_at_the_root_with_spa_fallback(edge: Edge) -> None:
    index = httpx.get(edge.plain_url + "/")
    assert index.status_code == 200 and index.headers["content-type"].startswith("text/html")
    assert index.headers["cache-control"] == "no-cache"
    assert "script-src 'self'" in index.headers["content-security-policy"]
    assert_edge_headers(index)
    asset = httpx.get(edge.plain_url + "/assets/app-1a2b.js")
    assert asset.headers["content-type"] == "text/javascript"
    assert asset.headers["cache-control"] == "public, max-age=31536000, immutable"
    route = httpx.get(edge.plain_url + "/courses/abc?page=2")
    assert route.status_code == 200 and route.text == index.text
    missing = httpx.get(edge.plain_url + "/assets/app-old.js")
    assert missing.status_code == 404 and missing.json()["status"] == 404


def test_edge_errors_are_problem_json(edge: Edge) -> None:
    response = httpx.get(edge.plain_url + "/api/playback/x", headers={"X-Request-ID": "trace-502"})
    assert response.json() == {"type": "about:blank", "title": "Bad Gateway", "status": 502,
                               "request_id": "trace-502"}
    assert response.headers["cache-control"] == "no-store"
    too_big = httpx.post(edge.plain_url + "/api/billing/anything", content=b"x" * (1024 * 1024 + 1))
    assert too_big.status_code == 413 and too_big.json()["title"] == "Payload Too Large"
    assert_edge_headers(too_big)
    # Refused while the request line is read (no URI yet): still problem+json, not nginx's bare 500.
    too_long = httpx.get(edge.plain_url + "/api/playback/manifests/x/master.m3u8", params={"token": "t" * 10_000})
    assert too_long.status_code == 414 and too_long.json()["title"] == "URI Too Long"
    assert too_long.headers["content-type"] == "application/problem+json"


def test_request_id_is_created_or_passed_through_and_reaches_the_service(edge: Edge) -> None:
    auth = edge.upstreams["auth"][0]
    created = httpx.get(edge.plain_url + "/api/auth/me")
    rid = created.headers["x-request-id"]
    assert len(rid) == 32 and rid != "upstream-own"  # one id, the edge's (the service's own is hidden)
    assert created.headers.get_list("x-request-id") == [rid]
    assert auth.requests()[-1].headers["x-request-id"] == rid
    passed = httpx.get(edge.plain_url + "/api/auth/me", headers={"X-Request-ID": "client-id.1"})
    assert passed.headers["x-request-id"] == "client-id.1"
    assert auth.requests()[-1].headers["x-request-id"] == "client-id.1"
    garbage = httpx.get(edge.plain_url + "/api/auth/me", headers={"X-Request-ID": "bad id\twith spaces"})
    assert garbage.headers["x-request-id"] != "bad id\twith spaces"
    entry = next(e for e in reversed(edge.access_log()) if e["request_id"] == "client-id.1")
    assert entry["status"] == 200 and entry["upstream"] == auth.address and float(entry["upstream_time"]) >= 0


def test_cache_control_no_store_with_credentials(edge: Edge) -> None:
    anonymous = httpx.get(edge.plain_url + "/api/billing/cache/public")
    assert anonymous.headers["cache-control"] == "public, max-age=1"
    for headers in ({"Authorization": "Bearer x"}, {"Cookie": "refresh_token=x"}):
        response = httpx.get(edge.plain_url + "/api/billing/cache/public", headers=headers)
        assert response.headers.get_list("cache-control") == ["no-store"]
    assert httpx.get(edge.plain_url + "/api/billing/cache/none").headers["cache-control"] == "no-store"


def test_gzip_for_json_but_not_for_token_responses(edge: Edge) -> None:
    billing = httpx.get(edge.plain_url + "/api/billing/echo", headers={"Accept-Encoding": "gzip"})
    assert billing.headers["content-encoding"] == "gzip"
    assert billing.json()["server"].startswith("billing")  # httpx decompressed it
    auth = httpx.get(edge.plain_url + "/api/auth/echo", headers={"Accept-Encoding": "gzip"})
    assert "content-encoding" not in auth.headers


def test_cors_only_for_configured_origins(edge: Edge) -> None:
    allowed = httpx.get(edge.plain_url + "/api/auth/me", headers={"Origin": "https://app.example.test"})
    assert allowed.headers["access-control-allow-origin"] == "https://app.example.test"
    assert allowed.headers["access-control-allow-credentials"] == "true"
    assert "origin" in allowed.headers["vary"].lower()
    other = httpx.get(edge.plain_url + "/api/auth/me", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in other.headers
    preflight = httpx.options(edge.plain_url + "/api/billing/checkout", headers={
        "Origin": "https://app.example.test", "Access-Control-Request-Method": "POST"})
    assert preflight.status_code == 204
    assert "POST" in preflight.headers["access-control-allow-methods"]
    assert "Idempotency-Key" in preflight.headers["access-control-allow-headers"]
    assert not [s for s in edge.upstreams["billing"][0].seen + edge.upstreams["billing"][1].seen
                if s.method == "OPTIONS"], "preflights are answered at the edge"
    refused = httpx.options(edge.plain_url + "/api/billing/checkout", headers={
        "Origin": "https://evil.example", "Access-Control-Request-Method": "POST"})
    assert "access-control-allow-origin" not in refused.headers
    assert "access-control-allow-methods" not in refused.headers


# --- rate limits ---------------------------------------------------------------------------------


def test_login_zone_allows_five_a_minute_then_429_problem(edge: Edge) -> None:
    with via_proxy("203.0.113.10") as client:
        responses = login_storm(client, edge.plain_url, 12)
    statuses = [r.status_code for r in responses]
    assert statuses[:5] == [200] * 5 and set(statuses[5:]) == {429}
    refused = responses[-1]
    assert refused.headers["retry-after"] == "12"
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert refused.json()["status"] == 429
    assert_edge_headers(refused)
    # Another client behind the same proxy has its own budget.
    with via_proxy("203.0.113.11") as client:
        assert client.post(edge.plain_url + "/api/auth/login", json={}).status_code == 200


def test_real_ip_comes_only_from_trusted_proxies(edge: Edge) -> None:
    # Untrusted connection (127.0.0.1) with a new X-Forwarded-For each time: one bucket anyway.
    with httpx.Client() as client:
        statuses = [r.status_code for r in login_storm(client, edge.plain_url, 10, spoof=True)]
    assert statuses.count(429) >= 5 and not [s for s in statuses if s >= 500]
    # Behind the trusted proxy, a client prepending addresses to X-Forwarded-For is still keyed on
    # the address the proxy appended (the right-most untrusted one).
    with via_proxy("203.0.113.20") as client:
        statuses = [client.post(edge.plain_url + "/api/auth/login", json={},
                                headers={"X-Forwarded-For": f"10.9.9.{i}, 203.0.113.20"}).status_code
                    for i in range(8)]
    assert statuses.count(429) == 3
    # The service sees one address, the real one, never the client's chain.
    seen = edge.upstreams["auth"][0].requests("POST")[-1].headers
    assert seen["x-forwarded-for"] == "203.0.113.20" == seen["x-real-ip"]
    # TRUSTED_PROXIES is a list: the second load balancer (127.0.0.3) is believed too, and a chain
    # through both is followed back to the client; 127.0.0.1 is not in the list.
    with via_proxy("203.0.113.21, 127.0.0.2", proxy="127.0.0.3") as client:
        assert client.get(edge.plain_url + "/api/auth/me").status_code == 200
    seen = edge.upstreams["auth"][0].requests("GET")[-1].headers
    assert seen["x-forwarded-for"] == "203.0.113.21" == seen["x-real-ip"]
    with httpx.Client(headers={"X-Forwarded-For": "203.0.113.22"}) as client:
        assert client.get(edge.plain_url + "/api/auth/me").status_code == 200
    assert edge.upstreams["auth"][0].requests("GET")[-1].headers["x-real-ip"] == "127.0.0.1"


def test_api_zone_limits_per_client(edge: Edge) -> None:
    with via_proxy("203.0.113.30") as client:
        statuses = [client.get(edge.plain_url + "/api/billing/echo").status_code for _ in range(300)]
    assert 429 in statuses and 200 in statuses and not [s for s in statuses if s >= 500]
    with via_proxy("203.0.113.31") as client:
        assert client.get(edge.plain_url + "/api/billing/echo").status_code == 200


# --- microcache ----------------------------------------------------------------------------------


def start_of_a_second() -> None:
    """The microcache key changes with the wall-clock second: start where a second begins."""
    time.sleep(1 - time.time() % 1 + 0.02)


def test_microcache_serves_anonymous_public_reads_and_a_change_within_a_second(edge: Edge) -> None:
    catalog = edge.upstreams["catalog"][0]
    url = edge.plain_url + f"/api/catalog/cache/public?k={uuid.uuid4().hex}"
    start_of_a_second()
    first, second = httpx.get(url), httpx.get(url)
    assert first.headers["x-cache-status"] == "MISS" and second.headers["x-cache-status"] == "HIT"
    assert first.json() == second.json()
    assert second.headers["cache-control"] == "public, max-age=1"
    # With credentials: never from the cache, never stored, no-store.
    authed = httpx.get(url, headers={"Authorization": "Bearer x"})
    assert authed.headers["x-cache-status"] == "BYPASS" and authed.json() != first.json()
    assert authed.headers["cache-control"] == "no-store"
    assert httpx.get(url, headers={"Cookie": "a=b"}).headers["x-cache-status"] == "BYPASS"
    # The upstream changed (its counter moved): the edge shows it within a second.
    changed_at = time.monotonic()
    while httpx.get(url).json() == first.json():
        assert time.monotonic() - changed_at < 1.1, "stale for more than a second"
        time.sleep(0.02)
    assert catalog.hits >= 3


def test_microcache_never_stores_private_responses(edge: Edge) -> None:
    url = edge.plain_url + f"/api/catalog/cache/private?k={uuid.uuid4().hex}"
    first, second = httpx.get(url), httpx.get(url)
    assert first.json() != second.json() and second.headers["x-cache-status"] == "MISS"


def test_cache_lock_collapses_concurrent_misses(edge: Edge) -> None:
    import concurrent.futures
    import threading

    catalog = edge.upstreams["catalog"][0]
    url = edge.plain_url + f"/api/catalog/cache/public?k={uuid.uuid4().hex}"
    barrier = threading.Barrier(8)

    def read(_: int) -> int:
        with httpx.Client() as client:
            barrier.wait()
            hits: int = client.get(url).json()["hits"]
            return hits

    start_of_a_second()
    before = len(catalog.requests())
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        bodies = list(pool.map(read, range(8)))
    # One fetch for eight readers (a waiter only goes upstream itself after the 100 ms lock
    # timeout, which a loaded machine may reach once).
    assert len(catalog.requests()) - before <= 2
    assert max(bodies.count(b) for b in set(bodies)) >= 7


# --- retries -------------------------------------------------------------------------------------


def test_gets_are_retried_on_another_replica_but_posts_never(edge: Edge) -> None:
    """One replica reads each request and dies without answering (max_fails=2 allows two tries)."""
    dying, healthy = edge.upstreams["billing"]
    dying.seen.clear()
    healthy.seen.clear()
    dying.drop = True
    try:
        gets: list[httpx.Response] = []
        while not dying.requests("GET") and len(gets) < 4:
            gets.append(httpx.get(edge.plain_url + "/api/billing/orders/1",
                                  headers={"X-Request-ID": f"retry-get-{len(gets)}"}))
        posts: list[httpx.Response] = []
        while not dying.requests("POST") and len(posts) < 4:
            posts.append(httpx.post(edge.plain_url + "/api/billing/checkout", json={"n": len(posts)}))
    finally:
        dying.drop = False
    assert dying.requests("GET"), "least_conn never tried the dying replica"
    assert [r.status_code for r in gets] == [200] * len(gets), "a GET was not retried"
    retried = next(e for e in edge.access_log() if e["request_id"] == f"retry-get-{len(gets) - 1}")
    assert retried["upstream"] == f"{dying.address}, {healthy.address}"
    # The POST that reached the dying replica is answered 502 and never re-sent to the other one.
    assert [r.status_code for r in posts] == [200] * (len(posts) - 1) + [502]
    assert len(dying.requests("POST")) == 1
    assert len(healthy.requests("POST")) == len(posts) - 1
