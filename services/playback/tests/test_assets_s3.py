"""The S3 storage adapter with real boto3 against moto's S3 server on a loopback port."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
import sqlalchemy as sa
from moto.server import ThreadedMotoServer

from common.testing import postgres_database
from gateway.distributed import free_port
from playback.assets.models import VideoAsset
from playback.assets.service import expire_uploads
from playback.assets.storage import S3Storage, StorageMediaStore
from playback.resources import PlaybackResources

from .test_assets import INSTRUCTOR, STUDENT, decodes, local, make_video, preview_lesson, serve_ingest, uris

CREDENTIALS = {"access_key_id": "testing", "secret_access_key": "testing-secret"}
MIB = 1024**2


@pytest.fixture(scope="module")
def databases() -> Iterator[dict[str, str]]:
    with postgres_database(["auth", "playback"]) as urls:
        yield urls


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture
def bucket(s3_endpoint: str) -> str:
    name = f"media-{uuid.uuid4().hex[:10]}"
    boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1", aws_access_key_id="testing",
                 aws_secret_access_key="testing-secret").create_bucket(Bucket=name)
    return name


async def test_storage_round_trip_and_presigned_put(s3_endpoint: str, bucket: str, tmp_path: Path) -> None:
    storage = S3Storage(bucket, prefix="media/", endpoint_url=s3_endpoint, **CREDENTIALS)
    await storage.ping()
    asset = uuid.uuid4()
    source = tmp_path / "index.m3u8"
    source.write_text("#EXTM3U\n")
    await storage.put_file(f"{asset}/360p/index.m3u8", source, "application/vnd.apple.mpegurl")
    await storage.put_file(f"{asset}/master.m3u8", source, "application/vnd.apple.mpegurl")
    assert await storage.stat(f"{asset}/master.m3u8") == (8, "application/vnd.apple.mpegurl")
    assert await storage.read_bytes(f"{asset}/360p/index.m3u8") == b"#EXTM3U\n"
    assert await storage.read_bytes(f"{asset}/nope") is None and await storage.stat(f"{asset}/nope") is None
    assert await storage.list_keys(f"{asset}/") == [f"{asset}/360p/index.m3u8", f"{asset}/master.m3u8"]
    assert not await storage.download(f"{asset}/missing", tmp_path / "missing")

    # The key prefix is applied in the bucket, and only there.
    raw = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1", aws_access_key_id="testing",
                       aws_secret_access_key="testing-secret")
    assert raw.head_object(Bucket=bucket, Key=f"media/{asset}/master.m3u8")["ContentLength"] == 8

    fallback = tmp_path / "media"
    demo = uuid.uuid4()
    (fallback / str(demo)).mkdir(parents=True)
    (fallback / str(demo) / "master.m3u8").write_text("#EXTM3U\n#demo\n")
    store = StorageMediaStore(storage, fallback)
    assert await store.read_text(str(asset), "master.m3u8") == "#EXTM3U\n"
    assert await store.read_text(str(demo), "master.m3u8") == "#EXTM3U\n#demo\n", "local assets still play"
    assert await store.read_text(str(asset), "../../etc/passwd") is None

    url = await storage.presign_put(f"uploads/{asset}", content_type="video/mp4", size=5, expires_in=60)
    assert url and url.startswith(s3_endpoint) and "X-Amz-Signature=" in url
    async with httpx.AsyncClient() as client:
        put = await client.put(url, content=b"12345", headers={"Content-Type": "video/mp4"})
    assert put.status_code == 200, put.text
    assert await storage.stat(f"uploads/{asset}") == (5, "video/mp4")
    assert await storage.download(f"uploads/{asset}", tmp_path / "got")
    assert (tmp_path / "got").read_bytes() == b"12345"

    assert await storage.delete_prefix(f"{asset}/") == 2
    assert await storage.list_keys(f"{asset}/") == []
    with pytest.raises(ValueError):
        await storage.delete_prefix(str(asset))  # a prefix must be a folder: never "<id>" matching "<id>x"


async def test_upload_to_s3_transcodes_and_plays(s3_endpoint: str, bucket: str, tmp_path: Path,
                                                 databases: dict[str, str]) -> None:
    settings: dict[str, Any] = {"storage_backend": "s3", "s3_bucket": bucket, "s3_endpoint_url": s3_endpoint,
                "s3_access_key_id": "testing", "s3_secret_access_key": "testing-secret"}
    async with serve_ingest(databases, tmp_path / "unused", **settings) as ingest:
        instructor = await ingest.login(INSTRUCTOR)
        data = make_video(tmp_path / "small.mp4", size="320x180", seconds=2).read_bytes()
        created = await ingest.create(instructor, len(data))
        upload = created["upload"]
        assert upload["url"].startswith(s3_endpoint), "a presigned URL straight to the bucket"
        async with httpx.AsyncClient() as direct:
            put = await direct.put(upload["url"], content=data, headers=upload["headers"])
        assert put.status_code == 200, put.text
        done = await ingest.client.post(local(upload["complete_url"]), headers=instructor)
        assert done.status_code == 202, done.text
        ready = await ingest.wait_final(created["asset_id"], instructor)
        assert ready["status"] == "ready", ready

        storage = S3Storage(bucket, endpoint_url=s3_endpoint, **CREDENTIALS)
        asset_id = created["asset_id"]
        keys = await storage.list_keys(f"{asset_id}/")
        assert f"{asset_id}/master.m3u8" in keys and f"{asset_id}/360p/index.m3u8" in keys
        assert await storage.stat(f"uploads/{asset_id}") is None, "the source is removed once ready"

        # Playlists come from the bucket (segments are the CDN's job); decode one segment from S3.
        lesson_id = preview_lesson(ingest.catalog, asset_id)
        student = await ingest.login(STUDENT)
        token = await ingest.client.post("/api/playback/token", json={"lesson_id": str(lesson_id)},
                                         headers=student)
        assert token.status_code == 200, token.text
        master = await ingest.client.get(local(token.json()["manifest_url"]))
        assert master.status_code == 200, master.text
        variant = await ingest.client.get(local(uris(master.text)[0]))
        assert variant.status_code == 200, variant.text
        first_segment = uris(variant.text)[0].split("?")[0].rsplit("/", 1)[-1]
        assert await storage.download(f"{asset_id}/360p/{first_segment}", tmp_path / "seg.ts")
        assert any(s["codec_type"] == "video" for s in decodes(tmp_path / "seg.ts")["streams"])

        deleted = await ingest.client.delete(f"/api/playback/assets/{asset_id}", headers=instructor)
        assert deleted.status_code == 204
        assert await storage.list_keys(f"{asset_id}/") == []


async def test_a_large_upload_goes_up_in_presigned_parts(s3_endpoint: str, bucket: str, tmp_path: Path,
                                                         databases: dict[str, str]) -> None:
    settings: dict[str, Any] = {"storage_backend": "s3", "s3_bucket": bucket, "s3_endpoint_url": s3_endpoint,
                "s3_access_key_id": "testing", "s3_secret_access_key": "testing-secret",
                "upload_multipart_threshold_bytes": 5 * MIB, "upload_part_bytes": 5 * MIB}
    data = make_video(tmp_path / "big.mp4", size="1280x720", seconds=4, crf=4, audio=False).read_bytes()
    assert len(data) > 5 * MIB
    async with serve_ingest(databases, tmp_path / "unused", **settings) as ingest:
        instructor = await ingest.login(INSTRUCTOR)
        created = await ingest.create(instructor, len(data))
        upload = created["upload"]
        assert upload["url"] is None and upload["part_size"] == 5 * MIB
        assert [(p["part_number"], p["size"]) for p in upload["parts"]] == [(1, 5 * MIB), (2, len(data) - 5 * MIB)]
        complete_url = local(upload["complete_url"])
        bare = await ingest.client.post(complete_url, headers=instructor)
        assert bare.status_code == 422 and bare.json()["code"] == "parts_required"

        etags = []
        async with httpx.AsyncClient() as direct:
            for part in upload["parts"]:
                offset = (part["part_number"] - 1) * upload["part_size"]
                put = await direct.put(part["url"], content=data[offset:offset + part["size"]])
                assert put.status_code == 200, put.text
                etags.append({"part_number": part["part_number"], "etag": put.headers["ETag"]})
        wrong = await ingest.client.post(complete_url, headers=instructor, json={
            "parts": [etags[0], {"part_number": 2, "etag": '"0123456789abcdef0123456789abcdef"'}]})
        assert wrong.status_code == 422 and wrong.json()["code"] == "bad_parts", wrong.text
        done = await ingest.client.post(complete_url, headers=instructor, json={"parts": etags})
        assert done.status_code == 202, done.text
        ready = await ingest.wait_final(created["asset_id"], instructor)
        assert ready["status"] == "ready", ready
        assert [r["name"] for r in ready["renditions"]] == ["360p", "720p"]

        # An abandoned multipart upload is aborted with its asset: no orphaned parts in the bucket.
        abandoned = await ingest.create(instructor, 6 * MIB)
        assert abandoned["upload"]["parts"]
        raw = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1", aws_access_key_id="testing",
                           aws_secret_access_key="testing-secret")
        assert [u["Key"] for u in raw.list_multipart_uploads(Bucket=bucket).get("Uploads", [])] == [
            f"uploads/{abandoned['asset_id']}"]
        gone = await ingest.client.delete(f"/api/playback/assets/{abandoned['asset_id']}", headers=instructor)
        assert gone.status_code == 204
        assert not raw.list_multipart_uploads(Bucket=bucket).get("Uploads")


async def test_an_abandoned_multipart_upload_expires_and_is_aborted(s3_endpoint: str, bucket: str, tmp_path: Path,
                                                                    databases: dict[str, str]) -> None:
    settings: dict[str, Any] = {"storage_backend": "s3", "s3_bucket": bucket, "s3_endpoint_url": s3_endpoint,
                "s3_access_key_id": "testing", "s3_secret_access_key": "testing-secret",
                "upload_multipart_threshold_bytes": 5 * MIB, "upload_part_bytes": 5 * MIB}
    raw = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1", aws_access_key_id="testing",
                       aws_secret_access_key="testing-secret")
    async with serve_ingest(databases, tmp_path / "unused", **settings) as ingest:
        instructor = await ingest.login(INSTRUCTOR)
        created = await ingest.create(instructor, 6 * MIB)
        first = created["upload"]["parts"][0]
        async with httpx.AsyncClient() as direct:  # one part of two went up, then the author gave up
            assert (await direct.put(first["url"], content=b"\0" * first["size"])).status_code == 200
        key = f"uploads/{created['asset_id']}"
        [pending] = raw.list_multipart_uploads(Bucket=bucket)["Uploads"]
        assert pending["Key"] == key

        async with ingest.runtime.db.transaction() as session:
            await session.execute(sa.update(VideoAsset).where(VideoAsset.id == uuid.UUID(created["asset_id"]))
                                  .values(created_at=dt.datetime.now(dt.UTC) - dt.timedelta(
                                      seconds=ingest.settings.upload_expiry_seconds + 1)))
        storage = ingest.runtime.resources_as(PlaybackResources).storage
        assert await expire_uploads(db=ingest.runtime.db, storage=storage, settings=ingest.settings) == 1
        assert not raw.list_multipart_uploads(Bucket=bucket).get("Uploads"), "the multipart upload is aborted"
        assert not raw.list_objects_v2(Bucket=bucket).get("Contents")
        asset = (await ingest.client.get(f"/api/playback/assets/{created['asset_id']}", headers=instructor)).json()
        assert asset["status"] == "failed" and asset["failure_reason"] == "upload_expired"
        async with ingest.runtime.db.session() as session:
            row = await session.get(VideoAsset, uuid.UUID(created["asset_id"]))
        assert row is not None and row.upload_id is None
