"""What the edge does: private internal routes (both modes), readiness of every replica, TLS, edge
headers, the microcache (test_failover.py: replicas dying, rate limits)."""

from __future__ import annotations

import ssl
import time
import uuid

import httpx

from gateway.distributed import Topology

ADMIN = {"email": "admin@triple.academy", "password": "Admin-Demo-2026!"}
DEMO_COURSE = "10000000-0000-4000-8000-000000000001"


def test_internal_routes_and_metrics_are_not_public(base_url: str) -> None:
    """Both modes hide /internal and /metrics at the edge, while the services' own calls to those
    internal APIs still work (embedded: in-process through the same app; distributed: direct)."""
    with httpx.Client(base_url=base_url, timeout=15) as client:
        for path in (f"/api/catalog/internal/courses/{DEMO_COURSE}", f"/api/catalog/internal/lessons/{DEMO_COURSE}",
                     "/api/auth/internal/users/00000000-0000-4000-8000-000000000000",
                     "/api/playback/internal/progress", "/api/catalog/metrics", "/api/billing/metrics"):
            response = client.get(path)
            assert response.status_code == 404, path
            assert response.headers["content-type"].startswith("application/problem+json"), path
            assert response.headers["x-content-type-options"] == "nosniff"
        # A checkout makes billing read the course from catalog's /internal/courses/{id}.
        email, password = f"edge-{uuid.uuid4().hex[:8]}@example.com", "a long enough passphrase"
        registered = client.post("/api/auth/register", json={"email": email, "password": password, "full_name": "Edge"})
        assert registered.status_code == 201, registered.text
        token = client.post("/api/auth/login", json={"email": email, "password": password}).json()["access_token"]
        checkout = client.post("/api/billing/checkout", json={"course_id": DEMO_COURSE},
                               headers={"Authorization": f"Bearer {token}", "Idempotency-Key": uuid.uuid4().hex})
        assert checkout.status_code == 201, checkout.text
        assert checkout.json()["amount"] > 0


def test_openapi_documents_are_served_under_their_prefix(distributed: Topology) -> None:
    with httpx.Client(base_url=distributed.gateway_url) as client:
        for service in ("auth", "catalog", "billing", "playback"):
            docs = client.get(f"/api/{service}/docs")
            assert docs.status_code == 200 and f"/api/{service}/openapi.json" in docs.text
            assert client.get(f"/api/{service}/openapi.json").json()["paths"]


def test_every_replica_is_ready_and_metrics_use_route_templates(distributed: Topology) -> None:
    for service, ports in distributed.ports.items():
        for port in ports:
            ready = httpx.get(f"http://127.0.0.1:{port}/health/ready")
            assert ready.status_code == 200, (service, ready.text)
            assert set(ready.json()["checks"]) >= {"database", "redis", "broker"}
    metrics = httpx.get(f"http://127.0.0.1:{distributed.ports['catalog'][0]}/metrics").text
    assert "http_server_request_duration_seconds_bucket" in metrics and "events_outbox_lag_seconds" in metrics


def test_logs_are_json_without_secrets(distributed: Topology) -> None:
    """The core path has run by now: tokens, signatures and passwords crossed every service."""
    access = (distributed.run_dir / "nginx" / "access.log").read_text()
    assert access.startswith("{")
    for log_file in [distributed.run_dir / "nginx" / "access.log", *(distributed.run_dir / "logs").glob("*.log")]:
        text = log_file.read_text()
        for secret in ("token=", "md5=", "eyJ", "Student-Demo-2026!", "Bearer "):
            assert secret not in text, f"{secret!r} in {log_file.name}"


def test_tls_edge_with_the_dev_ca(distributed: Topology) -> None:
    """The same API over HTTPS (Mozilla intermediate, HSTS); the redirect listener sends plain
    HTTP there."""
    context = ssl.create_default_context(cafile=distributed.ca_file)
    with httpx.Client(base_url=distributed.https_url, verify=context) as client:
        courses = client.get("/api/catalog/courses")
        assert courses.status_code == 200 and courses.json()["items"]
        assert courses.headers["strict-transport-security"].startswith("max-age=")
    redirect = httpx.get(f"http://127.0.0.1:{distributed.redirect_port}/api/catalog/courses")
    assert redirect.status_code == 308
    assert redirect.headers["location"] == f"{distributed.https_url}/api/catalog/courses"


