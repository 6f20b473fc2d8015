"""Video ingestion on the in-process platform (embedded shape: local storage, in-process transcoder).

auth (real, demo users) + a catalog stand-in whose lesson points at the uploaded asset + playback +
the /media app, on real PostgreSQL. Videos are generated with ffmpeg's lavfi test source.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from starlette.routing import Mount

from auth.main import create_app as create_auth_app
from auth.settings import AuthSettings
from common.app import compose_services
from common.db import Database
from common.events.bus import InProcessBus
from common.events.tables import outbox
from common.http import LazyASGITransport
from common.runtime import Runtime
from common.testing import in_process_settings, postgres_database, serve_in_process
from playback import signing
from playback.assets import transcoder
from playback.assets.jobs import UploadExpirySweeper
from playback.assets.models import VideoAsset
from playback.assets.service import expire_uploads
from playback.main import create_app
from playback.media import create_media_app
from playback.resources import PlaybackResources
from playback.settings import PlaybackSettings

from .conftest import PLAYBACK_CLIENT_SECRET, FakeCatalog, _lesson

INSTRUCTOR = ("instructor@triple.academy", "Instructor-Demo-2026!")
ADMIN = ("admin@triple.academy", "Admin-Demo-2026!")
STUDENT = ("student@triple.academy", "Student-Demo-2026!")


def make_video(path: Path, *, size: str = "640x360", seconds: float = 3, rate: int = 25,
               audio: bool = True, crf: int = 23) -> Path:
    """A small H.264 (+AAC) MP4 from ffmpeg's test pattern (a low `crf` makes it big)."""
    args = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y",
            "-f", "lavfi", "-i", f"testsrc2=size={size}:rate={rate}:duration={seconds}"]
    if audio:
        args += ["-f", "lavfi", "-i", f"sine=frequency=440:duration={seconds}", "-c:a", "aac", "-shortest"]
    args += ["-c:v", "libx264", "-preset", "ultrafast", "-crf", str(crf), "-pix_fmt", "yuv420p", str(path)]
    subprocess.run(args, check=True, timeout=120)
    return path


def decodes(path: Path) -> dict[str, Any]:
    """ffprobe's view of a media file, after a full decode with ffmpeg succeeded."""
    subprocess.run(["ffmpeg", "-v", "error", "-xerror", "-i", str(path), "-f", "null", "-"], check=True,
                   timeout=60)
    probe = subprocess.run(["ffprobe", "-v", "error", "-print_format", "json", "-show_streams", str(path)],
                           check=True, capture_output=True, timeout=60)
    result: dict[str, Any] = json.loads(probe.stdout)
    return result


@pytest.fixture(scope="session")
def videos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("videos")
    return {"hd": make_video(folder / "hd.mp4", size="1280x720", seconds=3),
            "small": make_video(folder / "small.mp4", size="320x180", seconds=2, audio=False)}


def preview_lesson(catalog: FakeCatalog, asset_id: str) -> uuid.UUID:
    """Point a new published preview lesson at the asset (the mapping lives in catalog)."""
    lesson_id = uuid.uuid4()
    catalog.lessons[lesson_id] = _lesson(lesson_id, asset_id=uuid.UUID(asset_id), is_preview=True)
    return lesson_id


