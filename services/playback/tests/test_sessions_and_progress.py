"""Concurrent streams, heartbeats, stop, events that end sessions, watch progress and the watermark
audit, on a platform whose playback keeps its stream registry in the real Redis."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
import sqlalchemy as sa

from common.events.tables import outbox
from playback.models import AccessLog, Entitlement, PlaybackSession, WatchProgress, WatermarkIssued
from playback.resources import PlaybackResources

from .conftest import (
    COURSE_ID,
    PAID_LESSON,
    PREVIEW_LESSON,
    Platform,
    serve_with_redis,
    stub_catalog,
)
from .test_playback_api import _local, _token

DEMO_ADMIN = ("admin@triple.academy", "Admin-Demo-2026!")


@pytest.fixture(scope="module")
async def refuse() -> AsyncIterator[Platform]:
    async with serve_with_redis(stub_catalog(), stream_limit_policy="refuse") as served:
        yield served


@pytest.fixture(scope="module")
async def end_oldest() -> AsyncIterator[Platform]:
    async with serve_with_redis(stub_catalog(), stream_limit_policy="end_oldest") as served:
        yield served


async def _enrolled_user(platform: Platform) -> tuple[uuid.UUID, dict[str, str]]:
    user_id, headers = await platform.new_user()
    await platform.deliver("granted", user_id, 1)
    return user_id, headers


async def _heartbeat(platform: Platform, headers: dict[str, str], session_id: str,
                     position: float = 1.0) -> httpx.Response:
    return await platform.client.post(f"/api/playback/sessions/{session_id}/heartbeat", headers=headers,
                                      json={"position_seconds": position})


async def _session(platform: Platform, session_id: str) -> PlaybackSession:
    async with platform.runtime.db.session() as session:
        row = await session.get(PlaybackSession, uuid.UUID(session_id))
    assert row is not None
    return row


async def test_third_stream_is_refused_until_one_stops(refuse: Platform) -> None:
    user_id, headers = await _enrolled_user(refuse)
    first, second = await _token(refuse, headers), await _token(refuse, headers)
    third = await refuse.client.post("/api/playback/token", json={"lesson_id": str(PAID_LESSON)}, headers=headers)
    assert third.status_code == 409 and third.headers["content-type"] == "application/problem+json"
    assert third.json()["code"] == "too_many_streams"
    assert set(third.json()["active_sessions"]) == {first["session_id"], second["session_id"]}
    # The two running streams are untouched.
    assert (await _heartbeat(refuse, headers, first["session_id"])).status_code == 200
    assert (await refuse.client.get(_local(second["manifest_url"]))).status_code == 200

    stopped = await refuse.client.post(f"/api/playback/sessions/{first['session_id']}/stop", headers=headers)
    assert stopped.status_code == 204
    assert (await refuse.client.post(f"/api/playback/sessions/{first['session_id']}/stop",
                                     headers=headers)).status_code == 204  # idempotent
    await _token(refuse, headers)
    # A stopped session is over: heartbeats and manifest fetches are refused.
    beat = await _heartbeat(refuse, headers, first["session_id"])
    assert beat.status_code == 410 and beat.json()["code"] == "session_ended"
    assert beat.json()["end_reason"] == "stopped"
    assert (await refuse.client.get(_local(first["manifest_url"]))).status_code == 410

    async with refuse.runtime.db.session() as session:
        rows = list(await session.execute(sa.select(AccessLog.action, AccessLog.decision, AccessLog.reason)
                                          .where(AccessLog.user_id == user_id).order_by(AccessLog.at)))
    assert ("token", "refused", "too_many_streams") in rows
    assert ("heartbeat", "refused", "session_ended") in rows and ("manifest", "refused", "session_ended") in rows
    metrics = (await refuse.client.get("/api/playback/metrics")).text
    assert 'playback_access_decisions_total{action="token",decision="refused",reason="too_many_streams"}' in metrics


async def test_end_oldest_policy_ends_the_least_recent_stream(end_oldest: Platform) -> None:
    _, headers = await _enrolled_user(end_oldest)
    first, second = await _token(end_oldest, headers), await _token(end_oldest, headers)
    assert (await _heartbeat(end_oldest, headers, first["session_id"])).status_code == 200  # first is recent
    third = await _token(end_oldest, headers)
    assert (await _session(end_oldest, second["session_id"])).end_reason == "replaced"
    cut = await end_oldest.client.get(_local(second["manifest_url"]))
    assert cut.status_code == 410 and cut.json()["end_reason"] == "replaced"
    assert (await _heartbeat(end_oldest, headers, second["session_id"])).status_code == 410
    for live in (first, third):
        assert (await _heartbeat(end_oldest, headers, live["session_id"])).status_code == 200


async def test_heartbeats_are_owned_and_validated(refuse: Platform) -> None:
    _, headers = await _enrolled_user(refuse)
    _, stranger = await refuse.new_user()
    issued = await _token(refuse, headers, PREVIEW_LESSON)
    assert (await _heartbeat(refuse, stranger, issued["session_id"])).status_code == 404
    assert (await refuse.client.post(f"/api/playback/sessions/{issued['session_id']}/stop",
                                     headers=stranger)).status_code == 404
    assert (await _heartbeat(refuse, headers, str(uuid.uuid4()))).status_code == 404
    for body in ({"position_seconds": -1}, {"position_seconds": 1, "extra": 1}, {}):
        response = await refuse.client.post(f"/api/playback/sessions/{issued['session_id']}/heartbeat",
                                            headers=headers, json=body)
        assert response.status_code == 422
    assert (await refuse.client.post(f"/api/playback/sessions/{issued['session_id']}/heartbeat",
                                     json={"position_seconds": 1})).status_code == 401
    await refuse.client.post(f"/api/playback/sessions/{issued['session_id']}/stop", headers=headers)


async def _rewind_heartbeat(platform: Platform, session_id: str, seconds: float) -> None:
    """Pretend the previous heartbeat happened `seconds` ago (tests cannot wait for real time)."""
    async with platform.runtime.db.transaction() as session:
        await session.execute(sa.update(PlaybackSession).where(PlaybackSession.id == uuid.UUID(session_id))
                              .values(last_heartbeat_at=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=seconds)))


async def test_progress_resume_and_course_completion(refuse: Platform) -> None:
    user_id, headers = await _enrolled_user(refuse)
    issued = await _token(refuse, headers)
    assert issued["resume_position_seconds"] == 0 and issued["heartbeat_interval_seconds"] == 30
    sid = issued["session_id"]
    await _rewind_heartbeat(refuse, sid, 10)
    beat = await _heartbeat(refuse, headers, sid, 0.5)
    assert beat.status_code == 200, beat.text
    assert beat.json()["watched_seconds"] == pytest.approx(0.5, abs=0.01)
    assert beat.json()["watermark"] == issued["watermark"]
    # A seek to near the end half a second later earns 2x real time, not the 5.4 s skipped.
    await _rewind_heartbeat(refuse, sid, 0.5)
    beat = await _heartbeat(refuse, headers, sid, 5.9)
    assert beat.json()["position_seconds"] == 5.9
    watched = beat.json()["watched_seconds"]
    assert 1.5 <= watched < 5.8
    stopped = await refuse.client.post(f"/api/playback/sessions/{sid}/stop", headers=headers,
                                       json={"position_seconds": 5.0})
    assert stopped.status_code == 204

    progress = await refuse.client.get("/api/playback/progress", params={"course_id": str(COURSE_ID)},
                                       headers=headers)
    assert progress.status_code == 200, progress.text
    body = progress.json()
    lessons = {lesson["lesson_id"]: lesson for lesson in body["lessons"]}
    assert set(lessons) == {str(PREVIEW_LESSON), str(PAID_LESSON)}  # the text lesson has no video
    paid = lessons[str(PAID_LESSON)]
    assert paid["position_seconds"] == 5.0 and paid["duration_seconds"] == 6  # going back earns nothing
    assert paid["watched_seconds"] == pytest.approx(watched, abs=0.001)
    assert paid["completed"] is (watched >= 0.9 * 6)
    # Catalog does not know the preview's duration: the asset's own playlist does (3 x 2 s).
    assert lessons[str(PREVIEW_LESSON)]["duration_seconds"] == pytest.approx(6.0, abs=0.5)
    assert body["total_lessons"] == 2 and body["completed_lessons"] == int(paid["completed"])
    watched_total = sum(lesson["watched_seconds"] for lesson in body["lessons"])
    total = sum(lesson["duration_seconds"] for lesson in body["lessons"])
    assert body["watched_ratio"] == pytest.approx(watched_total / total, abs=0.001)
    assert (body["watched_seconds"], body["total_seconds"]) == (round(watched_total), round(total))
    assert body["completion_percent"] == pytest.approx(100 * body["watched_ratio"], abs=0.1)

    # The next token resumes where the player stopped; a refund keeps the progress.
    assert (await _token(refuse, headers))["resume_position_seconds"] == 5.0
    await refuse.deliver("revoked", user_id, 2)
    again = await refuse.client.get("/api/playback/progress", params={"course_id": str(COURSE_ID)},
                                    headers=headers)
    assert again.json()["watched_seconds"] == body["watched_seconds"]
    refused = await refuse.client.post("/api/playback/token", json={"lesson_id": str(PAID_LESSON)}, headers=headers)
    assert refused.status_code == 403
    await refuse.deliver("granted", user_id, 3)  # bought again: playback resumes where it stopped
    assert (await _token(refuse, headers))["resume_position_seconds"] == 5.0
    unknown = await refuse.client.get("/api/playback/progress", params={"course_id": str(uuid.uuid4())},
                                      headers=headers)
    assert unknown.status_code == 404


async def _service_headers(platform: Platform, client_id: str, secret: str) -> dict[str, str]:
    response = await platform.client.post("/api/auth/oauth/token", data={
        "grant_type": "client_credentials", "client_id": client_id, "client_secret": secret,
        "audience": "playback"})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


async def test_internal_progress_is_for_billing(refuse: Platform) -> None:
    user_id, headers = await _enrolled_user(refuse)
    sid = (await _token(refuse, headers))["session_id"]
    await _rewind_heartbeat(refuse, sid, 30)
    assert (await _heartbeat(refuse, headers, sid, 6.0)).status_code == 200
    params = {"user_id": str(user_id), "course_id": str(COURSE_ID)}
    billing = await _service_headers(refuse, "billing", "billing-test-secret-123456")
    response = await refuse.client.get("/api/playback/internal/progress", params=params, headers=billing)
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"user_id", "course_id", "watched_seconds", "total_seconds", "watched_ratio"}
    assert body["watched_seconds"] == 6 and isinstance(body["total_seconds"], int)
    assert body["watched_ratio"] == pytest.approx(6.0 / body["total_seconds"], abs=0.01)
    assert (await refuse.client.get("/api/playback/internal/progress", params=params,
                                    headers=headers)).status_code == 403
    assert (await refuse.client.get("/api/playback/internal/progress", params=params)).status_code == 401


async def test_revocation_ends_running_paid_sessions_and_frees_their_slots(refuse: Platform) -> None:
    user_id, headers = await _enrolled_user(refuse)
    paid = await _token(refuse, headers)
    preview = await _token(refuse, headers, PREVIEW_LESSON)
    await refuse.deliver("revoked", user_id, 2)
    beat = await _heartbeat(refuse, headers, paid["session_id"])
    assert beat.status_code == 410 and beat.json()["end_reason"] == "enrollment_revoked"
    assert (await _heartbeat(refuse, headers, preview["session_id"])).status_code == 200  # previews go on
    # Re-purchase: the ended session's slot is reclaimed even though Redis never heard of the revoke.
    await refuse.deliver("granted", user_id, 3)
    await _token(refuse, headers)


async def test_a_slot_held_by_a_revoked_session_is_reclaimed_before_a_live_one_is_replaced(
        end_oldest: Platform) -> None:
    user_id, headers = await _enrolled_user(end_oldest)
    preview = await _token(end_oldest, headers, PREVIEW_LESSON)  # the oldest stream, and live
    paid = await _token(end_oldest, headers)
    await end_oldest.deliver("revoked", user_id, 2)  # ends `paid` in the database only
    await end_oldest.deliver("granted", user_id, 3)
    again = await _token(end_oldest, headers)
    # The revoked session's slot was taken back; the live preview was not pushed out.
    assert (await _session(end_oldest, paid["session_id"])).end_reason == "enrollment_revoked"
    assert (await _session(end_oldest, preview["session_id"])).ended_at is None
    for live in (preview, again):
        assert (await _heartbeat(end_oldest, headers, live["session_id"])).status_code == 200


async def test_sign_out_everywhere_and_disabling_end_streams(refuse: Platform) -> None:
    user_id, headers = await _enrolled_user(refuse)
    before = await _token(refuse, headers)
    await refuse.deliver_user_event("sessions_revoked", user_id, revoked_at=dt.datetime.now(dt.UTC).isoformat())
    beat = await _heartbeat(refuse, headers, before["session_id"])
    assert beat.status_code == 410 and beat.json()["end_reason"] == "signed_out"
    after = await _token(refuse, headers)  # a stream started after signing out again is not touched
    assert (await _heartbeat(refuse, headers, after["session_id"])).status_code == 200

    await refuse.deliver_user_event("disabled", user_id, disabled_at=dt.datetime.now(dt.UTC).isoformat())
    beat = await _heartbeat(refuse, headers, after["session_id"])
    assert beat.status_code == 410 and beat.json()["end_reason"] == "user_disabled"


async def test_watermark_lookup_and_erasure(refuse: Platform) -> None:
    user_id, headers = await _enrolled_user(refuse)
    issued = await _token(refuse, headers)
    mark = issued["watermark"]
    assert (await _heartbeat(refuse, headers, issued["session_id"], 1.0)).status_code == 200
    admin = await refuse.login(*DEMO_ADMIN)

    found = await refuse.client.get(f"/api/playback/admin/watermarks/{mark}", headers=admin)
    assert found.status_code == 200, found.text
    [record] = found.json()["sessions"]
    assert record["session_id"] == issued["session_id"] and record["user_id"] == str(user_id)
    assert record["lesson_id"] == str(PAID_LESSON) and record["user_erased_at"] is None
    assert (await refuse.client.get(f"/api/playback/admin/watermarks/{mark.lower()}",
                                    headers=admin)).json()["sessions"] == [record]
    assert (await refuse.client.get(f"/api/playback/admin/watermarks/{mark}", headers=headers)).status_code == 403
    assert (await refuse.client.get("/api/playback/admin/watermarks/not-a-mark", headers=admin)).status_code == 422
    assert (await refuse.client.get("/api/playback/admin/watermarks/AAAAAAAAAAAAAAAA",
                                    headers=admin)).json()["sessions"] == []

    await refuse.deliver_user_event("deleted", user_id, deleted_at=dt.datetime.now(dt.UTC).isoformat())
    async with refuse.runtime.db.session() as session:
        for model in (PlaybackSession, WatchProgress, Entitlement):
            assert await session.scalar(sa.select(sa.func.count()).select_from(model)
                                        .where(model.user_id == user_id)) == 0
        assert await session.scalar(sa.select(sa.func.count()).select_from(AccessLog)
                                    .where(AccessLog.user_id == user_id)) == 0
        assert (await session.scalar(sa.select(sa.func.count()).select_from(AccessLog)
                                     .where(AccessLog.session_id == uuid.UUID(issued["session_id"]))) or 0) >= 1
        erased = await session.get(WatermarkIssued, uuid.UUID(issued["session_id"]))
    assert erased is not None and erased.user_id is None and erased.user_erased_at is not None
    [anonymised] = (await refuse.client.get(f"/api/playback/admin/watermarks/{mark}",
                                            headers=admin)).json()["sessions"]
    assert anonymised["user_id"] is None and anonymised["asset_id"] == record["asset_id"]
    assert anonymised["issued_at"] == record["issued_at"]


async def test_a_stream_that_fell_silent_cannot_resume(refuse: Platform) -> None:
    user_id, headers = await _enrolled_user(refuse)
    issued = await _token(refuse, headers)
    streams = refuse.runtime.resources_as(PlaybackResources).streams
    assert await streams.active(str(user_id), timeout_seconds=120) == [issued["session_id"]]
    # What the idle timeout does in Redis (prune the member), without waiting two minutes.
    await streams.release(str(user_id), issued["session_id"])
    beat = await _heartbeat(refuse, headers, issued["session_id"])
    assert beat.status_code == 410 and beat.json()["end_reason"] == "timed_out"
    assert (await _session(refuse, issued["session_id"])).end_reason == "timed_out"
    cut = await refuse.client.get(_local(issued["manifest_url"]))
    assert cut.status_code == 410 and cut.json()["end_reason"] == "timed_out"


async def _completions(platform: Platform, user_id: uuid.UUID) -> list[dict[str, str]]:
    async with platform.runtime.db.session() as session:
        rows = (await session.execute(sa.select(outbox.c.envelope).where(
            outbox.c.routing_key == "playback.lesson.completed.v1"))).scalars().all()
    return [row["payload"] for row in rows if row["payload"]["user_id"] == str(user_id)]


async def test_crossing_the_completion_share_publishes_one_lesson_completed_event(refuse: Platform) -> None:
    """Catalog issues certificates from these; only the heartbeat that crosses 90 % publishes."""
    user_id, headers = await _enrolled_user(refuse)
    sid = (await _token(refuse, headers))["session_id"]
    assert (await _heartbeat(refuse, headers, sid, 0.0)).status_code == 200
    await _rewind_heartbeat(refuse, sid, 2)
    assert (await _heartbeat(refuse, headers, sid, 4.0)).status_code == 200
    assert await _completions(refuse, user_id) == []  # 4 of 6 s is not 90 %
    for position in (5.5, 6.0):
        await _rewind_heartbeat(refuse, sid, 2)
        assert (await _heartbeat(refuse, headers, sid, position)).status_code == 200
    [event] = await _completions(refuse, user_id)
    assert (event["course_id"], event["lesson_id"]) == (str(COURSE_ID), str(PAID_LESSON))
