"""Video ingestion through the gateway, in both run modes: an instructor uploads a generated video,
it is transcoded (distributed: by `python -m playback.worker` over RabbitMQ; embedded: in-process),
put in a published course, and a learner plays it down to a decodable segment."""

from __future__ import annotations

import json
import subprocess
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from .test_core_path import DEMO_INSTRUCTOR, eventually, login, media_uris


def _path(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}" if parts.query else parts.path


def _upload(client: httpx.Client, instructor: dict[str, str], filename: str, data: bytes) -> str:
    """create -> PUT the bytes to the upload URL -> complete; returns the asset id."""
    created = client.post("/api/playback/assets", headers=instructor, json={
        "filename": filename, "content_type": "video/mp4", "size_bytes": len(data)})
    assert created.status_code == 201, created.text
    asset_id, upload = created.json()["asset_id"], created.json()["upload"]
    put = client.put(_path(upload["url"]), content=data, headers=upload["headers"])
    assert put.status_code == 204, put.text
    done = client.post(_path(upload["complete_url"]), headers=instructor)
    assert done.status_code == 202, done.text
    return str(asset_id)


def _final(client: httpx.Client, instructor: dict[str, str], asset_id: str, timeout: float) -> dict:
    """The asset once it is ready or failed."""
    def final() -> dict | None:
        body: dict = client.get(f"/api/playback/assets/{asset_id}", headers=instructor).json()
        return body if body["status"] in ("ready", "failed") else None

    result: dict = eventually(final, within=timeout, what=f"asset {asset_id} to finish")
    return result


def test_upload_transcode_publish_and_play(base_url: str, tmp_path: Path) -> None:
    source = tmp_path / "clip.mp4"
    subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-y",
                    "-f", "lavfi", "-i", "testsrc=size=320x180:rate=25:duration=3",
                    "-f", "lavfi", "-i", "sine=frequency=440:duration=3", "-shortest",
                    "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "aac",
                    str(source)], check=True, timeout=60)
    data = source.read_bytes()
    with httpx.Client(base_url=base_url, timeout=15) as client:
        instructor = login(client, *DEMO_INSTRUCTOR)
        asset_id = _upload(client, instructor, "clip.mp4", data)
        try:
            asset = _final(client, instructor, asset_id, timeout=90)
            assert asset["status"] == "ready", asset
            assert [r["name"] for r in asset["renditions"]] == ["360p"]

            course = client.post("/api/catalog/courses", headers=instructor, json={
                "title": f"Uploaded {uuid.uuid4().hex[:6]}", "price_amount": 0, "currency": "EUR",
                "sections": [{"title": "One", "lessons": [
                    {"title": "Clip", "kind": "video", "asset_id": asset_id, "is_preview": True}]}]})
            assert course.status_code == 201, course.text
            course_id = course.json()["id"]
            # Catalog publishes once it has heard playback.asset.ready.v1 for the lesson's asset.
            eventually(lambda: client.post(f"/api/catalog/courses/{course_id}/publish",
                                           headers=instructor).status_code == 200,
                       within=30, what="catalog to accept the uploaded asset")
            lesson_id = next(lesson["id"] for section in client.get(f"/api/catalog/courses/{course_id}").json()
                             ["sections"] for lesson in section["lessons"])

            email = f"viewer-{uuid.uuid4().hex[:8]}@example.com"
            assert client.post("/api/auth/register", json={"email": email, "password": "a long enough passphrase",
                                                           "full_name": "Viewer"}).status_code == 201
            learner = login(client, email, "a long enough passphrase")
            token = client.post("/api/playback/token", json={"lesson_id": lesson_id}, headers=learner)
            assert token.status_code == 200, token.text
            master = client.get(_path(token.json()["manifest_url"]))
            assert master.status_code == 200, master.text
            variant = client.get(_path(media_uris(master.text)[0]))
            assert variant.status_code == 200, variant.text
            segment_url = _path(media_uris(variant.text)[0])
            segment = client.get(segment_url)
            assert segment.status_code == 200 and segment.content[:1] == b"G", "an MPEG-TS segment"
            (tmp_path / "segment.ts").write_bytes(segment.content)
            subprocess.run(["ffmpeg", "-v", "error", "-xerror", "-i", str(tmp_path / "segment.ts"), "-f", "null",
                            "-"], check=True, timeout=60)
            probe = subprocess.run(["ffprobe", "-v", "error", "-print_format", "json", "-show_streams",
                                    str(tmp_path / "segment.ts")], check=True, capture_output=True, timeout=60)
            streams = {s["codec_type"]: s for s in json.loads(probe.stdout)["streams"]}
            assert streams["video"]["codec_name"] == "h264" and streams["video"]["height"] == 180
            assert streams["audio"]["codec_name"] == "aac"
        finally:
            deleted = client.delete(f"/api/playback/assets/{asset_id}", headers=instructor)
            assert deleted.status_code == 204, deleted.text
        assert client.get(segment_url).status_code == 404, "delete removes the files"


def test_a_non_video_upload_ends_failed_with_a_reason(base_url: str) -> None:
    """Through the same path (distributed: the worker process), a corrupt upload fails cleanly."""
    data = b"%PDF-1.7 definitely not a video\n" * 100
    with httpx.Client(base_url=base_url, timeout=15) as client:
        instructor = login(client, *DEMO_INSTRUCTOR)
        asset_id = _upload(client, instructor, "notes.mp4", data)
        try:
            asset = _final(client, instructor, asset_id, timeout=60)
            assert asset["status"] == "failed" and asset["failure_reason"], asset
            assert asset["renditions"] == [] and asset["duration_seconds"] is None
        finally:
            assert client.delete(f"/api/playback/assets/{asset_id}", headers=instructor).status_code == 204