@dataclass
class Ingest:
    client: httpx.AsyncClient
    app: FastAPI
    settings: PlaybackSettings
    catalog: FakeCatalog
    media_root: Path

    @property
    def runtime(self) -> Runtime:
        runtime: Runtime = self.app.state.runtime
        return runtime

    async def login(self, who: tuple[str, str]) -> dict[str, str]:
        response = await self.client.post("/api/auth/login", json={"email": who[0], "password": who[1]})
        assert response.status_code == 200, response.text
        return {"Authorization": f"Bearer {response.json()['access_token']}"}

    async def create(self, headers: dict[str, str], size: int, content_type: str = "video/mp4") -> dict[str, Any]:
        response = await self.client.post("/api/playback/assets", headers=headers, json={
            "filename": "lesson-1.mp4", "content_type": content_type, "size_bytes": size, "title": "Lesson 1"})
        assert response.status_code == 201, response.text
        created: dict[str, Any] = response.json()
        return created

    async def put(self, created: dict[str, Any], data: bytes, **headers: str) -> httpx.Response:
        upload = created["upload"]
        return await self.client.put(local(upload["url"]), content=data, headers={**upload["headers"], **headers})

    async def upload(self, headers: dict[str, str], data: bytes, content_type: str = "video/mp4") -> dict[str, Any]:
        """create -> PUT -> complete; returns the asset after completion."""
        created = await self.create(headers, len(data), content_type)
        assert created["status"] == "uploading" and created["upload"]["method"] == "PUT"
        put = await self.put(created, data)
        assert put.status_code == 204, put.text
        done = await self.client.post(local(created["upload"]["complete_url"]), headers=headers)
        assert done.status_code == 202, done.text
        assert done.json()["status"] in ("processing", "ready", "failed")
        result: dict[str, Any] = done.json()
        return result

    async def wait_final(self, asset_id: str, headers: dict[str, str], limit: float = 90) -> dict[str, Any]:
        seen: list[int] = []
        async with asyncio.timeout(limit):
            while True:
                response = await self.client.get(f"/api/playback/assets/{asset_id}", headers=headers)
                assert response.status_code == 200, response.text
                body: dict[str, Any] = response.json()
                seen.append(body["progress"])
                if body["status"] in ("ready", "failed"):
                    assert seen == sorted(seen), f"progress went backwards: {seen}"
                    return body
                assert body["status"] == "processing"
                await asyncio.sleep(0.1)

    async def events(self, routing_key: str, asset_id: str) -> list[dict[str, Any]]:
        async with self.runtime.db.session() as session:
            rows = (await session.execute(
                sa.select(outbox.c.envelope).where(outbox.c.routing_key == routing_key))).all()
        return [r.envelope["payload"] for r in rows if r.envelope["payload"].get("asset_id") == asset_id]


def local(url: str) -> str:
    parts = urlsplit(url)
    assert parts.scheme == "http" and parts.netloc == "testserver", url
    return f"{parts.path}?{parts.query}" if parts.query else parts.path


def uris(playlist: str) -> list[str]:
    return [line for line in playlist.splitlines() if line and not line.startswith("#")]


@asynccontextmanager
async def serve_ingest(database_urls: dict[str, str], media_root: Path, *, shared_bus: bool = True,
                       **overrides: Any) -> AsyncIterator[Ingest]:
    """The platform; `shared_bus=False` lets playback open its own bus from settings (RabbitMQ)."""
    transport = LazyASGITransport()
    bus = InProcessBus()
    catalog = FakeCatalog()
    auth_app = create_auth_app(AuthSettings(
        **in_process_settings(database_urls["auth"]), seed_demo_data=True,
        service_clients=f"playback:{PLAYBACK_CLIENT_SECRET}"), bus=bus, http_transport=transport)
    settings = PlaybackSettings(**{
        **in_process_settings(database_urls["playback"]), "service_client_secret": PLAYBACK_CLIENT_SECRET,
        "token_private_key": signing.generate_pem().decode(), "media_root": media_root,
        "transcode_retry_delay_ms": 200, **overrides})
    playback_app = create_app(settings, bus=bus if shared_bus else None, http_transport=transport)
    app = compose_services({"auth": auth_app, "catalog": catalog.app(), "playback": playback_app}, bus=bus,
                           extra_routes=[Mount("/media", app=create_media_app(settings))])
    async with serve_in_process(app, transport) as client:
        yield Ingest(client=client, app=playback_app, settings=settings, catalog=catalog, media_root=media_root)


@pytest.fixture(scope="module")
def databases() -> Iterator[dict[str, str]]:
    with postgres_database(["auth", "playback"]) as urls:
        yield urls


@pytest.fixture(scope="module")
async def ingest(databases: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Ingest]:
    async with serve_ingest(databases, tmp_path_factory.mktemp("media")) as served:
        yield served


