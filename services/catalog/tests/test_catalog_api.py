"""Catalog's public and internal HTTP API through the in-process gateway (/api/catalog)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from catalog import demo

from .conftest import ASSET, Platform, course_body, create_course

PAID_COURSE = "10000000-0000-4000-8000-000000000001"
FREE_COURSE = "10000000-0000-4000-8000-000000000002"
PROBLEM = "application/problem+json"


async def test_demo_courses_are_seeded_once(platform: Platform) -> None:
    async with platform.catalog_app.state.runtime.db.transaction() as session:
        await demo.seed(db_session=session)  # a second seed changes nothing
    listing = (await platform.client.get("/api/catalog/courses", params={"page_size": 100})).json()
    demo_items = {item["id"]: item for item in listing["items"] if item["id"] in (PAID_COURSE, FREE_COURSE)}
    assert demo_items[PAID_COURSE]["lesson_count"] == 3
    assert demo_items[PAID_COURSE]["price_amount"] == 4900 and demo_items[PAID_COURSE]["currency"] == "EUR"
    assert demo_items[FREE_COURSE]["price_amount"] == 0

    detail = (await platform.client.get(f"/api/catalog/courses/{PAID_COURSE}")).json()
    assert detail["slug"] == "protected-video-streaming-101" and detail["status"] == "published"
    assert detail["instructor_id"] == "00000000-0000-4000-8000-000000000002"
    assert [s["title"] for s in detail["sections"]] == ["Welcome", "Deep dive"]
    trailer, reading = detail["sections"][0]["lessons"]
    assert trailer == {"id": "30000000-0000-4000-8000-000000000001", "title": "Trailer", "kind": "video",
                       "position": 1, "is_preview": True, "duration_seconds": 6, "asset_id": ASSET,
                       "body": None}
    assert reading["kind"] == "text" and reading["asset_id"] is None
    assert reading["body"] is None  # a paid text lesson's content is not public
    assert detail["lesson_count"] == 3 and detail["duration_seconds"] == 12
    assert detail["category"]["slug"] == "video-engineering" and "hls" in detail["tags"]
    deep = detail["sections"][1]["lessons"][0]
    assert deep["id"] == "30000000-0000-4000-8000-000000000003" and deep["is_preview"] is False
    assert await platform.outbox_events("catalog.course.published.v1", course_id=PAID_COURSE) == []


async def test_create_publish_list_and_detail(platform: Platform) -> None:
    created = await create_course(platform, "Adaptive Bitrate: The Hard Parts")
    assert created["slug"] == "adaptive-bitrate-the-hard-parts"
    assert created["status"] == "draft" and created["published_at"] is None
    assert created["instructor_id"] == platform.user_id("instructor")
    assert [(s["position"], s["title"]) for s in created["sections"]] == [(1, "Intro"), (2, "Core")]
    assert [(lesson["position"], lesson["kind"]) for lesson in created["sections"][0]["lessons"]] == [
        (1, "video"), (2, "text")]
    assert all(uuid.UUID(lesson["id"]) for s in created["sections"] for lesson in s["lessons"])
    course_id = created["id"]

    listing = (await platform.client.get("/api/catalog/courses", params={"page_size": 100})).json()
    assert course_id not in [item["id"] for item in listing["items"]]

    published = await platform.client.post(f"/api/catalog/courses/{course_id}/publish",
                                           headers=platform.auth("instructor"))
    assert published.status_code == 200, published.text
    assert published.json()["status"] == "published" and published.json()["published_at"]
    assert len(published.json()["sections"]) == 2
    again = await platform.client.post(f"/api/catalog/courses/{course_id}/publish",
                                       headers=platform.auth("instructor"))
    assert again.status_code == 200
    events = await platform.outbox_events("catalog.course.published.v1", course_id=course_id)
    assert len(events) == 1
    assert events[0]["price_amount"] == 1900 and events[0]["currency"] == "EUR"
    assert events[0]["slug"] == "adaptive-bitrate-the-hard-parts"

    first_page = await platform.client.get("/api/catalog/courses", params={"page": 1, "page_size": 1})
    assert first_page.status_code == 200
    page = first_page.json()
    assert page["page"] == 1 and page["page_size"] == 1 and page["total"] >= 3
    newest = page["items"][0]
    assert newest["id"] == course_id and newest["lesson_count"] == 3
    assert set(newest) == {"id", "slug", "title", "subtitle", "price_amount", "currency", "instructor_id",
                           "lesson_count", "published_at", "instructor_ids", "level", "language", "category",
                           "tags", "cover_image_url", "duration_seconds", "is_free"}
    assert newest["duration_seconds"] == 12 and newest["instructor_ids"] == [platform.user_id("instructor")]

    public = await platform.client.get(f"/api/catalog/courses/{course_id}")
    assert public.status_code == 200 and public.json()["sections"][1]["lessons"][0]["title"] == "Main"

    # A derived slug that is taken gets a suffix instead of failing.
    twin = await create_course(platform, "Adaptive Bitrate: The Hard Parts")
    assert twin["slug"].startswith("adaptive-bitrate-the-hard-parts-") and twin["id"] != course_id


async def test_drafts_are_hidden_from_everyone_but_owner_and_admin(platform: Platform) -> None:
    draft = await create_course(platform, "Secret Draft")
    url = f"/api/catalog/courses/{draft['id']}"
    anonymous = await platform.client.get(url)
    assert anonymous.status_code == 404 and anonymous.headers["content-type"] == PROBLEM
    assert (await platform.client.get(url, headers=platform.auth("student"))).status_code == 404
    assert (await platform.client.get(url, headers=platform.auth("other_instructor"))).status_code == 404
    assert (await platform.client.get(url, headers=platform.auth("instructor"))).status_code == 200
    assert (await platform.client.get(url, headers=platform.auth("admin"))).status_code == 200
    # A service token is not a user: it sees the public view.
    assert (await platform.client.get(url, headers=platform.auth("billing"))).status_code == 404


async def test_only_instructors_and_admins_create(platform: Platform) -> None:
    student = await platform.client.post("/api/catalog/courses", json=course_body("Nope"),
                                         headers=platform.auth("student"))
    assert student.status_code == 403 and student.headers["content-type"] == PROBLEM
    anonymous = await platform.client.post("/api/catalog/courses", json=course_body("Nope"))
    assert anonymous.status_code == 401
    service = await platform.client.post("/api/catalog/courses", json=course_body("Nope"),
                                         headers=platform.auth("billing"))
    assert service.status_code == 403
    by_admin = await create_course(platform, "Admin Course", who="admin")
    assert by_admin["instructor_id"] == platform.user_id("admin")


async def test_publishing_checks_ownership_and_content(platform: Platform) -> None:
    course = await create_course(platform, "Owned By Ines")
    url = f"/api/catalog/courses/{course['id']}/publish"
    other = await platform.client.post(url, headers=platform.auth("other_instructor"))
    assert other.status_code == 403 and other.headers["content-type"] == PROBLEM
    student = await platform.client.post(url, headers=platform.auth("student"))
    assert student.status_code == 403
    assert await platform.outbox_events("catalog.course.published.v1", course_id=course["id"]) == []
    by_admin = await platform.client.post(url, headers=platform.auth("admin"))
    assert by_admin.status_code == 200 and by_admin.json()["status"] == "published"

    unknown = await platform.client.post(f"/api/catalog/courses/{uuid.uuid4()}/publish",
                                         headers=platform.auth("admin"))
    assert unknown.status_code == 404

    empty = await create_course(platform, "Nothing Yet", sections=[{"title": "Soon", "lessons": []}])
    refused = await platform.client.post(f"/api/catalog/courses/{empty['id']}/publish",
                                         headers=platform.auth("instructor"))
    assert refused.status_code == 409 and refused.json()["code"] == "course_has_no_lessons"


async def test_bad_input_is_a_clear_problem_json_4xx(platform: Platform) -> None:
    async def post(body: dict[str, Any]) -> int:
        response = await platform.client.post("/api/catalog/courses", json=body,
                                               headers=platform.auth("instructor"))
        assert response.headers["content-type"] == PROBLEM, response.text
        return response.status_code

    video_without_asset = course_body("Broken", sections=[
        {"title": "S", "lessons": [{"title": "V", "kind": "video"}]}])
    assert await post(video_without_asset) == 422
    text_with_asset = course_body("Broken", sections=[
        {"title": "S", "lessons": [{"title": "T", "kind": "text", "asset_id": ASSET}]}])
    assert await post(text_with_asset) == 422
    assert await post(course_body("Broken", instructor_id=str(uuid.uuid4()))) == 422  # no mass assignment
    assert await post(course_body("Broken", status="published")) == 422
    assert await post(course_body("Broken", currency="eur")) == 422
    assert await post(course_body("Broken", price_amount=-1)) == 422
    assert await post(course_body("Broken", price_amount=49.5)) == 422
    assert await post(course_body("Broken", price_amount="4900")) == 422
    assert await post(course_body("   ")) == 422
    assert await post(course_body("Broken", slug="Not A Slug")) == 422
    assert await post(course_body("Broken", sections=[{"title": "S", "lessons": [
        {"title": "L", "kind": "audio"}]}])) == 422

    await create_course(platform, "Taken", slug="taken-slug")
    assert await post(course_body("Another", slug="taken-slug")) == 409

    too_big = await platform.client.get("/api/catalog/courses", params={"page_size": 101})
    assert too_big.status_code == 422 and too_big.headers["content-type"] == PROBLEM
    assert (await platform.client.get("/api/catalog/courses", params={"page": 0})).status_code == 422
    assert (await platform.client.get("/api/catalog/courses", params={"page": "x"})).status_code == 422
    assert (await platform.client.get("/api/catalog/courses/not-a-uuid")).status_code == 422
    unknown = await platform.client.get(f"/api/catalog/courses/{uuid.uuid4()}")
    assert unknown.status_code == 404 and unknown.headers["content-type"] == PROBLEM


async def test_free_enrollment_is_idempotent(platform: Platform) -> None:
    url = f"/api/catalog/courses/{FREE_COURSE}/enroll"
    first = await platform.client.post(url, headers=platform.auth("student"))
    assert first.status_code == 201, first.text
    enrollment = first.json()
    assert enrollment["source"] == "free" and enrollment["status"] == "active"
    assert enrollment["version"] == 1 and enrollment["user_id"] == platform.user_id("student")
    second = await platform.client.post(url, headers={**platform.auth("student"), "Idempotency-Key": "k1"})
    assert second.status_code == 200 and second.json()["id"] == enrollment["id"]
    granted = await platform.outbox_events("catalog.enrollment.granted.v1",
                                           user_id=platform.user_id("student"), course_id=FREE_COURSE)
    assert len(granted) == 1 and granted[0]["source"] == "free" and granted[0]["order_id"] is None

    mine = (await platform.client.get("/api/catalog/me/enrollments", headers=platform.auth("student"))).json()
    assert FREE_COURSE in [item["course_id"] for item in mine["items"]]
    item = next(item for item in mine["items"] if item["course_id"] == FREE_COURSE)
    assert item["slug"] == "hls-basics-free" and item["source"] == "free" and item["enrolled_at"]
    assert mine["total"] == len(mine["items"])

    paid = await platform.client.post(f"/api/catalog/courses/{PAID_COURSE}/enroll",
                                      headers=platform.auth("student"))
    assert paid.status_code == 409 and paid.json()["code"] == "payment_required"
    assert "billing" in paid.json()["detail"]
    draft = await create_course(platform, "Free Draft", price_amount=0)
    hidden = await platform.client.post(f"/api/catalog/courses/{draft['id']}/enroll",
                                        headers=platform.auth("student"))
    assert hidden.status_code == 404
    assert (await platform.client.post(url)).status_code == 401
    assert (await platform.client.get("/api/catalog/me/enrollments")).status_code == 401


async def test_concurrent_free_enrollments_grant_once(platform: Platform) -> None:
    url = f"/api/catalog/courses/{FREE_COURSE}/enroll"
    responses = await asyncio.gather(*(platform.client.post(url, headers=platform.auth("admin"))
                                       for _ in range(5)))
    assert sorted(r.status_code for r in responses) == [200, 200, 200, 200, 201]
    assert len({r.json()["id"] for r in responses}) == 1
    granted = await platform.outbox_events("catalog.enrollment.granted.v1",
                                           user_id=platform.user_id("admin"), course_id=FREE_COURSE)
    assert len(granted) == 1


async def test_internal_endpoints_need_a_service_token(platform: Platform) -> None:
    course_url = f"/api/catalog/internal/courses/{PAID_COURSE}"
    lesson_url = "/api/catalog/internal/lessons/30000000-0000-4000-8000-000000000003"
    check_url = "/api/catalog/internal/enrollments/check"
    student_id = platform.user_id("student")

    assert (await platform.client.get(course_url)).status_code == 401
    for who in ("student", "admin"):
        refused = await platform.client.get(course_url, headers=platform.auth(who))
        assert refused.status_code == 403 and refused.headers["content-type"] == PROBLEM

    course = await platform.client.get(course_url, headers=platform.auth("billing"))
    assert course.status_code == 200
    assert course.json() == {"course_id": PAID_COURSE, "title": "Protected Video Streaming 101",
                             "status": "published", "price_amount": 4900, "currency": "EUR",
                             "is_free": False}
    free = (await platform.client.get(f"/api/catalog/internal/courses/{FREE_COURSE}",
                                      headers=platform.auth("playback"))).json()
    assert free["is_free"] is True
    missing = await platform.client.get(f"/api/catalog/internal/courses/{uuid.uuid4()}",
                                        headers=platform.auth("billing"))
    assert missing.status_code == 404

    assert (await platform.client.get(lesson_url, headers=platform.auth("billing"))).status_code == 403
    lesson = await platform.client.get(lesson_url, headers=platform.auth("playback"))
    assert lesson.json() == {"lesson_id": "30000000-0000-4000-8000-000000000003", "course_id": PAID_COURSE,
                             "kind": "video", "asset_id": ASSET, "is_preview": False, "course_status": "published"}

    params = {"user_id": student_id, "course_id": PAID_COURSE}
    assert (await platform.client.get(check_url, params=params, headers=platform.auth("student"))
            ).status_code == 403
    check = await platform.client.get(check_url, params=params, headers=platform.auth("billing"))
    assert check.status_code == 200 and check.json() == {"enrolled": False}
    bad = await platform.client.get(check_url, params={"user_id": "x", "course_id": PAID_COURSE},
                                    headers=platform.auth("billing"))
    assert bad.status_code == 422
