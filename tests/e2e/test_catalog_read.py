"""Catalog reads through the gateway, in both run modes: search, ETag / Cache-Control, and writes
(publish, price change, unpublish) visible at once across catalog replicas and the edge microcache.

Distributed, catalog runs two replicas sharing one Redis response cache, and the edge may keep a
public answer for `max-age=1`: a change must show within about a second. The deadline below is a
little longer for a loaded CI machine, still far below the 60 s an uninvalidated entry would live.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

import httpx

from .test_core_path import login

DEMO_INSTRUCTOR = ("instructor@triple.academy", "Instructor-Demo-2026!")
DEMO_ASSET = "20000000-0000-4000-8000-000000000001"
VISIBLE_WITHIN_SECONDS = 3.0


def soon(check: Callable[[], bool], what: str, within: float = VISIBLE_WITHIN_SECONDS) -> None:
    """True on every one of three reads in a row (so on each replica), within the deadline."""
    deadline = time.monotonic() + within
    while not all(check() for _ in range(3)):
        if time.monotonic() > deadline:
            raise AssertionError(f"not visible within {within}s: {what}")
        time.sleep(0.1)


def test_publish_price_and_unpublish_are_visible_through_the_edge(base_url: str) -> None:
    word = f"zebrafish{uuid.uuid4().hex[:8]}"
    with httpx.Client(base_url=base_url, timeout=15) as client:
        instructor = login(client, *DEMO_INSTRUCTOR)
        created = client.post("/api/catalog/courses", headers=instructor, json={
            "title": f"Edge Cache {word}", "subtitle": "published through the gateway", "price_amount": 1200,
            "currency": "EUR", "tags": ["e2e"], "level": "beginner", "sections": [{"title": "Only", "lessons": [
                {"title": "Preview", "kind": "video", "asset_id": DEMO_ASSET, "is_preview": True},
                {"title": "Paid", "kind": "video", "asset_id": DEMO_ASSET}]}]})
        assert created.status_code == 201, created.text
        course = created.json()
        detail_url = f"/api/catalog/courses/{course['id']}"

        def search_hits() -> list[dict[str, object]]:
            response = client.get("/api/catalog/courses", params={"q": word})
            assert response.status_code == 200
            return list(response.json()["items"])

        assert search_hits() == []  # warms every cache with "not there"
        assert client.post(f"{detail_url}/publish", headers=instructor).status_code == 200
        soon(lambda: [item["id"] for item in search_hits()] == [course["id"]], "published course in search")

        public = client.get(detail_url)
        assert public.status_code == 200
        assert public.headers["cache-control"] == "public, max-age=1"
        assert "authorization" in public.headers["vary"].lower()
        lessons = public.json()["sections"][0]["lessons"]
        assert lessons[0]["asset_id"] == DEMO_ASSET and lessons[1]["asset_id"] is None
        revalidated = client.get(detail_url, headers={"If-None-Match": public.headers["etag"]})
        assert revalidated.status_code == 304 and revalidated.content == b""
        owner = client.get(detail_url, headers=instructor)
        # catalog says "private, no-cache"; the edge may tighten answers to credentials to no-store.
        assert owner.headers["cache-control"] in ("private, no-cache", "no-store")
        assert owner.json()["sections"][0]["lessons"][1]["asset_id"] == DEMO_ASSET

        changed = client.patch(detail_url, headers=instructor, json={"price_amount": 700})
        assert changed.status_code == 200, changed.text
        soon(lambda: client.get(detail_url).json()["price_amount"] == 700, "new price in the detail")
        soon(lambda: [item["price_amount"] for item in search_hits()] == [700], "new price in the list")

        assert client.post(f"{detail_url}/status", headers=instructor, json={"status": "draft"}).status_code == 200
        soon(lambda: search_hits() == [], "unpublished course gone from the list")
        soon(lambda: client.get(detail_url).status_code == 404, "unpublished course detail gone")