async def test_upload_transcodes_to_a_playable_hls_ladder(ingest: Ingest, videos: dict[str, Path],
                                                          tmp_path: Path) -> None:
    instructor = await ingest.login(INSTRUCTOR)
    data = videos["hd"].read_bytes()
    asset = await ingest.upload(instructor, data)
    asset_id = asset["asset_id"]
    ready = await ingest.wait_final(asset_id, instructor)
    assert ready["status"] == "ready", ready
    assert ready["progress"] == 100 and ready["failure_reason"] is None
    assert 2.9 <= ready["duration_seconds"] <= 3.1
    assert [(r["name"], r["width"], r["height"]) for r in ready["renditions"]] == [
        ("360p", 640, 360), ("720p", 1280, 720)]

    # The layout playback serves: master + one folder per rendition under the asset's prefix.
    root = ingest.media_root / asset_id
    assert sorted(p.name for p in root.iterdir()) == ["360p", "720p", "master.m3u8", "thumbnail.jpg"]
    assert not (ingest.media_root / "uploads" / asset_id).exists(), "the source is removed once ready"
    media = (root / "720p" / "index.m3u8").read_text()
    durations = [float(line[8:].split(",")[0]) for line in media.splitlines() if line.startswith("#EXTINF:")]
    assert durations and max(durations) <= 4.1 and "#EXT-X-ENDLIST" in media

    thumb = await ingest.client.get(f"/api/playback/assets/{asset_id}/thumbnail.jpg", headers=instructor)
    assert thumb.status_code == 200 and thumb.content[:2] == b"\xff\xd8"
    [event] = await ingest.events("playback.asset.ready.v1", asset_id)
    assert event["owner_id"] == "00000000-0000-4000-8000-000000000002"
    assert event["duration_seconds"] == 3 and isinstance(event["duration_seconds"], int) and event["ready_at"]

    # token -> master -> variant -> signed segment, decoded by ffmpeg.
    lesson_id = preview_lesson(ingest.catalog, asset_id)
    student = await ingest.login(STUDENT)
    token = await ingest.client.post("/api/playback/token", json={"lesson_id": str(lesson_id)}, headers=student)
    assert token.status_code == 200, token.text
    master = await ingest.client.get(local(token.json()["manifest_url"]))
    assert master.status_code == 200, master.text
    variants = uris(master.text)
    assert len(variants) == 2
    variant = await ingest.client.get(local(variants[1]))
    assert variant.status_code == 200, variant.text
    segment = await ingest.client.get(local(uris(variant.text)[0]))
    assert segment.status_code == 200 and segment.headers["content-type"] == "video/mp2t"
    (tmp_path / "segment.ts").write_bytes(segment.content)
    streams = decodes(tmp_path / "segment.ts")["streams"]
    video = next(s for s in streams if s["codec_type"] == "video")
    assert (video["codec_name"], video["width"], video["height"]) == ("h264", 1280, 720)
    assert any(s["codec_type"] == "audio" and s["codec_name"] == "aac" for s in streams)


async def test_small_source_is_not_upscaled(ingest: Ingest, videos: dict[str, Path]) -> None:
    instructor = await ingest.login(INSTRUCTOR)
    asset = await ingest.upload(instructor, videos["small"].read_bytes())
    ready = await ingest.wait_final(asset["asset_id"], instructor)
    assert ready["status"] == "ready", ready
    assert [(r["name"], r["width"], r["height"]) for r in ready["renditions"]] == [("360p", 320, 180)]
    master = (ingest.media_root / asset["asset_id"] / "master.m3u8").read_text()
    assert 'CODECS="avc1.4d401f"' in master, "no audio codec for a silent source"


async def test_non_video_upload_fails_with_a_reason(ingest: Ingest) -> None:
    instructor = await ingest.login(INSTRUCTOR)
    asset = await ingest.upload(instructor, b"%PDF-1.7 this is not a video at all\n" * 50)
    failed = await ingest.wait_final(asset["asset_id"], instructor)
    assert failed["status"] == "failed"
    assert "not a readable media file" in failed["failure_reason"]
    assert failed["renditions"] == [] and failed["duration_seconds"] is None
    [event] = await ingest.events("playback.asset.failed.v1", asset["asset_id"])
    assert event["reason"] == failed["failure_reason"] and event["owner_id"] == failed["owner_id"]
    assert not await ingest.events("playback.asset.ready.v1", asset["asset_id"])
    async with ingest.runtime.db.session() as session:
        row = await session.get(VideoAsset, uuid.UUID(asset["asset_id"]))
    assert row is not None and row.attempts == 1, "a corrupt upload is not retried"
    assert not (ingest.media_root / asset["asset_id"]).exists()
    await _source_removed(ingest, asset["asset_id"])


