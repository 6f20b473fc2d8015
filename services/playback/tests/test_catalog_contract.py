"""Playback against catalog's internal contract when catalog lags behind events, serves a draft course,
or is down (a stand-in catalog makes those states easy to produce)."""

from __future__ import annotations

import uuid

import pytest
import sqlalchemy as sa

from playback.models import AccessLog
from playback.resources import PlaybackResources

from .conftest import COURSE_ID, DRAFT_LESSON, PAID_LESSON, Platform, watch_db


async def _post(platform: Platform, headers: dict[str, str], lesson_id: uuid.UUID) -> tuple[int, str | None]:
    response = await platform.client.post("/api/playback/token", json={"lesson_id": str(lesson_id)},
                                          headers=headers)
    return response.status_code, response.json().get("code")


async def test_catalog_answers_before_the_enrollment_event_arrives(stub_platform: Platform) -> None:
    assert stub_platform.fake_catalog is not None
    user_id, headers = await stub_platform.new_user()
    stub_platform.fake_catalog.enrolled.add((user_id, COURSE_ID))
    assert (await _post(stub_platform, headers, PAID_LESSON))[0] == 200
    async with stub_platform.runtime.db.session() as session:
        reasons = list(await session.scalars(sa.select(AccessLog.reason).where(AccessLog.user_id == user_id)))
    assert reasons == ["enrolled_per_catalog"]


async def test_repurchase_plays_before_its_grant_event(stub_platform: Platform) -> None:
    """The read model holds a revocation, catalog (the source of truth) already has the new grant."""
    assert stub_platform.fake_catalog is not None
    user_id, headers = await stub_platform.new_user()
    await stub_platform.deliver("granted", user_id, 1)
    await stub_platform.deliver("revoked", user_id, 2)
    assert await _post(stub_platform, headers, PAID_LESSON) == (403, "not_enrolled")
    stub_platform.fake_catalog.enrolled.add((user_id, COURSE_ID))  # re-purchased, event still in flight
    assert (await _post(stub_platform, headers, PAID_LESSON))[0] == 200


async def test_revocation_is_honoured_at_once_despite_a_cached_yes(stub_platform: Platform) -> None:
    assert stub_platform.fake_catalog is not None
    user_id, headers = await stub_platform.new_user()
    stub_platform.fake_catalog.enrolled.add((user_id, COURSE_ID))
    assert (await _post(stub_platform, headers, PAID_LESSON))[0] == 200  # catalog's "yes" is now cached
    checks = stub_platform.fake_catalog.calls.count("/api/catalog/internal/enrollments/check")
    assert (await _post(stub_platform, headers, PAID_LESSON))[0] == 200
    assert stub_platform.fake_catalog.calls.count("/api/catalog/internal/enrollments/check") == checks

    stub_platform.fake_catalog.enrolled.discard((user_id, COURSE_ID))
    await stub_platform.deliver("revoked", user_id, 2)  # the cached yes (read-model version 0) is dead
    assert await _post(stub_platform, headers, PAID_LESSON) == (403, "not_enrolled")
    # "No" is never cached: the moment catalog knows of a new grant, the learner plays.
    stub_platform.fake_catalog.enrolled.add((user_id, COURSE_ID))
    assert (await _post(stub_platform, headers, PAID_LESSON))[0] == 200


async def test_revocation_stands_when_catalog_is_down(stub_platform: Platform) -> None:
    assert stub_platform.fake_catalog is not None
    user_id, headers = await stub_platform.new_user()
    await stub_platform.deliver("granted", user_id, 1)
    assert (await _post(stub_platform, headers, PAID_LESSON))[0] == 200  # the lesson is cached now
    await stub_platform.deliver("revoked", user_id, 2)
    stub_platform.fake_catalog.down = True
    try:
        assert await _post(stub_platform, headers, PAID_LESSON) == (403, "not_enrolled")
    finally:
        stub_platform.fake_catalog.down = False


