"""Forensic A/B watermarking end to end, with real ffmpeg.

A tiny generated video (160x90, 24 one-second segments) is transcoded once for the module with A/B
variants. Learners play it through the real token -> master -> variant playlist -> signed /media
path; their recordings (segments concatenated, re-encoded at a lower bitrate and scaled, or only a
part) go through the admin route and the CLI and must lead back to the right session; a recording
stitched from two viewers' segments must accuse nobody.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from playback import forensic
from playback.assets import service as asset_service
from playback.assets import transcoder
from playback.assets.service.transcode import _variant_namer
from playback.settings import PlaybackSettings

from .conftest import FakeCatalog, Platform, _lesson, _serve

ASSET = uuid.UUID("20000000-0000-4000-8000-0000000000f1")
LESSON = uuid.UUID("30000000-0000-4000-8000-0000000000f1")
SEGMENTS = 24
UPLOAD_LIMIT = 4 * 1024**2
ADMIN = ("admin@triple.academy", "Admin-Demo-2026!")


def _ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-y", *args], check=True,
                   timeout=300)


@pytest.fixture(scope="module")
def media_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The media root holding the A/B-transcoded asset and its detector reference (as run_transcode leaves it)."""
    root = tmp_path_factory.mktemp("forensic-media")
    source = root / "source.mp4"
    _ffmpeg("-f", "lavfi", "-i", f"testsrc2=size=160x90:rate=12:duration={SEGMENTS}", "-c:v", "libx264",
            "-preset", "ultrafast", "-crf", "18", str(source))
    namer = _variant_namer(PlaybackSettings(), ASSET)
    result = asyncio.run(transcoder.transcode(source, root / str(ASSET), segment_seconds=1, preset="ultrafast",
                                              variant_namer=namer))
    assert result.forensic_reference is not None
    reference = root / asset_service.forensic_reference_key(ASSET)
    reference.parent.mkdir()
    reference.write_bytes(result.forensic_reference)
    source.unlink()
    return root


@pytest.fixture(scope="module")
async def platform(media_root: Path) -> AsyncIterator[Platform]:
    catalog = FakeCatalog(lessons={LESSON: _lesson(LESSON, asset_id=ASSET, is_preview=True)})
    async with _serve(catalog, media_root=media_root, max_concurrent_streams=20,
                      forensic_upload_max_bytes=UPLOAD_LIMIT) as served:
        yield served


def _local(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}" if parts.query else parts.path


@dataclass
class Viewer:
    session_id: uuid.UUID
    segment_urls: list[str]
    files: list[Path]


async def _watch(platform: Platform, folder: Path) -> Viewer:
    """A learner plays the lesson and keeps every segment the player downloads."""
    _, headers = await platform.new_user()
    issued = await platform.client.post("/api/playback/token", json={"lesson_id": str(LESSON)}, headers=headers)
    assert issued.status_code == 200, issued.text
    body = issued.json()
    master = await platform.client.get(_local(body["manifest_url"]))
    variant_url = next(line for line in master.text.splitlines() if line and not line.startswith("#"))
    variant = await platform.client.get(_local(variant_url))
    assert variant.status_code == 200, variant.text
    assert forensic.AB_MARKER not in variant.text
    urls = [line for line in variant.text.splitlines() if line and not line.startswith("#")]
    await asyncio.to_thread(folder.mkdir)
    files = []
    for index, url in enumerate(urls):
        segment = await platform.client.get(_local(url))
        assert segment.status_code == 200, url
        path = folder / f"{index:03d}.ts"
        await asyncio.to_thread(path.write_bytes, segment.content)
        files.append(path)
    return Viewer(uuid.UUID(body["session_id"]), urls, files)


def _record(files: list[Path], target: Path, *, scale: str = "128:72", bitrate: str = "120k",
            crop: str | None = None) -> Path:
    """A leak: the segments played back to back, re-encoded smaller (optionally cropped first)."""
    video_filter = f"crop={crop},scale={scale}" if crop else f"scale={scale}"
    _ffmpeg("-i", "concat:" + "|".join(str(f) for f in files), "-vf", video_filter, "-c:v", "libx264",
            "-preset", "ultrafast", "-b:v", bitrate, str(target))
    return target


async def _identify(platform: Platform, recording: Path) -> httpx.Response:
    admin = await platform.login(*ADMIN)
    body = await asyncio.to_thread(recording.read_bytes)
    return await platform.client.post("/api/playback/admin/watermarks/identify", content=body,
                                      headers={**admin, "Content-Type": "video/mp4"})


@pytest.fixture(scope="module")
async def viewers(platform: Platform, tmp_path_factory: pytest.TempPathFactory) -> list[Viewer]:
    folder = tmp_path_factory.mktemp("viewers")
    return [await _watch(platform, folder / f"viewer{n}") for n in range(3)]


