"""Public reads: ETag / Cache-Control, the Redis response cache, and its invalidation after every
kind of write that changes what the public sees: status changes, every metadata field and price,
co-instructors, curriculum edits, asset re-measurement, erasure of an instructor. Enrollments do not
show in public answers (no counts, and answers to signed-in callers are never cached), so grants
and revocations need no invalidation."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from prometheus_client import REGISTRY
from redis.asyncio import Redis

from catalog.public_cache import Cached, PublicCache
from catalog.resources import CatalogResources
from common.cache import open_cache
from common.testing import REDIS_URL, eventually_async, unique_name

from .conftest import ASSET, Platform, create_course, set_status

LIST = "/api/catalog/courses"


def lookups(cache: str, result: str) -> float:
    return REGISTRY.get_sample_value("catalog_cache_lookups_total",
                                     {"service": "catalog", "cache": cache, "result": result}) or 0.0


async def listed(p: Platform, course_id: str) -> dict[str, Any] | None:
    response = await p.client.get(LIST, params={"page_size": 100})
    assert response.status_code == 200
    return next((item for item in response.json()["items"] if item["id"] == course_id), None)


async def public_detail(p: Platform, course_id: str) -> dict[str, Any] | None:
    response = await p.client.get(f"{LIST}/{course_id}")
    if response.status_code == 404:
        return None
    assert response.status_code == 200
    return dict(response.json())


async def published_course(p: Platform, title: str, **overrides: Any) -> dict[str, Any]:
    course = await create_course(p, title, **overrides)
    assert (await set_status(p, course["id"], "published")).status_code == 200
    return course


async def test_etag_and_cache_control(platform: Platform) -> None:
    first = await platform.client.get(LIST)
    assert first.headers["cache-control"] == "public, max-age=1"
    assert first.headers["vary"] == "Authorization" and first.headers["etag"].startswith('"')
    etag = first.headers["etag"]
    second = await platform.client.get(LIST)
    assert second.headers["etag"] == etag and second.content == first.content
    for header in (etag, f"W/{etag}", f'"other", {etag}', "*"):
        not_modified = await platform.client.get(LIST, headers={"If-None-Match": header})
        assert not_modified.status_code == 304 and not_modified.content == b""
        assert not_modified.headers["etag"] == etag and not_modified.headers["cache-control"] == "public, max-age=1"
    assert (await platform.client.get(LIST, headers={"If-None-Match": '"stale"'})).status_code == 200

    signed_in = await platform.client.get(LIST, headers=platform.auth("student"))
    assert signed_in.headers["cache-control"] == "private, no-cache"
    assert signed_in.headers["vary"] == "Authorization" and signed_in.headers["etag"] == etag

    detail_url = f"{LIST}/10000000-0000-4000-8000-000000000001"
    anonymous = await platform.client.get(detail_url)
    assert anonymous.headers["cache-control"] == "public, max-age=1"
    assert (await platform.client.get(detail_url, headers={"If-None-Match": anonymous.headers["etag"]})
            ).status_code == 304
    owner = await platform.client.get(detail_url, headers=platform.auth("instructor"))
    assert owner.headers["cache-control"] == "private, no-cache"
    assert owner.headers["etag"] != anonymous.headers["etag"]  # the owner sees every asset id
    assert (await platform.client.get(detail_url, headers={**platform.auth("instructor"),
                                                           "If-None-Match": owner.headers["etag"]})).status_code == 304


async def test_public_reads_are_served_from_redis(platform: Platform) -> None:
    course = await published_course(platform, "Cached In Redis")
    url = f"{LIST}/{course['id']}"
    hits, misses = lookups("detail", "hit"), lookups("detail", "miss")
    await platform.client.get(url)
    await platform.client.get(url)
    await platform.client.get(url)
    assert lookups("detail", "miss") == misses + 1 and lookups("detail", "hit") == hits + 2
    prefix = platform.catalog_app.state.runtime.settings.redis_key_prefix
    redis = Redis.from_url(REDIS_URL)
    try:
        keys = [key async for key in redis.scan_iter(match=f"{prefix}pub:course:{course['id']}:*")]
    finally:
        await redis.aclose()
    assert keys, "the detail answer is stored in Redis"

    # A signed-in caller not entitled to more gets the cached public answer, marked private.
    hits = lookups("detail", "hit")
    student = await platform.client.get(url, headers=platform.auth("student"))
    assert lookups("detail", "hit") == hits + 1 and student.headers["cache-control"] == "private, no-cache"
    assert student.content == (await platform.client.get(url)).content
    # Its instructor's full view is cached beside it (same generation), never handed to the others.
    full_hits, full_misses = lookups("detail-full", "hit"), lookups("detail-full", "miss")
    owner = [await platform.client.get(url, headers=platform.auth("instructor")) for _ in range(2)]
    assert lookups("detail-full", "miss") == full_misses + 1 and lookups("detail-full", "hit") == full_hits + 1
    assert owner[0].content == owner[1].content != student.content
    assert owner[0].headers["cache-control"] == "private, no-cache"


async def test_publish_unpublish_archive_are_seen_at_once(platform: Platform) -> None:
    course = await create_course(platform, "Visibility Flips")
    course_id = course["id"]
    assert await listed(platform, course_id) is None and await public_detail(platform, course_id) is None
    assert (await set_status(platform, course_id, "published")).status_code == 200
    assert await listed(platform, course_id) is not None and await public_detail(platform, course_id) is not None
    await listed(platform, course_id)  # now cached
    assert (await set_status(platform, course_id, "draft")).status_code == 200
    assert await listed(platform, course_id) is None and await public_detail(platform, course_id) is None
    assert (await set_status(platform, course_id, "published")).status_code == 200
    assert await listed(platform, course_id) is not None
    assert (await set_status(platform, course_id, "archived")).status_code == 200
    assert await listed(platform, course_id) is None and await public_detail(platform, course_id) is None


async def test_metadata_and_price_changes_are_seen_at_once(platform: Platform) -> None:
    course = await published_course(platform, "Price Watch", slug="price-watch")
    course_id, url = course["id"], f"{LIST}/{course['id']}"
    assert (await listed(platform, course_id) or {})["price_amount"] == 1900
    assert (await public_detail(platform, course_id) or {})["price_amount"] == 1900
    assert (await platform.client.get(f"{LIST}/by-slug/price-watch")).status_code == 200
    changed = await platform.client.patch(url, json={"price_amount": 990, "title": "Price Watch II",
                                                     "slug": "price-watch-2"}, headers=platform.auth("instructor"))
    assert changed.status_code == 200
    assert (await listed(platform, course_id) or {})["price_amount"] == 990
    detail = await public_detail(platform, course_id) or {}
    assert detail["price_amount"] == 990 and detail["title"] == "Price Watch II"
    assert (await platform.client.get(f"{LIST}/by-slug/price-watch")).status_code == 404
    by_slug = await platform.client.get(f"{LIST}/by-slug/price-watch-2")
    assert by_slug.status_code == 200 and by_slug.json()["id"] == course_id
    free = await platform.client.patch(url, json={"price_amount": 0}, headers=platform.auth("admin"))
    assert free.status_code == 200
    assert (await listed(platform, course_id) or {})["is_free"] is True
    assert course_id in [item["id"] for item in (await platform.client.get(
        LIST, params={"price": "free", "page_size": 100})).json()["items"]]


async def test_curriculum_and_asset_changes_are_seen_at_once(platform: Platform) -> None:
    asset = str(uuid.uuid4())
    ready = {"asset_id": asset, "owner_id": platform.user_id("instructor"), "duration_seconds": 30,
             "ready_at": "2026-11-20T10:00:00Z"}
    await platform.deliver("playback.asset.ready", ready)
    course = await published_course(platform, "Curriculum Watch", sections=[{"title": "S", "lessons": [
        {"title": "Clip", "kind": "video", "asset_id": asset, "is_preview": True}]}])
    course_id = course["id"]
    assert (await public_detail(platform, course_id) or {})["duration_seconds"] == 30
    assert (await listed(platform, course_id) or {})["duration_seconds"] == 30

    # playback re-measures the asset: durations change without any HTTP write.
    await platform.deliver("playback.asset.ready", {**ready, "duration_seconds": 45})

    async def remeasured() -> bool:
        detail = await public_detail(platform, course_id) or {}
        item = await listed(platform, course_id) or {}
        return detail.get("duration_seconds") == 45 and item.get("duration_seconds") == 45

    await eventually_async(remeasured, within=1, interval=0.02, what="the cache invalidated")

    # Back to draft, add a lesson, publish again: the public sees the new curriculum.
    assert (await set_status(platform, course_id, "draft")).status_code == 200
    section_id = course["sections"][0]["id"]
    added = await platform.client.post(f"{LIST}/{course_id}/sections/{section_id}/lessons", json={
        "title": "Paid clip", "kind": "video", "asset_id": ASSET}, headers=platform.auth("instructor"))
    assert added.status_code == 201
    assert (await set_status(platform, course_id, "published")).status_code == 200
    detail = await public_detail(platform, course_id) or {}
    assert [lesson["title"] for lesson in detail["sections"][0]["lessons"]] == ["Clip", "Paid clip"]
    assert detail["sections"][0]["lessons"][1]["asset_id"] is None  # not a preview: hidden from the public
    assert (await listed(platform, course_id) or {})["lesson_count"] == 2


async def test_erased_instructor_disappears_from_cached_answers(platform: Platform) -> None:
    co_teacher = str(uuid.uuid4())
    course = await published_course(platform, "Co-taught Course", instructor_ids=[co_teacher])
    assert (await public_detail(platform, course["id"]) or {})["instructor_ids"][1] == co_teacher
    await platform.deliver("auth.user.deleted", {"user_id": co_teacher, "deleted_at": "2026-11-22T10:00:00Z"})

    async def forgotten() -> bool:
        detail = await public_detail(platform, course["id"]) or {}
        return detail.get("instructor_ids") == [platform.user_id("instructor")]

    await eventually_async(forgotten, within=1, interval=0.02, what="the cache invalidated")


async def listing_ids(p: Platform, **params: str) -> list[str]:
    response = await p.client.get(LIST, params={"page_size": 100, **params})
    assert response.status_code == 200
    return [item["id"] for item in response.json()["items"]]


async def primed(p: Platform, course_id: str, params: dict[str, str]) -> None:
    """Put the filtered list, the full list and the detail in the cache (the second read hits)."""
    for _ in range(2):
        hits = lookups("list", "hit")
        await listing_ids(p, **params)
        await listing_ids(p)
        await public_detail(p, course_id)
    assert lookups("list", "hit") == hits + 2, "the lists were served from the cache"


async def test_every_metadata_edit_is_seen_at_once(platform: Platform) -> None:
    """Each edit makes a cached filtered listing (which did not contain the course) contain it,
    and the cached detail and full listing show the new value."""
    category = await platform.client.post("/api/catalog/categories", json={"slug": "cache-cat", "name": "Cache"},
                                          headers=platform.auth("admin"))
    assert category.status_code == 201
    co_teacher = platform.user_id("other_instructor")
    course = await published_course(platform, "Metadata Cache Course", level="all", language="en")
    course_id = course["id"]
    edits: list[tuple[dict[str, Any], dict[str, str], str, Any]] = [
        # (PATCH body, listing filter that only matches after the edit, field, value in the answers)
        ({"category": "cache-cat"}, {"category": "cache-cat"}, "category", "cache-cat"),
        ({"level": "advanced"}, {"level": "advanced", "category": "cache-cat"}, "level", "advanced"),
        ({"language": "fr"}, {"language": "fr", "level": "advanced"}, "language", "fr"),
        ({"tags": ["zebrafish"]}, {"q": "zebrafish"}, "tags", ["zebrafish"]),
        ({"subtitle": "Wombat subtitle"}, {"q": "wombat"}, "subtitle", "Wombat subtitle"),
        ({"description": "About an axolotl."}, {"q": "axolotl"}, "description", "About an axolotl."),
        ({"title": "Narwhal Course"}, {"q": "narwhal"}, "title", "Narwhal Course"),
        ({"price_amount": 0}, {"price": "free", "q": "narwhal"}, "price_amount", 0),
        ({"instructor_ids": [co_teacher]}, {"instructor": co_teacher}, "instructor_ids",
         [platform.user_id("instructor"), co_teacher]),
        ({"cover_image_url": "https://cdn.example/new.png"}, {}, "cover_image_url", "https://cdn.example/new.png"),
    ]
    for body, params, field, value in edits:
        await primed(platform, course_id, params)
        assert params == {} or course_id not in await listing_ids(platform, **params), body
        response = await platform.client.patch(f"{LIST}/{course_id}", json=body, headers=platform.auth("instructor"))
        assert response.status_code == 200, response.text
        detail = await public_detail(platform, course_id) or {}
        shown = detail[field]["slug"] if field == "category" else detail[field]
        assert shown == value, body
        if field != "description":  # not part of a listing item
            assert (await listed(platform, course_id) or {})[field] == value, body
        assert params == {} or course_id in await listing_ids(platform, **params), body

    # Taking the co-instructor off again drops the course from that instructor's cached listing.
    await primed(platform, course_id, {"instructor": co_teacher})
    response = await platform.client.patch(f"{LIST}/{course_id}", json={"instructor_ids": []},
                                           headers=platform.auth("instructor"))
    assert response.status_code == 200
    assert course_id not in await listing_ids(platform, instructor=co_teacher)


async def generations(p: Platform, course_id: str) -> tuple[int, int]:
    """(list generation, course generation) in Redis: what every write must bump."""
    prefix = p.catalog_app.state.runtime.settings.redis_key_prefix
    redis = Redis.from_url(REDIS_URL)
    try:
        values = [await redis.get(f"{prefix}{key}") for key in ("gen:list", f"gen:course:{course_id}")]
    finally:
        await redis.aclose()
    list_generation, course_generation = (int(value or 0) for value in values)
    return list_generation, course_generation


async def test_every_curriculum_write_invalidates_the_course(platform: Platform) -> None:
    """Curriculum edits happen in draft (not public then); they still invalidate, so no path to
    publication can ever serve a curriculum older than the last edit. Publication itself is
    covered above; here every curriculum route must bump both generations."""
    course = await create_course(platform, "Curriculum Generations")
    course_id, base = course["id"], f"{LIST}/{course['id']}"
    auth = platform.auth("instructor")

    async def write(method: str, url: str, body: Any = None) -> dict[str, Any]:
        list_before, course_before = await generations(platform, course_id)
        response = await platform.client.request(method, url, json=body, headers=auth)
        assert response.status_code in (200, 201), (method, url, response.text)
        list_after, course_after = await generations(platform, course_id)
        assert list_after > list_before and course_after > course_before, (method, url)
        return dict(response.json())

    added = await write("POST", f"{base}/sections", {"title": "Extra"})
    extra_section = added["sections"][-1]["id"]
    await write("PATCH", f"{base}/sections/{extra_section}", {"title": "Extra, renamed"})
    added = await write("POST", f"{base}/sections/{extra_section}/lessons", {"title": "T", "kind": "text"})
    new_lesson = added["sections"][-1]["lessons"][0]["id"]
    await write("PATCH", f"{base}/lessons/{new_lesson}", {"title": "T2", "is_preview": True})
    order = {"sections": [{"id": section["id"], "lesson_ids": [lesson["id"] for lesson in section["lessons"]]}
                          for section in reversed(added["sections"])]}
    await write("PUT", f"{base}/curriculum/order", order)
    await write("DELETE", f"{base}/lessons/{new_lesson}")
    await write("DELETE", f"{base}/sections/{extra_section}")
    await write("POST", f"{base}/status", {"status": "published"})
    assert [section["id"] for section in (await public_detail(platform, course_id) or {})["sections"]] == [
        section["id"] for section in reversed(course["sections"])]
    await write("POST", f"{base}/status", {"status": "archived"})


async def test_anonymous_answers_are_kept_by_the_replica_for_their_max_age(
        platform: Platform, monkeypatch: pytest.MonkeyPatch) -> None:
    """Anonymous answers come from this replica's copy (no Redis round trip) and a write made here
    empties it: the next anonymous read sees the write. Signed-in reads never use the copy."""
    course = await published_course(platform, "Kept Near")
    url = f"{LIST}/{course['id']}"
    runtime = platform.catalog_app.state.runtime
    cache = runtime.cache
    # One wall-clock second throughout: a copy is kept only within the second it was fetched in.
    monkeypatch.setattr(runtime.resources_as(CatalogResources).public_cache, "clock", lambda: 1_000_000.5)
    await platform.client.get(url)  # fills Redis and this replica's copy

    reads: list[str] = []
    original = cache.get_versioned

    async def counted(generation_key: str, *args: Any) -> Any:
        reads.append(generation_key)
        return await original(generation_key, *args)

    with monkeypatch.context() as patched:
        patched.setattr(cache, "get_versioned", counted)
        hits = lookups("detail", "hit")
        assert (await platform.client.get(url)).json()["title"] == "Kept Near"
        assert reads == [] and lookups("detail", "hit") == hits + 1  # a hit of the same cache
        assert (await platform.client.get(url, headers=platform.auth("student"))).status_code == 200
        assert reads == [f"gen:course:{course['id']}"], reads  # signed in: through Redis
    renamed = await platform.client.patch(url, json={"title": "Kept Near, Renamed"},
                                          headers=platform.auth("instructor"))
    assert renamed.status_code == 200, renamed.text
    assert (await platform.client.get(url)).json()["title"] == "Kept Near, Renamed"


async def test_another_replicas_write_reaches_a_kept_answer_when_the_second_turns() -> None:
    """Two replicas over one Redis: replica B keeps its anonymous copy until the wall-clock second
    it was fetched in ends (when the edge's microcache turns over too), then reads the new
    generation replica A's write made. A read that raced a local write keeps nothing."""
    now = [1_000_000.1]
    redis_cache = open_cache(REDIS_URL, f"{unique_name('near')}:")
    try:
        replica_a = PublicCache(redis_cache, 60, near_seconds=1, clock=lambda: now[0])
        replica_b = PublicCache(redis_cache, 60, near_seconds=1, clock=lambda: now[0])
        course_id = uuid.uuid4()
        slot = PublicCache.course_slot(course_id)
        key, _ = await replica_b.lookup("detail", slot)
        assert key is not None
        ticket, _ = replica_b.near("detail", slot)
        replica_b.keep_near(slot, await replica_b.put(key, b'{"v": 1}'), ticket)
        await replica_a.invalidate({course_id})  # replica A's write
        now[0] = 1_000_000.95
        kept = replica_b.near("detail", slot)[1]
        assert kept is not None and kept.body == b'{"v": 1}'  # the second it was fetched in
        now[0] = 1_000_001.0
        assert replica_b.near("detail", slot)[1] is None
        assert (await replica_b.lookup("detail", slot))[1] is None, "a new generation: the old answer is gone"

        # B starts a read, B's own write lands: the read's answer is not kept.
        ticket, _ = replica_b.near("detail", slot)
        await replica_b.invalidate({course_id})
        replica_b.keep_near(slot, Cached('"stale"', b"stale"), ticket)
        assert replica_b.near("detail", slot)[1] is None
        # A read that started in one second and ended in the next is not kept either.
        ticket, _ = replica_b.near("detail", slot)
        now[0] = 1_000_002.0
        replica_b.keep_near(slot, Cached('"late"', b"late"), ticket)
        assert replica_b.near("detail", slot)[1] is None
    finally:
        await redis_cache.close()


async def test_no_kept_answers_without_a_max_age() -> None:
    redis_cache = open_cache(REDIS_URL, f"{unique_name('near')}:")
    try:
        public = PublicCache(redis_cache, 60, near_seconds=0)
        slot = PublicCache.list_slot("q")
        ticket, entry = public.near("list", slot)
        public.keep_near(slot, Cached('"e"', b"body"), ticket)
        assert entry is None and public.near("list", slot)[1] is None
    finally:
        await redis_cache.close()
