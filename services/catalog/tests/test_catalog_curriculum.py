"""Curriculum editing (sections, lessons, one-call reorder), derived totals, the internal lesson list,
and a detail page costing a fixed number of SQL queries whatever its lesson count."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event

from .conftest import ASSET, Platform, create_course, set_status


def outline(course: dict[str, Any]) -> list[tuple[str, list[tuple[int, str]]]]:
    return [(section["title"], [(lesson["position"], lesson["title"]) for lesson in section["lessons"]])
            for section in course["sections"]]


async def test_sections_and_lessons_are_edited_in_draft(platform: Platform) -> None:
    course = await create_course(platform, "Curriculum Course")
    base = f"/api/catalog/courses/{course['id']}"
    headers = platform.auth("instructor")

    added = await platform.client.post(f"{base}/sections", json={"title": "Outro"}, headers=headers)
    assert added.status_code == 201
    outro = added.json()["sections"][2]
    assert (outro["position"], outro["title"]) == (3, "Outro")
    with_lesson = await platform.client.post(f"{base}/sections/{outro['id']}/lessons", headers=headers, json={
        "title": "Wrap-up", "kind": "video", "asset_id": ASSET, "is_preview": False})
    assert with_lesson.status_code == 201
    assert with_lesson.json()["lesson_count"] == 4 and with_lesson.json()["duration_seconds"] == 18
    text_lesson = await platform.client.post(f"{base}/sections/{outro['id']}/lessons", headers=headers, json={
        "title": "Summary", "kind": "text", "body": "All of it."})
    assert outline(text_lesson.json())[2] == ("Outro", [(1, "Wrap-up"), (2, "Summary")])

    intro = course["sections"][0]
    renamed = await platform.client.patch(f"{base}/sections/{intro['id']}", json={"title": "Start"}, headers=headers)
    assert renamed.json()["sections"][0]["title"] == "Start"
    hello, notes = intro["lessons"]
    edited = await platform.client.patch(f"{base}/lessons/{notes['id']}", json={"body": "New text", "is_preview": True},
                                         headers=headers)
    notes_now = edited.json()["sections"][0]["lessons"][1]
    assert notes_now["body"] == "New text" and notes_now["is_preview"] is True
    bad_edits = [(notes["id"], {"asset_id": ASSET}), (hello["id"], {"body": "x"}), (hello["id"], {"asset_id": None}),
                 (hello["id"], {"title": None}), (hello["id"], {"kind": "text"})]
    for lesson_id, body in bad_edits:
        refused = await platform.client.patch(f"{base}/lessons/{lesson_id}", json=body, headers=headers)
        assert refused.status_code == 422, (body, refused.text)

    # Deleting renumbers what is left, in sections and in lessons.
    deleted = await platform.client.delete(f"{base}/lessons/{hello['id']}", headers=headers)
    assert outline(deleted.json())[0] == ("Start", [(1, "Notes")])
    core = course["sections"][1]
    without_core = await platform.client.delete(f"{base}/sections/{core['id']}", headers=headers)
    body = without_core.json()
    assert [(s["position"], s["title"]) for s in body["sections"]] == [(1, "Start"), (2, "Outro")]
    assert body["lesson_count"] == 3 and body["duration_seconds"] == 6

    missing = await platform.client.delete(f"{base}/lessons/{uuid.uuid4()}", headers=headers)
    assert missing.status_code == 404
    foreign = await create_course(platform, "Someone Else's Section")
    cross = await platform.client.post(f"{base}/sections/{foreign['sections'][0]['id']}/lessons", headers=headers,
                                       json={"title": "x", "kind": "text"})
    assert cross.status_code == 404  # a section of another course is not this course's


async def test_reorder_sections_and_lessons_in_one_call(platform: Platform) -> None:
    course = await create_course(platform, "Reorder Course")
    base = f"/api/catalog/courses/{course['id']}"
    headers = platform.auth("instructor")
    intro, core = course["sections"]
    hello, notes = (lesson["id"] for lesson in intro["lessons"])
    main = core["lessons"][0]["id"]

    # Core first; "Notes" moves from Intro into Core, ahead of "Main"; Intro keeps "Hello".
    order = {"sections": [{"id": core["id"], "lesson_ids": [notes, main]},
                          {"id": intro["id"], "lesson_ids": [hello]}]}
    reordered = await platform.client.put(f"{base}/curriculum/order", json=order, headers=headers)
    assert reordered.status_code == 200, reordered.text
    assert outline(reordered.json()) == [("Core", [(1, "Notes"), (2, "Main")]), ("Intro", [(1, "Hello")])]
    assert reordered.json()["sections"][0]["position"] == 1
    # Swapping back works too (the unique positions never collide mid-update).
    back = {"sections": [{"id": intro["id"], "lesson_ids": [hello, notes]},
                         {"id": core["id"], "lesson_ids": [main]}]}
    restored = await platform.client.put(f"{base}/curriculum/order", json=back, headers=headers)
    assert outline(restored.json()) == [("Intro", [(1, "Hello"), (2, "Notes")]), ("Core", [(1, "Main")])]

    incomplete = [
        {"sections": [{"id": intro["id"], "lesson_ids": [hello, notes, main]}]},  # a section left out
        {"sections": [{"id": intro["id"], "lesson_ids": [hello]}, {"id": core["id"], "lesson_ids": [main]}]},
        {"sections": [{"id": intro["id"], "lesson_ids": [hello, notes, notes]},
                      {"id": core["id"], "lesson_ids": [main]}]},
        {"sections": [{"id": intro["id"], "lesson_ids": [hello, notes, str(uuid.uuid4())]},
                      {"id": core["id"], "lesson_ids": [main]}]},
    ]
    for body in incomplete:
        refused = await platform.client.put(f"{base}/curriculum/order", json=body, headers=headers)
        assert refused.status_code == 422 and refused.json()["code"] == "incomplete_order", body
    unchanged = (await platform.client.get(base, headers=headers)).json()
    assert outline(unchanged) == [("Intro", [(1, "Hello"), (2, "Notes")]), ("Core", [(1, "Main")])]

    assert (await set_status(platform, course["id"], "published")).status_code == 200
    frozen = await platform.client.put(f"{base}/curriculum/order", json=back, headers=headers)
    assert frozen.status_code == 409 and frozen.json()["code"] == "course_not_editable"


async def test_internal_course_lessons_for_playback(platform: Platform) -> None:
    course = await create_course(platform, "Internal Lessons")
    url = f"/api/catalog/internal/courses/{course['id']}/lessons"
    answer = await platform.client.get(url, headers=platform.auth("playback"))
    assert answer.status_code == 200
    lessons = answer.json()["lessons"]
    assert answer.json()["course_id"] == course["id"]
    assert [lesson["lesson_id"] for lesson in lessons] == [
        lesson["id"] for section in course["sections"] for lesson in section["lessons"]]
    assert lessons[0] == {"lesson_id": lessons[0]["lesson_id"], "kind": "video", "asset_id": ASSET,
                          "is_preview": True, "duration_seconds": 6}
    assert lessons[1]["kind"] == "text" and lessons[1]["asset_id"] is None
    assert (await platform.client.get(url, headers=platform.auth("student"))).status_code == 403
    assert (await platform.client.get(url)).status_code == 401
    missing = await platform.client.get(f"/api/catalog/internal/courses/{uuid.uuid4()}/lessons",
                                        headers=platform.auth("playback"))
    assert missing.status_code == 404


@contextmanager
def counting_queries(platform: Platform) -> Iterator[list[str]]:
    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if "outbox" not in statement:  # the relay works in the background on the same engine
            statements.append(statement)

    engine = platform.catalog_app.state.runtime.db.engine.sync_engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", record)


async def test_detail_and_list_cost_a_fixed_number_of_queries(platform: Platform) -> None:
    """No N+1: a course with 2 lessons and one with 60 (in 6 sections) cost the same queries."""
    small = await create_course(platform, "Small Course", sections=[{"title": "S", "lessons": [
        {"title": "A", "kind": "text"}, {"title": "B", "kind": "text"}]}])
    big = await create_course(platform, "Big Course", sections=[
        {"title": f"S{s}", "lessons": [{"title": f"L{s}.{n}", "kind": "video" if n % 2 else "text",
                                        **({"asset_id": ASSET} if n % 2 else {})} for n in range(10)]}
        for s in range(6)])
    assert big["lesson_count"] == 60
    counts = {}
    for course in (small, big):
        with counting_queries(platform) as statements:  # an owner's view is never cached
            response = await platform.client.get(f"/api/catalog/courses/{course['id']}",
                                                 headers=platform.auth("instructor"))
        assert response.status_code == 200
        counts[course["title"]] = len(statements)
    assert counts["Small Course"] == counts["Big Course"] <= 5, counts

    for course in (small, big):
        assert (await set_status(platform, course["id"], "published")).status_code == 200
    page_counts = []
    for page_size in (1, 50):  # first asks of these pages: answered from the database
        with counting_queries(platform) as statements:
            listing = await platform.client.get("/api/catalog/courses", params={"page_size": page_size,
                                                                                 "sort": "title"})
        assert listing.status_code == 200 and len(listing.json()["items"]) == min(page_size, listing.json()["total"])
        page_counts.append(len(statements))
    assert page_counts[0] == page_counts[1] <= 3, page_counts
