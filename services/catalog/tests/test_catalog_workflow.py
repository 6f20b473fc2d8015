"""Publication workflow, ownership, metadata edits, and the asset facts that gate publication."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from catalog import service
from common.errors import Forbidden

from .conftest import ASSET, Platform, course_body, create_course, set_status

UPDATED = "catalog.course.updated.v1"
PUBLISHED = "catalog.course.published.v1"


async def test_allowed_transitions_and_their_events(platform: Platform) -> None:
    course = await create_course(platform, "Workflow Walk")
    course_id = course["id"]
    steps = [("in_review", 200), ("draft", 200), ("in_review", 200), ("published", 200), ("published", 200),
             ("archived", 200), ("draft", 200), ("published", 200), ("draft", 200)]
    for target, expected in steps:
        response = await set_status(platform, course_id, target)
        assert response.status_code == expected, (target, response.text)
        assert response.json()["status"] == target
    published = await platform.outbox_events(PUBLISHED, course_id=course_id)
    assert len(published) == 2  # the repeated publish emitted nothing
    statuses = [event["status"] for event in await platform.outbox_events(UPDATED, course_id=course_id)]
    assert statuses == ["in_review", "draft", "in_review", "archived", "draft", "draft"]


async def test_refused_transitions(platform: Platform) -> None:
    course = await create_course(platform, "Workflow Refusals")
    course_id = course["id"]
    refused = await set_status(platform, course_id, "archived")  # a draft is not archived
    assert refused.status_code == 409 and refused.json()["code"] == "invalid_transition"
    assert refused.json()["allowed"] == ["in_review", "published"]
    assert (await set_status(platform, course_id, "in_review")).status_code == 200
    assert (await set_status(platform, course_id, "archived")).json()["code"] == "invalid_transition"
    assert (await set_status(platform, course_id, "published")).status_code == 200
    assert (await set_status(platform, course_id, "in_review")).json()["code"] == "invalid_transition"
    assert (await set_status(platform, course_id, "archived")).status_code == 200
    again = await platform.client.post(f"/api/catalog/courses/{course_id}/publish", headers=platform.auth("instructor"))
    assert again.status_code == 409 and again.json()["code"] == "invalid_transition"
    bogus = await set_status(platform, course_id, "deleted")
    assert bogus.status_code == 422


async def test_review_mode_lets_only_admins_publish(platform: Platform) -> None:
    course = await create_course(platform, "Reviewed Course")
    course_id = uuid.UUID(course["id"])
    instructor = service.Actor(user_id=uuid.UUID(platform.user_id("instructor")))
    admin = service.Actor(user_id=uuid.UUID(platform.user_id("admin")), is_admin=True)
    db = platform.catalog_app.state.runtime.db
    async with db.transaction() as session:
        submitted = await service.change_status(db_session=session, actor=instructor, course_id=course_id,
                                                target="in_review", require_review=True)
        assert submitted.status == "in_review"
    with pytest.raises(Forbidden):
        async with db.transaction() as session:
            await service.change_status(db_session=session, actor=instructor, course_id=course_id,
                                        target="published", require_review=True)
    async with db.transaction() as session:
        published = await service.change_status(db_session=session, actor=admin, course_id=course_id,
                                                target="published", require_review=True)
        assert published.status == "published"


async def test_only_complete_courses_are_published(platform: Platform) -> None:
    pending_asset = str(uuid.uuid4())
    course = await create_course(platform, "Waiting For Video", sections=[{"title": "S", "lessons": [
        {"title": "Fresh upload", "kind": "video", "asset_id": pending_asset, "duration_seconds": 1}]}])
    refused = await set_status(platform, course["id"], "published")
    assert refused.status_code == 409 and refused.json()["code"] == "assets_not_ready"
    assert refused.json()["lesson_ids"] == [course["sections"][0]["lessons"][0]["id"]]
    assert (await set_status(platform, course["id"], "in_review")).json()["code"] == "assets_not_ready"

    await platform.deliver("playback.asset.ready", {"asset_id": pending_asset, "owner_id": platform.user_id(
        "instructor"), "duration_seconds": 95, "ready_at": "2026-11-20T10:00:00Z"})
    published = await set_status(platform, course["id"], "published")
    assert published.status_code == 200, published.text
    assert published.json()["sections"][0]["lessons"][0]["duration_seconds"] == 95  # the asset's, not the hint
    assert published.json()["duration_seconds"] == 95

    text_only = await create_course(platform, "Only Text", sections=[{"title": "S", "lessons": [
        {"title": "Read", "kind": "text", "body": "words"}]}])
    assert (await set_status(platform, text_only["id"], "published")).status_code == 200


async def test_asset_events_are_order_independent(platform: Platform) -> None:
    # Ready before any lesson uses it: a lesson created later learns it is ready and its duration.
    early = str(uuid.uuid4())
    ready = {"asset_id": early, "owner_id": platform.user_id("instructor"), "duration_seconds": 42,
             "ready_at": "2026-11-20T10:00:00Z"}
    await platform.deliver("playback.asset.ready", ready)
    await platform.deliver("playback.asset.ready", ready)  # re-emitted
    course = await create_course(platform, "Late Lesson", sections=[{"title": "S", "lessons": [
        {"title": "V", "kind": "video", "asset_id": early}]}])
    assert course["sections"][0]["lessons"][0]["duration_seconds"] == 42 and course["duration_seconds"] == 42
    assert (await set_status(platform, course["id"], "published")).status_code == 200

    # Deleted, then a late ready: the asset stays gone and the course cannot be published.
    gone = str(uuid.uuid4())
    await platform.deliver("playback.asset.deleted", {"asset_id": gone, "deleted_at": "2026-11-21T10:00:00Z"})
    await platform.deliver("playback.asset.ready", {**ready, "asset_id": gone})
    orphan = await create_course(platform, "Deleted Video", sections=[{"title": "S", "lessons": [
        {"title": "V", "kind": "video", "asset_id": gone}]}])
    assert orphan["sections"][0]["lessons"][0]["duration_seconds"] is None
    assert (await set_status(platform, orphan["id"], "published")).json()["code"] == "assets_not_ready"

    # Ready, then deleted: no longer publishable.
    later = str(uuid.uuid4())
    await platform.deliver("playback.asset.ready", {**ready, "asset_id": later})
    await platform.deliver("playback.asset.deleted", {"asset_id": later, "deleted_at": "2026-11-21T10:00:00Z"})
    dropped = await create_course(platform, "Dropped Video", sections=[{"title": "S", "lessons": [
        {"title": "V", "kind": "video", "asset_id": later}]}])
    assert (await set_status(platform, dropped["id"], "published")).json()["code"] == "assets_not_ready"


# Every write route of the app, with a body that would succeed for the course's own instructor.
# A write route missing here fails the test below, so a new one cannot skip the ownership check.
COURSE_WRITES: dict[tuple[str, str], Any] = {
    ("PATCH", "/courses/{course_id}"): {"title": "Hijacked", "price_amount": 1},
    ("POST", "/courses/{course_id}/publish"): None,
    ("POST", "/courses/{course_id}/status"): {"status": "in_review"},
    ("POST", "/courses/{course_id}/sections"): {"title": "Extra"},
    ("PATCH", "/courses/{course_id}/sections/{section_id}"): {"title": "Renamed"},
    ("DELETE", "/courses/{course_id}/sections/{section_id}"): None,
    ("POST", "/courses/{course_id}/sections/{section_id}/lessons"): {"title": "L", "kind": "text"},
    ("PATCH", "/courses/{course_id}/lessons/{lesson_id}"): {"title": "Renamed"},
    ("DELETE", "/courses/{course_id}/lessons/{lesson_id}"): None,
    ("PUT", "/courses/{course_id}/curriculum/order"): "reversed",
}
# Course-scoped routes that are not edits, and the write routes that are not course-scoped.
NOT_EDITS = {("POST", "/courses/{course_id}/enroll"): "a learner enrolling (only published free courses)"}
OTHER_WRITES = {("POST", "/courses"): 201, ("POST", "/categories"): 403,
                ("POST", "/admin/enrollments/{action}"): 403, ("POST", "/admin/certificates/backfill-names"): 403}
PRIVATE_READS = {("GET", "/courses/{course_id}/enrollments")}


def write_routes(p: Platform) -> set[tuple[str, str]]:
    """(method, path) of every write route the running catalog app serves (from its OpenAPI)."""
    paths = p.catalog_app.openapi()["paths"]
    return {(method.upper(), path) for path, operations in paths.items() for method in operations
            if method.upper() in ("POST", "PUT", "PATCH", "DELETE")}


async def test_instructors_edit_only_their_own_courses(platform: Platform) -> None:
    assert write_routes(platform) == set(COURSE_WRITES) | set(NOT_EDITS) | set(OTHER_WRITES)
    course = await create_course(platform, "Ines Owns This")
    course_id = course["id"]
    section_id = course["sections"][0]["id"]
    lesson_id = course["sections"][0]["lessons"][0]["id"]
    base = f"/api/catalog/courses/{course_id}"
    before = (await platform.client.get(base, headers=platform.auth("instructor"))).json()
    reversed_order = {"sections": [{"id": section["id"], "lesson_ids": [lesson["id"] for lesson in
                                                                         reversed(section["lessons"])]}
                                   for section in reversed(course["sections"])]}
    for (method, path), body in [*COURSE_WRITES.items(), *((route, None) for route in PRIVATE_READS)]:
        url = "/api/catalog" + path.format(course_id=course_id, section_id=section_id, lesson_id=lesson_id)
        body = reversed_order if body == "reversed" else body
        for who in ("other_instructor", "student"):
            response = await platform.client.request(method, url, json=body, headers=platform.auth(who))
            assert response.status_code in (403, 404), (who, method, path, response.text)
    assert (await platform.client.get(base, headers=platform.auth("other_instructor"))).status_code == 404
    after = (await platform.client.get(base, headers=platform.auth("instructor"))).json()
    assert after == before  # nothing at all changed
    assert await platform.outbox_events(UPDATED, course_id=course_id) == []
    for (method, path), expected in OTHER_WRITES.items():
        url = "/api/catalog" + path.format(action="grant")
        body = {"slug": "x-other", "name": "X"} if path == "/categories" else (
            course_body("Her Own", sections=[]) if path == "/courses" else
            {"user_id": str(uuid.uuid4()), "course_id": course_id, "reason": "mine now"})
        response = await platform.client.request(method, url, json=body, headers=platform.auth("other_instructor"))
        assert response.status_code == expected, (method, path, response.text)

    # The same bodies succeed for the owner (so the refusals above were about ownership); the
    # reorder names the original curriculum, so it goes first.
    for (method, path), body in sorted(COURSE_WRITES.items(), key=lambda item: item[1] != "reversed"):
        if path.endswith(("/publish", "/status")) or method == "DELETE":
            continue
        url = "/api/catalog" + path.format(course_id=course_id, section_id=section_id, lesson_id=lesson_id)
        body = reversed_order if body == "reversed" else body
        response = await platform.client.request(method, url, json=body, headers=platform.auth("instructor"))
        assert response.status_code in (200, 201), (method, path, response.text)
    other = platform.auth("other_instructor")

    # Admins manage everything; a co-instructor named by the creator may edit too.
    assert (await platform.client.patch(base, json={"subtitle": "by admin"}, headers=platform.auth("admin"))
            ).status_code == 200
    shared = await platform.client.patch(base, json={"instructor_ids": [platform.user_id("other_instructor")]},
                                         headers=platform.auth("instructor"))
    assert shared.json()["instructor_ids"] == [platform.user_id("instructor"), platform.user_id("other_instructor")]
    assert (await platform.client.patch(base, json={"title": "Co-taught"}, headers=other)).status_code == 200
    steal = await platform.client.patch(base, json={"instructor_ids": []}, headers=other)
    assert steal.status_code == 403  # only the creator or an admin changes who teaches
    mine = (await platform.client.get("/api/catalog/me/courses", params={"page_size": 100}, headers=other)).json()
    assert course_id in [item["id"] for item in mine["items"]]


async def test_metadata_edits_and_price_change_events(platform: Platform) -> None:
    category = await platform.client.post("/api/catalog/categories", json={"slug": "devops", "name": "DevOps"},
                                          headers=platform.auth("admin"))
    assert category.status_code == 201
    assert (await platform.client.post("/api/catalog/categories", json={"slug": "devops", "name": "Again"},
                                       headers=platform.auth("admin"))).status_code == 409
    assert (await platform.client.post("/api/catalog/categories", json={"slug": "x", "name": "X"},
                                       headers=platform.auth("instructor"))).status_code == 403
    course = await create_course(platform, "Metadata Course", level="advanced", language="de", category="devops",
                                 tags=["Kubernetes", "helm", "helm"], cover_image_url="https://cdn.example/c.png")
    assert (course["level"], course["language"], course["category"]["slug"]) == ("advanced", "de", "devops")
    assert course["tags"] == ["kubernetes", "helm"] and course["cover_image_url"] == "https://cdn.example/c.png"
    url = f"/api/catalog/courses/{course['id']}"
    assert (await set_status(platform, course["id"], "published")).status_code == 200

    edited = await platform.client.patch(url, json={"price_amount": 2900, "category": None, "tags": ["k8s"]},
                                         headers=platform.auth("instructor"))
    assert edited.status_code == 200, edited.text
    assert edited.json()["price_amount"] == 2900 and edited.json()["category"] is None
    [event] = await platform.outbox_events(UPDATED, course_id=course["id"])
    assert event["price_amount"] == 2900 and event["status"] == "published" and event["currency"] == "EUR"
    quiet = await platform.client.patch(url, json={"description": "longer text"}, headers=platform.auth("instructor"))
    assert quiet.status_code == 200
    assert len(await platform.outbox_events(UPDATED, course_id=course["id"])) == 1  # not an announced field

    async def patch(body: dict[str, object]) -> int:
        return (await platform.client.patch(url, json=body, headers=platform.auth("instructor"))).status_code

    assert await patch({"title": None}) == 422
    assert await patch({"price_amount": "10"}) == 422
    assert await patch({"category": "no-such-category"}) == 422
    assert await patch({"status": "draft"}) == 422  # status changes only through the workflow
    assert await patch({"slug": "protected-video-streaming-101"}) == 409
    assert await patch({"cover_image_url": "javascript:alert(1)"}) == 422
    # Curriculum of a published course is frozen; back to draft to edit it.
    section_id = course["sections"][0]["id"]
    frozen = await platform.client.post(f"{url}/sections/{section_id}/lessons", json={"title": "x", "kind": "text"},
                                        headers=platform.auth("instructor"))
    assert frozen.status_code == 409 and frozen.json()["code"] == "course_not_editable"
    assert (await set_status(platform, course["id"], "in_review")).status_code == 409
    assert (await set_status(platform, course["id"], "draft")).status_code == 200
    assert (await set_status(platform, course["id"], "in_review")).status_code == 200
    assert await patch({"title": "Edited in review"}) == 409  # under review nothing moves


async def test_instructors_use_only_their_own_videos(platform: Platform) -> None:
    other = platform.auth("other_instructor")
    body = {"title": "Borrowed Video", "price_amount": 500, "currency": "EUR", "sections": [
        {"title": "S", "lessons": [{"title": "V", "kind": "video", "asset_id": ASSET}]}]}
    stolen = await platform.client.post("/api/catalog/courses", json=body, headers=other)
    assert stolen.status_code == 403 and stolen.json()["code"] == "asset_not_owned"
    assert stolen.json()["asset_ids"] == [ASSET]
    # Naming the video's owner as co-instructor (no consent needed) does not open their uploads...
    named = await platform.client.post("/api/catalog/courses", headers=other, json={
        **body, "instructor_ids": [platform.user_id("instructor")]})
    assert named.status_code == 403 and named.json()["code"] == "asset_not_owned"
    # ... but the owner, as co-instructor, may put their own video into the course.
    co_taught = await create_course(platform, "Co-taught Video", who="other_instructor",
                                    instructor_ids=[platform.user_id("instructor")], sections=[{"title": "S"}])
    section = f"/api/catalog/courses/{co_taught['id']}/sections/{co_taught['sections'][0]['id']}/lessons"
    lesson = {"title": "V", "kind": "video", "asset_id": ASSET}
    assert (await platform.client.post(section, json=lesson, headers=other)).status_code == 403
    assert (await platform.client.post(section, json=lesson, headers=platform.auth("instructor"))).status_code == 201
    assert (await set_status(platform, co_taught["id"], "published", who="other_instructor")).status_code == 200

    # An asset playback had not announced yet is checked again when the course is published.
    late = str(uuid.uuid4())
    course = await create_course(platform, "Early Lesson", who="other_instructor", sections=[
        {"title": "S", "lessons": [{"title": "V", "kind": "video", "asset_id": late}]}])
    await platform.deliver("playback.asset.ready", {"asset_id": late, "owner_id": platform.user_id("instructor"),
                                                    "duration_seconds": 10, "ready_at": "2026-11-20T10:00:00Z"})
    refused = await set_status(platform, course["id"], "published", who="other_instructor")
    assert refused.status_code == 403 and refused.json()["code"] == "asset_not_owned"
    section_id = course["sections"][0]["id"]
    added = await platform.client.post(f"/api/catalog/courses/{course['id']}/sections/{section_id}/lessons",
                                       json={"title": "W", "kind": "video", "asset_id": late}, headers=other)
    assert added.status_code == 403
    # Admins may use any video.
    assert (await set_status(platform, course["id"], "published", who="admin")).status_code == 200