async def _source_removed(ingest: Ingest, asset_id: str) -> None:
    """A failed asset keeps no copy of its upload (it is never read again)."""
    source = ingest.media_root / "uploads" / asset_id
    async with asyncio.timeout(5):  # removed right after the `failed` commit
        while True:
            if not source.exists():
                break
            await asyncio.sleep(0.05)


async def test_limits_and_upload_rules(ingest: Ingest, videos: dict[str, Path]) -> None:
    instructor = await ingest.login(INSTRUCTOR)
    student = await ingest.login(STUDENT)
    body = {"filename": "a.mp4", "content_type": "video/mp4", "size_bytes": 10}
    assert (await ingest.client.post("/api/playback/assets", json=body)).status_code == 401
    forbidden = await ingest.client.post("/api/playback/assets", json=body, headers=student)
    assert forbidden.status_code == 403
    wrong_type = await ingest.client.post("/api/playback/assets", headers=instructor,
                                          json={**body, "content_type": "application/pdf"})
    assert wrong_type.status_code == 415 and wrong_type.json()["code"] == "unsupported_content_type"
    assert wrong_type.headers["content-type"] == "application/problem+json"
    too_big = await ingest.client.post("/api/playback/assets", headers=instructor,
                                       json={**body, "size_bytes": ingest.settings.upload_max_bytes + 1})
    assert too_big.status_code == 413 and too_big.json()["code"] == "upload_too_large"
    extra = await ingest.client.post("/api/playback/assets", headers=instructor, json={**body, "status": "ready"})
    assert extra.status_code == 422

    data = videos["small"].read_bytes()
    created = await ingest.create(instructor, len(data))
    complete_url = local(created["upload"]["complete_url"])
    early = await ingest.client.post(complete_url, headers=instructor)
    assert early.status_code == 409 and early.json()["code"] == "upload_missing"
    mismatch = await ingest.put(created, data, **{"Content-Type": "video/webm"})
    assert mismatch.status_code == 415
    larger = await ingest.put(created, data + b"x")
    assert larger.status_code == 413
    forged = await ingest.client.put(local(created["upload"]["url"]).replace("signature=", "signature=x"),
                                     content=data, headers=created["upload"]["headers"])
    assert forged.status_code == 403
    assert (await ingest.client.get(f"/api/playback/assets/{created['asset_id']}", headers=instructor)
            ).json()["status"] == "uploading", "refused uploads change nothing"
    assert (await ingest.put(created, data)).status_code == 204
    assert (await ingest.client.post(complete_url, headers=instructor)).status_code == 202
    again = await ingest.client.post(complete_url, headers=instructor)
    assert again.status_code == 202, "completing twice is harmless"
    closed = await ingest.put(created, data)
    assert closed.status_code == 409 and closed.json()["code"] == "upload_closed"
    await ingest.wait_final(created["asset_id"], instructor)
    async with ingest.runtime.db.session() as session:
        jobs = (await session.execute(sa.select(outbox.c.envelope).where(
            outbox.c.routing_key == "playback.transcode.requested.v1"))).all()
    assert sum(1 for j in jobs if j.envelope["payload"]["asset_id"] == created["asset_id"]) == 1