def test_edge_headers_on_service_and_edge_responses(distributed: Topology) -> None:
    with httpx.Client(base_url=distributed.gateway_url) as client:
        for path, status in (("/api/catalog/courses", 200), ("/api/auth/me", 401), ("/media/not-an-asset/x.ts", 404),
                             ("/api/catalog/courses/00000000-0000-4000-8000-000000000000", 404),
                             ("/api/nowhere", 404), ("/x", 200)):  # any other path is the web app (SPA)
            response = client.get(path)
            assert response.status_code == status, path
            for header in ("strict-transport-security", "x-content-type-options", "referrer-policy",
                           "content-security-policy", "x-request-id"):
                assert header in response.headers, (path, header)
            assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
            assert response.headers.get_list("x-request-id") == [response.headers["x-request-id"]]


def test_public_catalog_reads_are_microcached_and_a_publish_shows_within_a_second(distributed: Topology) -> None:
    with httpx.Client(base_url=distributed.gateway_url) as client:
        login = client.post("/api/auth/login", json=ADMIN)
        auth = {"Authorization": f"Bearer {login.json()['access_token']}"}
        # Anonymous reads come from the edge cache; a reader with credentials never does.
        time.sleep(1 - time.time() % 1 + 0.02)  # the cache key changes with the wall-clock second
        first, second = client.get("/api/catalog/courses"), client.get("/api/catalog/courses")
        assert (first.headers["x-cache-status"], second.headers["x-cache-status"]) == ("MISS", "HIT")
        assert "no-store" not in second.headers["cache-control"]
        authed = client.get("/api/catalog/courses", headers=auth)
        assert authed.headers["x-cache-status"] == "BYPASS" and authed.headers["cache-control"] == "no-store"
        total = second.json()["total"]
        created = client.post("/api/catalog/courses", headers=auth, json={
            "title": f"Edge cache {uuid.uuid4().hex[:8]}", "price_amount": 0, "currency": "EUR",
            "sections": [{"title": "One", "lessons": [{"title": "Read me", "kind": "text", "body": "Hello."}]}]})
        assert created.status_code == 201, created.text
        published = client.post(f"/api/catalog/courses/{created.json()['id']}/publish", headers=auth)
        assert published.status_code == 200, published.text
        published_at = time.monotonic()
        while client.get("/api/catalog/courses").json()["total"] == total:
            assert time.monotonic() - published_at < 1.3, "the edge served the old list for over a second"
            time.sleep(0.05)


def test_embedded_gateway_applies_the_same_edge(embedded: str) -> None:
    """`make run` has no Nginx: its edge middleware adds the same headers, ids and CORS."""
    with httpx.Client(base_url=embedded) as client:
        for path, status in (("/api/catalog/courses", 200), ("/api/auth/me", 401), ("/api/nowhere", 404),
                             ("/nowhere", 200)):  # any other path is the web app (SPA fallback)
            response = client.get(path, headers={"Origin": "http://localhost:3000"})
            assert response.status_code == status, path
            for header in ("strict-transport-security", "x-content-type-options", "referrer-policy", "x-request-id"):
                assert header in response.headers, (path, header)
            assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
            assert response.headers["access-control-allow-origin"] == "http://localhost:3000"
            assert len(response.headers.get_list("x-request-id")) == 1
        passed = client.get("/api/catalog/courses", headers={"X-Request-ID": "embedded-trace-1"})
        assert passed.headers["x-request-id"] == "embedded-trace-1"
        login = client.post("/api/auth/login", json=ADMIN)
        me = client.get("/api/auth/me", headers={"Authorization": f"Bearer {login.json()['access_token']}"})
        assert me.headers["cache-control"] == "no-store"
        assert "access-control-allow-origin" not in client.get(
            "/api/catalog/courses", headers={"Origin": "https://evil.example"}).headers