async def test_viewers_get_different_variant_sequences_under_one_signature(viewers: list[Viewer]) -> None:
    first, second = viewers[0].segment_urls, viewers[1].segment_urls
    assert len(first) == len(second) == SEGMENTS
    paths = [[urlsplit(url).path for url in urls] for urls in (first, second)]
    assert paths[0] != paths[1]
    # Every position names one of that position's two variants, under the asset prefix.
    for a, b in zip(*paths, strict=True):
        assert a.startswith(f"/media/{ASSET}/360p/segment_") and b.startswith(f"/media/{ASSET}/360p/segment_")
        assert a.split(".")[0] == b.split(".")[0]
    # One signature for the whole playlist.
    assert len({urlsplit(url).query for url in first}) == 1
    # The plain position names are not files: a viewer cannot ask for a variant by guessing.
    assert not (viewers[0].files[0].parent / "segment_000.ts").exists()


async def test_each_viewers_reencoded_recording_is_traced_to_their_session(
        platform: Platform, viewers: list[Viewer], tmp_path: Path) -> None:
    for number, viewer in enumerate(viewers[:2]):
        recording = _record(viewer.files, tmp_path / f"leak{number}.mp4")
        response = await _identify(platform, recording)
        assert response.status_code == 200, response.text
        trace = response.json()
        assert trace["outcome"] == "identified", trace
        assert trace["asset_id"] == str(ASSET)
        assert trace["confidence"] > 0.999
        sessions = trace["suspects"][0]["sessions"]
        assert [s["session_id"] for s in sessions] == [str(viewer.session_id)]
        assert sessions[0]["lesson_id"] == str(LESSON) and sessions[0]["user_id"]


async def test_a_cropped_partial_recording_is_traced_by_the_cli(
        platform: Platform, viewers: list[Viewer], media_root: Path, tmp_path: Path) -> None:
    viewer = viewers[2]
    recording = _record(viewer.files[4:20], tmp_path / "part.mp4", scale="192:108", bitrate="100k",
                        crop="156:88:2:1")
    settings = platform.settings
    env = {**os.environ, "PLAYBACK_DATABASE_URL": settings.database_url.get_secret_value(),
           "PLAYBACK_MEDIA_ROOT": str(media_root),
           "PLAYBACK_SECURE_LINK_SECRET": settings.secure_link_secret.get_secret_value()}
    run = await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "playback", "watermark", "identify",
                                                   str(recording)], env=env, capture_output=True, timeout=300)
    assert run.returncode == 0, run.stderr.decode() + run.stdout.decode()
    assert f'"session_id": "{viewer.session_id}"' in run.stdout.decode()
    assert '"outcome": "identified"' in run.stdout.decode()


async def test_a_recording_stitched_from_two_viewers_accuses_no_innocent(
        platform: Platform, viewers: list[Viewer], tmp_path: Path) -> None:
    first, second = viewers[0].files, viewers[1].files
    stitched = [first[i] if (i // 3) % 2 == 0 else second[i] for i in range(SEGMENTS)]
    response = await _identify(platform, _record(stitched, tmp_path / "collusion.mp4"))
    assert response.status_code == 200, response.text
    trace = response.json()
    colluders = {str(viewers[0].session_id), str(viewers[1].session_id)}
    named = [s["session_id"] for suspect in trace["suspects"] for s in suspect["sessions"]]
    if trace["outcome"] == "identified":  # one of the two may carry enough of the recording: never a third
        assert named[0] in colluders, trace
    elif trace["outcome"] == "mixed":
        assert set(named) == colluders, trace
        assert trace["confidence"] == 0.0
    else:
        assert trace["outcome"] == "unidentified", trace
        assert trace["confidence"] == 0.0


async def test_the_identify_route_is_admin_only_and_bounded(platform: Platform, tmp_path: Path) -> None:
    _, learner = await platform.new_user()
    refused = await platform.client.post("/api/playback/admin/watermarks/identify", content=b"x",
                                         headers={**learner, "Content-Type": "video/mp4"})
    assert refused.status_code == 403
    admin = await platform.login(*ADMIN)
    wrong_type = await platform.client.post("/api/playback/admin/watermarks/identify", content=b"x",
                                            headers={**admin, "Content-Type": "text/plain"})
    assert wrong_type.status_code == 415
    too_big = await platform.client.post("/api/playback/admin/watermarks/identify",
                                         content=b"x" * (UPLOAD_LIMIT + 1),
                                         headers={**admin, "Content-Type": "video/mp4"})
    assert too_big.status_code == 413
    garbage = await platform.client.post("/api/playback/admin/watermarks/identify", content=b"not a video",
                                         headers={**admin, "Content-Type": "video/mp4"})
    assert garbage.status_code == 422
    assert garbage.headers["content-type"].startswith("application/problem+json")