async def test_owner_lists_and_deletes(ingest: Ingest, videos: dict[str, Path]) -> None:
    instructor, admin = await ingest.login(INSTRUCTOR), await ingest.login(ADMIN)
    mine = await ingest.upload(instructor, videos["small"].read_bytes())
    theirs = await ingest.create(admin, 100)
    await ingest.wait_final(mine["asset_id"], instructor)

    listed = (await ingest.client.get("/api/playback/assets?page_size=100", headers=instructor)).json()
    ids = [item["asset_id"] for item in listed["items"]]
    assert mine["asset_id"] in ids and theirs["asset_id"] not in ids and listed["total"] == len(ids)
    foreign = await ingest.client.get(f"/api/playback/assets/{theirs['asset_id']}", headers=instructor)
    assert foreign.status_code == 404, "another author's asset is invisible"
    not_mine = await ingest.client.delete(f"/api/playback/assets/{theirs['asset_id']}", headers=instructor)
    assert not_mine.status_code == 404
    assert (await ingest.client.get(f"/api/playback/assets/{mine['asset_id']}", headers=admin)).status_code == 200

    assert (ingest.media_root / mine["asset_id"] / "master.m3u8").is_file()
    deleted = await ingest.client.delete(f"/api/playback/assets/{mine['asset_id']}", headers=instructor)
    assert deleted.status_code == 204
    assert not (ingest.media_root / mine["asset_id"]).exists(), "storage objects are removed"
    gone = await ingest.client.get(f"/api/playback/assets/{mine['asset_id']}", headers=instructor)
    assert gone.status_code == 404
    assert (await ingest.client.delete(f"/api/playback/assets/{mine['asset_id']}", headers=instructor)
            ).status_code == 204
    [event] = await ingest.events("playback.asset.deleted.v1", mine["asset_id"])
    assert event["deleted_at"]


async def _backdate(ingest: Ingest, asset_id: str, seconds: float) -> None:
    """Pretend the asset was created `seconds` ago."""
    async with ingest.runtime.db.transaction() as session:
        await session.execute(sa.update(VideoAsset).where(VideoAsset.id == uuid.UUID(asset_id)).values(
            created_at=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=seconds)))


async def test_an_abandoned_upload_expires_and_its_partial_upload_is_removed(ingest: Ingest,
                                                                           videos: dict[str, Path]) -> None:
    instructor = await ingest.login(INSTRUCTOR)
    data = videos["small"].read_bytes()
    stale, fresh = await ingest.create(instructor, len(data)), await ingest.create(instructor, len(data))
    assert (await ingest.put(stale, data)).status_code == 204  # uploaded, never completed
    source = ingest.media_root / "uploads" / stale["asset_id"]
    assert source.is_file()
    await _backdate(ingest, stale["asset_id"], ingest.settings.upload_expiry_seconds + 1)
    await _backdate(ingest, fresh["asset_id"], ingest.settings.upload_expiry_seconds - 60)

    storage = ingest.runtime.resources_as(PlaybackResources).storage
    assert await expire_uploads(db=ingest.runtime.db, storage=storage, settings=ingest.settings) == 1
    expired = (await ingest.client.get(f"/api/playback/assets/{stale['asset_id']}", headers=instructor)).json()
    assert expired["status"] == "failed" and expired["failure_reason"] == "upload_expired"
    assert not source.exists(), "the partial upload is removed from storage"
    [event] = await ingest.events("playback.asset.failed.v1", stale["asset_id"])
    assert event["reason"] == "upload_expired"
    assert (await ingest.client.get(f"/api/playback/assets/{fresh['asset_id']}", headers=instructor)
            ).json()["status"] == "uploading", "an upload within its time is left alone"
    # Too late now: no upload, no transcode, and a second sweep changes nothing.
    late = await ingest.put(stale, data)
    assert late.status_code == 409 and late.json()["code"] == "upload_closed"
    done = await ingest.client.post(local(stale["upload"]["complete_url"]), headers=instructor)
    assert done.json()["status"] == "failed"
    assert not source.exists()
    assert await expire_uploads(db=ingest.runtime.db, storage=storage, settings=ingest.settings) == 0
    assert len(await ingest.events("playback.asset.failed.v1", stale["asset_id"])) == 1
    assert not await ingest.events("playback.transcode.requested.v1", stale["asset_id"])

    # The periodic sweeper (what the worker and the embedded runner start) does the same on its own.
    sweeper = UploadExpirySweeper(db=ingest.runtime.db, storage=storage, settings=ingest.settings.model_copy(
        update={"upload_sweep_interval_seconds": 0.05}))
    sweeper.start()
    try:
        await asyncio.sleep(0.2)  # its first sweeps found nothing; a later one must catch this
        await _backdate(ingest, fresh["asset_id"], ingest.settings.upload_expiry_seconds + 1)
        async with asyncio.timeout(10):
            while True:
                asset = await ingest.client.get(f"/api/playback/assets/{fresh['asset_id']}", headers=instructor)
                if asset.json()["status"] == "failed":
                    break
                await asyncio.sleep(0.05)
        assert asset.json()["failure_reason"] == "upload_expired"
    finally:
        await sweeper.stop()