async def test_draft_course_and_catalog_outage(stub_platform: Platform) -> None:
    assert stub_platform.fake_catalog is not None
    _, headers = await stub_platform.new_user()
    assert await _post(stub_platform, headers, DRAFT_LESSON) == (404, "course_not_published")
    stub_platform.fake_catalog.down = True
    lesson_id = uuid.uuid4()
    try:
        status, _ = await _post(stub_platform, headers, lesson_id)
    finally:
        stub_platform.fake_catalog.down = False
    assert status == 503
    # Bounded retries: the first attempt plus `http_retries`, then a clear 503.
    attempts = [path for path in stub_platform.fake_catalog.calls if path.endswith(f"/lessons/{lesson_id}")]
    assert len(attempts) == 1 + stub_platform.settings.http_retries


async def test_catalog_is_never_called_with_a_playback_transaction_open(stub_platform: Platform,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """Embedded, every SQLite transaction holds playback's write lock while catalog's relay may be
    delivering to playback under catalog's lock: a call to catalog from inside one is a lock cycle.
    Token, manifest (both playlists), progress and an unknown lesson all call catalog; none may
    hold a playback session open meanwhile."""
    catalog = stub_platform.fake_catalog
    assert catalog is not None
    watch_db(stub_platform.runtime.db, monkeypatch)
    catalog.db_open_at_call.clear()
    user_id, headers = await stub_platform.new_user()
    catalog.enrolled.add((user_id, COURSE_ID))  # no grant event: every decision asks catalog
    await stub_platform.runtime.resources_as(PlaybackResources).lessons.delete(
        f"playback:catalog:/internal/lessons/{PAID_LESSON}")
    await stub_platform.runtime.cache.delete(f"playback:catalog:/internal/courses/{COURSE_ID}/lessons")
    token = await stub_platform.client.post("/api/playback/token", json={"lesson_id": str(PAID_LESSON)},
                                            headers=headers)
    assert token.status_code == 200, token.text
    manifest = token.json()["manifest_url"].removeprefix("http://testserver")
    assert (await stub_platform.client.get(manifest)).status_code == 200
    variant = manifest.replace("master.m3u8", "360p/index.m3u8")
    assert (await stub_platform.client.get(variant)).status_code == 200
    progress = await stub_platform.client.get("/api/playback/progress", params={"course_id": str(COURSE_ID)},
                                              headers=headers)
    assert progress.status_code == 200, progress.text
    assert (await _post(stub_platform, headers, uuid.uuid4()))[0] == 404

    called = {path.removeprefix("/api/catalog") for path, _ in catalog.db_open_at_call}
    assert {"/internal/enrollments/check", f"/internal/lessons/{PAID_LESSON}",
            f"/internal/courses/{COURSE_ID}/lessons"} <= called, called
    inside = [(path, held) for path, held in catalog.db_open_at_call if held]
    assert not inside, f"catalog called with a playback session open: {inside}"


async def test_an_answer_outside_the_contract_is_catalogs_failure_not_ours(stub_platform: Platform) -> None:
    """A lesson without its course, or a course's lesson list that is not a list, is a 503 naming
    catalog (contracts.peers), never a 500; nothing of it is cached."""
    catalog = stub_platform.fake_catalog
    assert catalog is not None
    _, headers = await stub_platform.new_user()
    lesson_id, course_id = uuid.uuid4(), uuid.uuid4()
    catalog.lessons[lesson_id] = {"lesson_id": str(lesson_id), "kind": "video", "is_preview": True}
    catalog.course_lessons[course_id] = {"lesson_id": "not a list"}  # type: ignore[assignment]
    response = await stub_platform.client.post("/api/playback/token", json={"lesson_id": str(lesson_id)},
                                               headers=headers)
    assert response.status_code == 503 and response.json()["code"] == "catalog_unavailable"
    progress = await stub_platform.client.get("/api/playback/progress", params={"course_id": str(course_id)},
                                              headers=headers)
    assert progress.status_code == 503 and progress.json()["code"] == "catalog_unavailable"
    catalog.lessons[lesson_id]["course_id"] = str(COURSE_ID)
    catalog.lessons[lesson_id]["course_status"] = "published"
    catalog.lessons[lesson_id]["asset_id"] = str(uuid.uuid4())
    retried = await stub_platform.client.post("/api/playback/token", json={"lesson_id": str(lesson_id)},
                                              headers=headers)
    assert retried.status_code != 503, retried.text
