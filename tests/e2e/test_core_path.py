"""DESIGN.md "core path" 1-9 through the gateway, in both run modes."""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from common.testing import eventually as eventually

DEMO_ADMIN = ("admin@triple.academy", "Admin-Demo-2026!")
DEMO_INSTRUCTOR = ("instructor@triple.academy", "Instructor-Demo-2026!")
DEMO_ASSET = "20000000-0000-4000-8000-000000000001"
HLS = "application/vnd.apple.mpegurl"


def login(client: httpx.Client, email: str, password: str) -> dict[str, str]:
    response = client.post("/api/auth/login", json={"email": email, "password": password})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def media_uris(playlist: str) -> list[str]:
    return [line for line in playlist.splitlines() if line and not line.startswith("#")]


def test_core_path(base_url: str) -> None:
    with httpx.Client(base_url=base_url, timeout=15) as client:
        # 1. register
        email = f"learner-{uuid.uuid4().hex[:8]}@example.com"
        password = "a long enough passphrase"
        registered = client.post("/api/auth/register",
                                 json={"email": email, "password": password, "full_name": "E2E Learner"})
        assert registered.status_code == 201, registered.text
        assert not any("password" in key for key in registered.json())

        # 2. login, 3. me + refresh rotation
        pair = client.post("/api/auth/login", json={"email": email, "password": password}).json()
        assert pair["token_type"] == "bearer" and pair["expires_in"] > 0
        learner = {"Authorization": f"Bearer {pair['access_token']}"}
        me = client.get("/api/auth/me", headers=learner)
        assert me.status_code == 200 and me.json()["email"] == email
        rotated = client.post("/api/auth/refresh", json={"refresh_token": pair["refresh_token"]})
        assert rotated.status_code == 200 and rotated.json()["refresh_token"] != pair["refresh_token"]
        learner = {"Authorization": f"Bearer {rotated.json()['access_token']}"}

        # An instructor creates and publishes a course with a paid video lesson.
        instructor = login(client, *DEMO_INSTRUCTOR)
        created = client.post("/api/catalog/courses", headers=instructor, json={
            "title": f"E2E course {uuid.uuid4().hex[:6]}", "subtitle": "end to end",
            "description": "walks the core path", "price_amount": 1999, "currency": "EUR",
            "sections": [{"title": "Only section", "lessons": [
                {"title": "Preview", "kind": "video", "asset_id": DEMO_ASSET, "is_preview": True},
                {"title": "Paid part", "kind": "video", "asset_id": DEMO_ASSET, "is_preview": False},
            ]}]})
        assert created.status_code == 201, created.text
        course_id = created.json()["id"]
        assert client.post(f"/api/catalog/courses/{course_id}/publish", headers=instructor).status_code == 200

        # 4. public list and detail
        listing = client.get("/api/catalog/courses", params={"page_size": 100})
        assert listing.status_code == 200
        body = listing.json()
        assert {"items", "total", "page", "page_size"} <= body.keys()
        assert course_id in [item["id"] for item in body["items"]]
        detail = client.get(f"/api/catalog/courses/{course_id}").json()
        lessons = [lesson for section in detail["sections"] for lesson in section["lessons"]]
        preview = next(lesson for lesson in lessons if lesson["is_preview"])
        paid = next(lesson for lesson in lessons if not lesson["is_preview"])
        assert preview["asset_id"] == DEMO_ASSET

        # 7 (before paying): the preview plays, the paid lesson does not.
        assert client.post("/api/playback/token", headers=learner,
                           json={"lesson_id": preview["id"]}).status_code == 200
        refused = client.post("/api/playback/token", headers=learner, json={"lesson_id": paid["id"]})
        assert refused.status_code == 403

        # 5. checkout, idempotent on the key
        key = {"Idempotency-Key": uuid.uuid4().hex}
        checkout = client.post("/api/billing/checkout", headers={**learner, **key}, json={"course_id": course_id})
        assert checkout.status_code == 201, checkout.text
        order = checkout.json()
        assert order["status"] == "pending" and order["checkout_url"]
        again = client.post("/api/billing/checkout", headers={**learner, **key}, json={"course_id": course_id})
        assert again.json()["order_id"] == order["order_id"]

        # The local provider's checkout page pays: a Stripe-format signed webhook reaches billing.
        page = client.get(order["checkout_url"])
        assert page.status_code == 200
        paid_response = client.post(order["checkout_url"] + "/pay")
        assert paid_response.status_code < 400, paid_response.text

        # 6. order paid -> enrollment
        order_url = f"/api/billing/orders/{order['order_id']}"
        eventually(lambda: client.get(order_url, headers=learner).json()["status"] == "paid", what="order paid")
        eventually(lambda: course_id in [e["course_id"] for e in
                                         client.get("/api/catalog/me/enrollments", headers=learner).json()["items"]],
                   what="enrollment granted")

        # 7. playback token for the now-enrolled learner
        token = eventually(lambda: _token_or_none(client, learner, paid["id"]), what="playback entitlement")
        assert token["expires_in"] == 90 and token["session_id"]

        # 8. the manifest and every media URL it names are fetchable; tampering is refused
        master = client.get(token["manifest_url"])
        assert master.status_code == 200 and master.headers["content-type"].startswith(HLS)
        variant_url = media_uris(master.text)[0]
        variant = client.get(variant_url)
        assert variant.status_code == 200 and variant.headers["content-type"].startswith(HLS)
        segments = media_uris(variant.text)
        assert segments and all("md5=" in uri and "expires=" in uri for uri in segments)
        for uri in segments:
            fetched = client.get(uri)
            assert fetched.status_code == 200 and len(fetched.content) > 0
        assert client.get(segments[0].replace("md5=", "md5=x")).status_code == 403
        wrong_token = token["manifest_url"].split("token=")[0] + "token=not.a.token"
        assert client.get(wrong_token).status_code == 401
        # another viewer's token does not open this session
        foreign = client.post("/api/playback/token", headers=learner, json={"lesson_id": preview["id"]}).json()
        foreign_url = token["manifest_url"].split("token=")[0] + "token=" + foreign["token"]
        assert client.get(foreign_url).status_code in (401, 403)

        # 9. an admin refund revokes the enrollment and cuts playback
        admin = login(client, *DEMO_ADMIN)
        refund = client.post(f"{order_url}/refund", headers=admin, json={"reason": "requested_by_customer"})
        assert refund.status_code == 200, refund.text
        eventually(lambda: client.get(order_url, headers=learner).json()["status"] == "refunded", what="refunded")
        eventually(lambda: client.post("/api/playback/token", headers=learner,
                                       json={"lesson_id": paid["id"]}).status_code == 403,
                   what="playback refused after refund")
        assert client.get(variant_url).status_code == 403
        enrolled = client.get("/api/catalog/me/enrollments", headers=learner).json()["items"]
        assert course_id not in [e["course_id"] for e in enrolled]


def _token_or_none(client: httpx.Client, headers: dict[str, str], lesson_id: str) -> dict[str, Any] | None:
    response = client.post("/api/playback/token", headers=headers, json={"lesson_id": lesson_id})
    return response.json() if response.status_code == 200 else None


def test_demo_catalog_and_bad_input(base_url: str) -> None:
    with httpx.Client(base_url=base_url, timeout=15) as client:
        listing = client.get("/api/catalog/courses").json()
        assert any(item["slug"] == "protected-video-streaming-101" for item in listing["items"])
        bad = client.post("/api/auth/register", json={"email": "nope", "password": "x"})
        assert bad.status_code == 422 and bad.headers["content-type"] == "application/problem+json"
        assert client.get("/api/auth/me").status_code == 401
        unknown = client.get(f"/api/catalog/courses/{uuid.uuid4()}")
        assert unknown.status_code == 404
        response = client.get("/api/catalog/courses", headers={"X-Request-ID": "e2e-request-1"})
        assert response.headers["x-request-id"] == "e2e-request-1"
        assert response.headers["x-content-type-options"] == "nosniff"
