"""The inputs that crashed routes with a 500, through the gateway in both modes: each is
now a clear 4xx problem+json, and the connection stays usable."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import httpx

from .test_core_path import DEMO_ADMIN, login

PROBLEM = "application/problem+json"


def assert_problem(response: httpx.Response, status: int) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)


def test_non_ascii_signatures_are_refused_not_crashed(base_url: str) -> None:
    with httpx.Client(base_url=base_url, timeout=30) as client:
        upload = client.put(f"/api/playback/assets/{uuid.uuid4()}/upload",
                            params={"expires": int(time.time()) + 60, "signature": "é" * 43}, content=b"x")
        assert_problem(upload, 403)
        webhook = client.post("/api/billing/webhooks/stripe", content=b"{}",
                              headers=[(b"Content-Type", b"application/json"),
                                       (b"Stripe-Signature", "t=1,v1=\xe9\xe9".encode("latin-1"))])
        assert_problem(webhook, 400)
        forged = client.get("/api/auth/me", headers={"Authorization": "Bearer eyJhbGciOiJFZERTQSJ9.eyJhdWQiOjV9.x"})
        assert_problem(forged, 401)  # an unsigned `"aud": 5`
        assert client.get("/api/catalog/courses").status_code == 200  # the same connection still serves


def test_integers_beyond_the_columns_are_422(base_url: str) -> None:
    with httpx.Client(base_url=base_url, timeout=30) as client:
        admin = login(client, *DEMO_ADMIN)
        assert_problem(client.get("/api/playback/assets", params={"page": 2**64}, headers=admin), 422)
        assert_problem(client.get("/api/catalog/courses", params={"page": 2**64}), 422)
        for field, value in (("amount_off", 2**64), ("max_redemptions", 2**31)):
            body = {"code": f"BIG{uuid.uuid4().hex[:8]}", "kind": "fixed", "amount_off": 100, "currency": "EUR",
                    field: value}
            assert_problem(client.post("/api/billing/admin/coupons", json=body, headers=admin), 422)


def test_nul_in_text_is_422_in_both_modes(base_url: str) -> None:
    with httpx.Client(base_url=base_url, timeout=30) as client:
        admin = login(client, *DEMO_ADMIN)
        slug = f"nul-{uuid.uuid4().hex[:8]}"
        refused = client.post("/api/catalog/categories", json={"slug": slug, "name": "a\u0000b"}, headers=admin)
        assert_problem(refused, 422)
        assert_problem(client.get("/api/catalog/courses", params={"q": "a\u0000b"}), 422)
        assert_problem(client.post("/api/auth/login", content=b'{"email": "a@b.c", "password": "\\ud800"}',
                                   headers={"Content-Type": "application/json"}), 422)
        # Nothing was half-written: the same category is created once the text is storable.
        created = client.post("/api/catalog/categories", json={"slug": slug, "name": "ab"}, headers=admin)
        assert created.status_code == 201, created.text


def test_bodies_above_one_mib_are_413_at_the_edge(base_url: str) -> None:
    with httpx.Client(base_url=base_url, timeout=60) as client:
        declared = client.post("/api/billing/webhooks/stripe", content=b"x" * (1024 * 1024 + 512 * 1024),
                               headers={"Content-Type": "application/json"})
        assert_problem(declared, 413)

        def thirty_mib() -> Iterator[bytes]:  # chunked: no Content-Length to refuse up front
            chunk = b" " * 65536
            for _ in range(30 * 16):
                yield chunk

        try:
            streamed = client.post("/api/auth/login", content=thirty_mib(),
                                   headers={"Content-Type": "application/json"})
        except httpx.TransportError:
            return  # nginx may close the connection while the client is still sending: refused all the same
        assert_problem(streamed, 413)
