"""Video ingestion through the gateway, in both run modes: an instructor uploads a generated video,
it is transcoded (distributed: by `python -m playback.worker` over RabbitMQ; embedded: in-process),
put in a published course, and a learner plays it down to a decodable segment."""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from .test_core_path import DEMO_INSTRUCTOR, eventually, login, media_uris


def _path(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}" if parts.query else parts.path


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
        created = client.post("/api/playback/assets", headers=instructor, json={
            "filename": "clip.mp4", "content_type": "video/mp4", "size_bytes": len(data)})
        assert created.status_code == 201, created.text
        asset_id, upload = created.json()["asset_id"], created.json()["upload"]
        try:
            put = client.put(_path(upload["url"]), content=data, headers=upload["headers"])
            assert put.status_code == 204, put.text
            done = client.post(_path(upload["complete_url"]), headers=instructor)
            assert done.status_code == 202, done.text

            def final() -> dict | None:
                body: dict = client.get(f"/api/playback/assets/{asset_id}", headers=instructor).json()
                return body if body["status"] in ("ready", "failed") else None

            asset = eventually(final, timeout=90, what="the transcode")
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
                       timeout=30, what="catalog to accept the uploaded asset")
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
        finally:
            deleted = client.delete(f"/api/playback/assets/{asset_id}", headers=instructor)
            assert deleted.status_code == 204, deleted.text
        assert client.get(segment_url).status_code == 404, "delete removes the files"
