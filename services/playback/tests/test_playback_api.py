"""Playback on the in-process platform: tokens, entitlements, manifests and signed segments."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
import uuid
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import jwt
import sqlalchemy as sa

from common.events.consumer import InboxConsumer
from common.events.envelope import Envelope
from playback import events, signing
from playback.models import AccessLog, Entitlement
from playback.resources import PlaybackResources

from .conftest import (
    ASSET_ID,
    COURSE_ID,
    PAID_LESSON,
    PREVIEW_LESSON,
    STUDENT_EMAIL,
    STUDENT_PASSWORD,
    TEXT_LESSON,
    Platform,
)

HLS = "application/vnd.apple.mpegurl"


def _local(url: str) -> str:
    """The path + query of an absolute testserver URL (the test client has that base URL)."""
    parts = urlsplit(url)
    assert parts.scheme == "http" and parts.netloc == "testserver", url
    return f"{parts.path}?{parts.query}" if parts.query else parts.path


def _uris(playlist: str) -> list[str]:
    return [line for line in playlist.splitlines() if line and not line.startswith("#")]


async def _token(platform: Platform, headers: dict[str, str], lesson_id: uuid.UUID = PAID_LESSON) -> dict:
    response = await platform.client.post("/api/playback/token", json={"lesson_id": str(lesson_id)},
                                          headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


async def _log_rows(platform: Platform, user_id: uuid.UUID) -> list[AccessLog]:
    # Manifest grants are written in batches.
    await platform.runtime.resources_as(PlaybackResources).access_records.flush()
    async with platform.runtime.db.session() as session:
        return list(await session.scalars(
            sa.select(AccessLog).where(AccessLog.user_id == user_id).order_by(AccessLog.at)))


async def _segment_urls(platform: Platform, headers: dict[str, str]) -> list[str]:
    user_id = uuid.UUID(jwt.decode(headers["Authorization"].split()[1],
                                   options={"verify_signature": False})["sub"])
    await platform.deliver("granted", user_id, 1)
    issued = await _token(platform, headers)
    master = await platform.client.get(_local(issued["manifest_url"]))
    variant = await platform.client.get(_local(_uris(master.text)[0]))
    assert variant.status_code == 200, variant.text
    return _uris(variant.text)


async def test_unauthenticated_is_401(platform: Platform) -> None:
    response = await platform.client.post("/api/playback/token", json={"lesson_id": str(PREVIEW_LESSON)})
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    bad = await platform.client.post("/api/playback/token", json={"lesson_id": str(PREVIEW_LESSON)},
                                     headers={"Authorization": "Bearer not.a.token"})
    assert bad.status_code == 401


async def test_body_allows_only_documented_fields(platform: Platform) -> None:
    _, headers = await platform.new_user()
    extra = await platform.client.post("/api/playback/token", headers=headers,
                                       json={"lesson_id": str(PREVIEW_LESSON), "asset_id": str(ASSET_ID)})
    assert extra.status_code == 422
    bad_id = await platform.client.post("/api/playback/token", headers=headers, json={"lesson_id": "x"})
    assert bad_id.status_code == 422


async def test_preview_lesson_plays_for_any_logged_in_user(platform: Platform) -> None:
    user_id, headers = await platform.new_user()
    issued = await _token(platform, headers, PREVIEW_LESSON)
    assert issued["expires_in"] == 90
    session_id = issued["session_id"]
    assert issued["manifest_url"] == (f"http://testserver/api/playback/manifests/{session_id}/master.m3u8"
                                      f"?token={issued['token']}")

    header = jwt.get_unverified_header(issued["token"])
    assert header == {"alg": "EdDSA", "kid": platform.key.kid, "typ": "JWT"}
    claims = jwt.decode(issued["token"], platform.key.public_key, algorithms=["EdDSA"], audience="playback",
                        issuer="triple-academy-playback")
    assert claims["sub"] == str(user_id) and claims["sid"] == session_id
    assert claims["aid"] == str(ASSET_ID) and claims["lid"] == str(PREVIEW_LESSON)
    assert claims["cid"] == str(COURSE_ID) and claims["exp"] - claims["iat"] == 90 and claims["jti"]
    assert claims["wm"] == issued["watermark"] and "@" not in issued["token"]

    master = await platform.client.get(_local(issued["manifest_url"]))
    assert master.status_code == 200
    rows = await _log_rows(platform, user_id)
    assert [(r.decision, r.reason) for r in rows] == [("granted", "preview"), ("granted", "manifest:preview")]


async def test_demo_student_without_entitlement_is_refused_and_logged(platform: Platform) -> None:
    headers = await platform.login(STUDENT_EMAIL, STUDENT_PASSWORD)
    refused = await platform.client.post("/api/playback/token", json={"lesson_id": str(PAID_LESSON)},
                                         headers=headers)
    assert refused.status_code == 403
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["code"] == "not_enrolled"
    student_id = uuid.UUID("00000000-0000-4000-8000-000000000003")
    rows = await _log_rows(platform, student_id)
    assert rows and rows[-1].decision == "refused" and rows[-1].reason == "not_enrolled"
    assert rows[-1].lesson_id == PAID_LESSON and rows[-1].asset_id == ASSET_ID and rows[-1].session_id is None


async def test_granted_enrollment_plays_end_to_end(platform: Platform, tmp_path: Path) -> None:
    user_id, headers = await platform.new_user()
    assert (await platform.client.post("/api/playback/token", json={"lesson_id": str(PAID_LESSON)},
                                       headers=headers)).status_code == 403
    envelope = await platform.deliver("granted", user_id, 1)
    # Redelivery is normal: the inbox drops the duplicate.
    await InboxConsumer(platform.runtime.db, "playback", events.HANDLERS)(envelope)

    issued = await _token(platform, headers)
    master = await platform.client.get(_local(issued["manifest_url"]))
    assert master.status_code == 200, master.text
    assert master.headers["content-type"] == HLS
    assert master.headers["cache-control"] == "private, no-store"
    assert "#EXT-X-STREAM-INF:BANDWIDTH=" in master.text and "RESOLUTION=320x180" in master.text
    [variant_url] = _uris(master.text)
    assert variant_url == (f"http://testserver/api/playback/manifests/{issued['session_id']}/360p/index.m3u8"
                           f"?token={issued['token']}")

    variant = await platform.client.get(_local(variant_url))
    assert variant.status_code == 200 and variant.headers["content-type"] == HLS
    assert variant.headers["cache-control"] == "private, no-store"
    segments = _uris(variant.text)
    assert len(segments) == 3
    queries = {urlsplit(url).query for url in segments}
    assert len(queries) == 1  # one signature for the whole asset prefix
    expires = int(parse_qs(next(iter(queries)))["expires"][0])
    assert abs(expires - (time.time() + 6 + 300)) < 10

    asset_dir = platform.settings.media_root / str(ASSET_ID) / "360p"
    for index, url in enumerate(segments):
        assert urlsplit(url).path == f"/media/{ASSET_ID}/360p/segment_{index:03d}.ts"
        segment = await platform.client.get(_local(url))
        assert segment.status_code == 200
        assert segment.headers["content-type"] == "video/mp2t"
        assert segment.content == (asset_dir / f"segment_{index:03d}.ts").read_bytes()

    async with platform.runtime.db.session() as session:
        row = await session.get(Entitlement, (user_id, COURSE_ID))
    assert row is not None and row.active and row.version == 1
    rows = await _log_rows(platform, user_id)
    assert [r.reason for r in rows] == ["not_enrolled", "enrolled", "manifest:enrolled", "manifest:enrolled"]


async def test_signed_links_cannot_be_edited_or_reused_late(platform: Platform) -> None:
    _, headers = await platform.new_user()
    url = (await _segment_urls(platform, headers))[0]
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    md5, expires = query["md5"][0], int(query["expires"][0])
    path = parts.path

    async def status(target: str) -> int:
        return (await platform.client.get(target)).status_code

    assert await status(f"{path}?md5={md5}&expires={expires}") == 200
    edited_md5 = ("A" if md5[0] != "A" else "B") + md5[1:]
    assert await status(f"{path}?md5={edited_md5}&expires={expires}") == 403
    assert await status(f"{path}?md5={md5}&expires={expires + 3600}") == 403
    assert await status(f"{path}?expires={expires}") == 403
    assert await status(f"{path}?md5={md5}") == 403
    assert await status(path) == 403
    other_asset = str(uuid.uuid4())
    assert await status(f"{path.replace(str(ASSET_ID), other_asset)}?md5={md5}&expires={expires}") == 403

    secret = platform.settings.secure_link_secret.get_secret_value()
    past = int(time.time()) - 5
    late = signing.media_signature(secret, str(ASSET_ID), past)
    expired = await platform.client.get(f"{path}?md5={late}&expires={past}")
    assert expired.status_code == 410

    base = f"/media/{ASSET_ID}"
    assert await status(f"{base}/360p/segment_999.ts?md5={md5}&expires={expires}") == 404
    assert await status(f"{base}/360p/..%2F..%2F..%2Fetc%2Fpasswd?md5={md5}&expires={expires}") == 404
    assert await status(f"{base}/360p/segment_000.py?md5={md5}&expires={expires}") == 404
    index = await platform.client.get(f"{base}/360p/index.m3u8?md5={md5}&expires={expires}")
    assert index.status_code == 200 and index.headers["content-type"] == HLS


async def test_playback_token_is_checked_on_every_manifest(platform: Platform) -> None:
    user_id, headers = await platform.new_user()
    await platform.deliver("granted", user_id, 1)
    first = await _token(platform, headers)
    second = await _token(platform, headers)
    master = f"/api/playback/manifests/{first['session_id']}/master.m3u8"
    variant = f"/api/playback/manifests/{first['session_id']}/360p/index.m3u8"

    assert (await platform.client.get(f"{master}?token={first['token']}")).status_code == 200
    missing = await platform.client.get(master)
    assert missing.status_code == 401 and missing.headers["content-type"] == "application/problem+json"

    head, body, sig = first["token"].split(".")
    tampered = f"{head}.{body}.{'A' if sig[0] != 'A' else 'B'}{sig[1:]}"
    assert (await platform.client.get(f"{master}?token={tampered}")).status_code == 401
    assert (await platform.client.get(f"{variant}?token={tampered}")).status_code == 401

    claims = jwt.decode(first["token"], options={"verify_signature": False})
    expired = jwt.encode({**claims, "iat": claims["iat"] - 600, "exp": claims["iat"] - 500},
                         platform.key.private_key, algorithm="EdDSA", headers={"kid": platform.key.kid})
    response = await platform.client.get(f"{master}?token={expired}")
    assert response.status_code == 401 and response.json()["code"] == "token_expired"

    foreign_key = signing.token_key_from_pem(signing.generate_pem())
    forged = jwt.encode(claims, foreign_key.private_key, algorithm="EdDSA", headers={"kid": platform.key.kid})
    assert (await platform.client.get(f"{master}?token={forged}")).status_code == 401
    wrong_audience = jwt.encode({**claims, "aud": "triple-api"}, platform.key.private_key, algorithm="EdDSA",
                                headers={"kid": platform.key.kid})
    assert (await platform.client.get(f"{master}?token={wrong_audience}")).status_code == 401
    access_token = headers["Authorization"].split()[1]
    assert (await platform.client.get(f"{master}?token={access_token}")).status_code == 401

    foreign = await platform.client.get(f"{master}?token={second['token']}")
    assert foreign.status_code == 403 and foreign.json()["code"] == "session_mismatch"
    # Another user's valid token, or a correctly signed one naming this session for another user or
    # another asset, does not open it.
    other_id, other_headers = await platform.new_user()
    await platform.deliver("granted", other_id, 1)
    theirs = await _token(platform, other_headers)
    hijack = await platform.client.get(f"{master}?token={theirs['token']}")
    assert hijack.status_code == 403 and hijack.json()["code"] == "session_mismatch"
    for change in ({"sub": str(other_id)}, {"aid": str(uuid.uuid4())}):
        altered = jwt.encode({**claims, **change}, platform.key.private_key, algorithm="EdDSA",
                             headers={"kid": platform.key.kid})
        for url in (master, variant):
            refused = await platform.client.get(f"{url}?token={altered}")
            assert refused.status_code == 403 and refused.json()["code"] == "unknown_session", change
    assert (await platform.client.get(f"{variant}?token={second['token']}")).status_code == 403
    bad_rendition = f"/api/playback/manifests/{first['session_id']}/..%2F/index.m3u8?token={first['token']}"
    assert (await platform.client.get(bad_rendition)).status_code in (404, 422)
    no_such = f"/api/playback/manifests/{first['session_id']}/1080p/index.m3u8?token={first['token']}"
    assert (await platform.client.get(no_such)).status_code == 404
    rows = await _log_rows(platform, user_id)
    assert ("refused", "session_mismatch") in {(r.decision, r.reason) for r in rows}


async def test_refund_cuts_playback_at_the_next_manifest(platform: Platform) -> None:
    user_id, headers = await platform.new_user()
    await platform.deliver("granted", user_id, 1)
    issued = await _token(platform, headers)
    await platform.deliver("revoked", user_id, 2)

    cut = await platform.client.get(_local(issued["manifest_url"]))
    assert cut.status_code == 403 and cut.json()["code"] == "not_enrolled"
    variant = await platform.client.get(_local(issued["manifest_url"]).replace("master.m3u8", "360p/index.m3u8"))
    assert variant.status_code == 403 and variant.json()["code"] == "not_enrolled"
    assert (await platform.client.post("/api/playback/token", json={"lesson_id": str(PAID_LESSON)},
                                       headers=headers)).status_code == 403
    # A late, older 'granted' changes nothing; a newer one restores access.
    await platform.deliver("granted", user_id, 1)
    assert (await platform.client.post("/api/playback/token", json={"lesson_id": str(PAID_LESSON)},
                                       headers=headers)).status_code == 403
    await platform.deliver("granted", user_id, 3)
    await _token(platform, headers)
    rows = await _log_rows(platform, user_id)
    refused = [r for r in rows if r.decision == "refused"]
    assert [r.reason for r in refused] == ["not_enrolled"] * 4
    assert refused[0].session_id == uuid.UUID(issued["session_id"])


async def test_revoked_before_granted_stays_revoked(platform: Platform) -> None:
    user_id, headers = await platform.new_user()
    await platform.deliver("revoked", user_id, 2)
    await platform.deliver("granted", user_id, 1)
    async with platform.runtime.db.session() as session:
        row = await session.get(Entitlement, (user_id, COURSE_ID))
    assert row is not None and not row.active and row.version == 2
    refused = await platform.client.post("/api/playback/token", json={"lesson_id": str(PAID_LESSON)},
                                         headers=headers)
    assert refused.status_code == 403


async def _wait_for_entitlement(platform: Platform, user_id: uuid.UUID, active: bool) -> None:
    """Catalog's outbox relay publishes asynchronously: wait for playback's read model to catch up."""
    for _ in range(100):
        async with platform.runtime.db.session() as session:
            row = await session.get(Entitlement, (user_id, COURSE_ID))
        if row is not None and row.active is active:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"entitlement never became active={active}")


async def test_paid_then_refunded_order_flows_through_catalog(platform: Platform) -> None:
    """billing.order.paid -> catalog grants -> playback plays; the refund cuts the next manifest."""
    user_id, headers = await platform.new_user()
    order = {"order_id": str(uuid.uuid4()), "user_id": str(user_id), "course_id": str(COURSE_ID),
             "currency": "EUR"}
    now = dt.datetime.now(dt.UTC).isoformat()
    await platform.bus.publish(Envelope.new("billing.order.paid", {**order, "amount": 4900, "paid_at": now}))
    await _wait_for_entitlement(platform, user_id, active=True)
    issued = await _token(platform, headers)
    assert (await platform.client.get(_local(issued["manifest_url"]))).status_code == 200

    await platform.bus.publish(Envelope.new("billing.order.refunded", {
        **order, "amount_refunded": 4900, "refunded_at": now}))
    await _wait_for_entitlement(platform, user_id, active=False)
    assert (await platform.client.get(_local(issued["manifest_url"]))).status_code == 403
    assert (await platform.client.post("/api/playback/token", json={"lesson_id": str(PAID_LESSON)},
                                       headers=headers)).status_code == 403


async def test_lesson_must_exist_and_be_a_video(platform: Platform) -> None:
    user_id, headers = await platform.new_user()
    for lesson_id, expected in ((uuid.uuid4(), (404, "lesson_not_found")),
                                (TEXT_LESSON, (422, "not_a_video_lesson"))):
        response = await platform.client.post("/api/playback/token", json={"lesson_id": str(lesson_id)},
                                              headers=headers)
        assert (response.status_code, response.json().get("code")) == expected
    assert [(r.action, r.decision, r.reason) for r in await _log_rows(platform, user_id)] == [
        ("token", "refused", "lesson_not_found"), ("token", "refused", "not_a_video_lesson")]


async def test_readiness_checks_media_root(platform: Platform) -> None:
    ready = await platform.client.get("/api/playback/health/ready")
    assert ready.status_code == 200
    assert {"database": "ok", "media": "ok"}.items() <= ready.json()["checks"].items()
    assert (await platform.client.get("/api/playback/health/live")).status_code == 200
