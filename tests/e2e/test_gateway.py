"""What only the Nginx edge does: private internal routes, readiness of every replica, 429s."""

from __future__ import annotations

import httpx

from gateway.distributed import Topology


def test_internal_routes_are_not_public(distributed: Topology) -> None:
    with httpx.Client(base_url=distributed.gateway_url) as client:
        response = client.get("/api/catalog/internal/courses/00000000-0000-4000-8000-000000000000")
        assert response.status_code == 404
        assert client.get("/media/not-an-asset/x.ts").status_code == 404


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
    assert "http_requests_total" in metrics and "outbox_lag_seconds" in metrics


def test_logs_are_json_without_secrets(distributed: Topology) -> None:
    """The core path has run by now: tokens, signatures and passwords crossed every service."""
    access = (distributed.run_dir / "nginx" / "access.log").read_text()
    assert access.startswith("{")
    for log_file in [distributed.run_dir / "nginx" / "access.log", *(distributed.run_dir / "logs").glob("*.log")]:
        text = log_file.read_text()
        for secret in ("token=", "md5=", "eyJ", "Student-Demo-2026!", "Bearer "):
            assert secret not in text, f"{secret!r} in {log_file.name}"


def test_login_rate_limit_answers_429(distributed: Topology) -> None:
    """Runs last: it spends this IP's login budget at the edge."""
    with httpx.Client(base_url=distributed.gateway_url) as client:
        responses = [client.post("/api/auth/login", json={"email": "x@example.com", "password": "wrong-password"})
                     for _ in range(40)]
    # auth's own per-IP throttle answers problem+json; the edge's limit_req answers before auth.
    edge_refusals = [r for r in responses
                     if r.status_code == 429 and "problem+json" not in r.headers.get("content-type", "")]
    assert edge_refusals