async def test_a_restart_picks_up_a_job_left_in_processing(databases: dict[str, str], videos: dict[str, Path],
                                                           tmp_path: Path) -> None:
    """Embedded: the job queue is in memory, so a job queued before a restart must be found again."""
    async with serve_ingest(databases, tmp_path, transcode_in_process=False) as first:
        instructor = await first.login(INSTRUCTOR)
        asset = await first.upload(instructor, videos["small"].read_bytes())
        await asyncio.sleep(0.3)
        row = (await first.client.get(f"/api/playback/assets/{asset['asset_id']}", headers=instructor)).json()
        assert row["status"] == "processing", "nobody transcodes in this process"
    async with serve_ingest(databases, tmp_path) as second:
        instructor = await second.login(INSTRUCTOR)
        ready = await second.wait_final(asset["asset_id"], instructor)
        assert ready["status"] == "ready"


async def test_transient_failures_are_retried_then_fail_for_good(databases: dict[str, str],
                                                                 videos: dict[str, Path], tmp_path: Path) -> None:
    """An encode that never finishes in time (a stand-in for any transient error) stops after N attempts."""
    async with serve_ingest(databases, tmp_path, transcode_timeout_seconds=0.05, transcode_max_attempts=2) as slow:
        instructor = await slow.login(INSTRUCTOR)
        asset = await slow.upload(instructor, videos["hd"].read_bytes())
        failed = await slow.wait_final(asset["asset_id"], instructor)
        assert failed["status"] == "failed"
        assert failed["failure_reason"].startswith("transcoding gave up after 2 attempts: attempt 2: TimeoutError")
        async with slow.runtime.db.session() as session:
            row = await session.get(VideoAsset, uuid.UUID(asset["asset_id"]))
        assert row is not None and row.attempts == 2
        assert len(await slow.events("playback.asset.failed.v1", asset["asset_id"])) == 1
        await _source_removed(slow, asset["asset_id"])


@pytest.mark.parametrize(("width", "height", "expected"), [
    (1920, 1080, [("360p", 640, 360), ("720p", 1280, 720)]),
    (1280, 720, [("360p", 640, 360), ("720p", 1280, 720)]),
    (720, 1280, [("360p", 360, 640), ("720p", 720, 1280)]),  # portrait: the rung is the short side
    (321, 181, [("360p", 320, 180)]),  # smaller than every rung: kept (made even), not upscaled
    (854, 480, [("360p", 640, 360)]),
])
def test_ladder_plan_keeps_aspect_and_never_upscales(width: int, height: int,
                                                     expected: list[tuple[str, int, int]]) -> None:
    plan = transcoder.plan_ladder(transcoder.Probe(duration=10, width=width, height=height, has_audio=True))
    assert [(rung.name, w, h) for rung, w, h in plan] == expected


async def test_stopping_mid_job_does_not_use_up_an_attempt(databases: dict[str, str], tmp_path: Path) -> None:
    """A graceful stop (restart, deploy) cancels the running job; its attempt is given back."""
    source = make_video(tmp_path / "long.mp4", size="1280x720", seconds=8)
    media = tmp_path / "media"
    media.mkdir()
    probe = Database(databases["playback"], "playback")

    async def row(asset_id: str) -> VideoAsset:
        async with probe.session() as session:
            found = await session.get(VideoAsset, uuid.UUID(asset_id))
        assert found is not None
        return found

    try:
        async with serve_ingest(databases, media) as first:
            instructor = await first.login(INSTRUCTOR)
            asset = await first.upload(instructor, source.read_bytes())
            async with asyncio.timeout(30):
                while True:
                    if (await row(asset["asset_id"])).attempts == 1:
                        break
                    await asyncio.sleep(0.05)
            await asyncio.sleep(0.3)
        stopped = await row(asset["asset_id"])
        assert (stopped.status, stopped.attempts) == ("processing", 0)
        async with serve_ingest(databases, media) as second:
            ready = await second.wait_final(asset["asset_id"], await second.login(INSTRUCTOR))
        assert ready["status"] == "ready" and (await row(asset["asset_id"])).attempts == 1
    finally:
        await probe.dispose()
