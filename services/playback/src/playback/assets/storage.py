"""Object storage behind one interface: a local folder (embedded, `make up`) or S3 (boto3).

Keys are relative paths (`<asset_id>/360p/index.m3u8`, `uploads/<asset_id>`). Local writes land
under a temporary name and are renamed into place, so a reader never sees half a file. boto3 is
synchronous: every S3 call runs in a worker thread, never on the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Protocol

from playback import hls
from playback.media import LocalMediaStore, is_asset_id
from playback.settings import PlaybackSettings


class StorageError(RuntimeError):
    """The storage backend failed (transient: the caller may retry)."""


class Storage(Protocol):
    name: str

    async def put_file(self, key: str, path: Path, content_type: str) -> None: ...

    async def download(self, key: str, path: Path) -> bool:
        """Copy the object to `path`; False when it does not exist."""
        ...

    async def read_bytes(self, key: str) -> bytes | None: ...

    async def stat(self, key: str) -> tuple[int, str | None] | None:
        """(size, content type) of an object, or None when it does not exist."""
        ...

    async def list_keys(self, prefix: str) -> list[str]: ...

    async def delete_prefix(self, prefix: str) -> int:
        """Delete every object under `prefix` (a folder: it must end with '/'); returns how many."""
        ...

    async def delete(self, key: str) -> None: ...

    async def presign_put(self, key: str, *, content_type: str, size: int, expires_in: int) -> str | None:
        """A URL the client PUTs the object to directly, or None (the service's own upload route)."""
        ...

    async def start_multipart(self, key: str, *, content_type: str) -> str | None:
        """An upload id for a multipart upload, or None when the backend takes any size in one PUT."""
        ...

    async def presign_part(self, key: str, *, upload_id: str, part_number: int, size: int,
                           expires_in: int) -> str: ...

    async def complete_multipart(self, key: str, *, upload_id: str, parts: list[tuple[int, str]]) -> None:
        """Assemble the parts ((number, ETag) in order); ValueError when they do not match the upload."""
        ...

    async def abort_multipart(self, key: str, *, upload_id: str) -> None: ...

    async def ping(self) -> None: ...


def _check_key(key: str) -> str:
    if not hls.is_safe_relative_path(key.rstrip("/")):
        raise ValueError(f"unsafe storage key {key!r}")
    return key


class LocalStorage:
    """Objects as files under `root` (the media root, so Nginx / the media app serve the outputs)."""

    name = "local"

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, key: str) -> Path:
        return self.root / _check_key(key)

    def _put(self, key: str, source: Path) -> None:
        target = self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
        os.close(fd)
        try:
            shutil.copyfile(source, tmp)
            os.chmod(tmp, 0o644)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    async def put_file(self, key: str, path: Path, content_type: str) -> None:
        await asyncio.to_thread(self._put, key, path)

    async def download(self, key: str, path: Path) -> bool:
        def copy() -> bool:
            try:
                shutil.copyfile(self._path(key), path)
                return True
            except FileNotFoundError:
                return False

        return await asyncio.to_thread(copy)

    async def read_bytes(self, key: str) -> bytes | None:
        def read() -> bytes | None:
            try:
                return self._path(key).read_bytes()
            except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
                return None

        return await asyncio.to_thread(read)

    async def stat(self, key: str) -> tuple[int, str | None] | None:
        def size() -> int | None:
            path = self._path(key)
            return path.stat().st_size if path.is_file() else None

        found = await asyncio.to_thread(size)
        return None if found is None else (found, None)

    async def list_keys(self, prefix: str) -> list[str]:
        def walk() -> list[str]:
            base = self._path(prefix)
            if not base.is_dir():
                return []
            return sorted(str(p.relative_to(self.root)) for p in base.rglob("*")
                          if p.is_file() and not p.name.startswith(".tmp-"))

        return await asyncio.to_thread(walk)

    async def delete_prefix(self, prefix: str) -> int:
        if not prefix.endswith("/"):
            raise ValueError("a prefix to delete must name a folder")

        def remove() -> int:
            base = self._path(prefix)
            if not base.is_dir():
                return 0
            count = sum(1 for p in base.rglob("*") if p.is_file())
            shutil.rmtree(base)
            return count

        return await asyncio.to_thread(remove)

    async def delete(self, key: str) -> None:
        def remove() -> None:
            path = self._path(key)
            path.unlink(missing_ok=True)
            with contextlib.suppress(OSError):  # drop a folder this emptied (uploads/), never the root
                if path.parent != self.root:
                    path.parent.rmdir()

        await asyncio.to_thread(remove)

    async def presign_put(self, key: str, *, content_type: str, size: int, expires_in: int) -> str | None:
        return None

    async def start_multipart(self, key: str, *, content_type: str) -> str | None:
        return None  # the local upload route streams any size to disk in one PUT

    async def presign_part(self, key: str, *, upload_id: str, part_number: int, size: int,
                           expires_in: int) -> str:
        raise NotImplementedError("local storage has no multipart uploads")

    async def complete_multipart(self, key: str, *, upload_id: str, parts: list[tuple[int, str]]) -> None:
        raise NotImplementedError("local storage has no multipart uploads")

    async def abort_multipart(self, key: str, *, upload_id: str) -> None:
        return None

    async def ping(self) -> None:
        if not await asyncio.to_thread(self.root.is_dir):
            raise FileNotFoundError(f"storage root {self.root} is not a directory")


class S3Storage:
    """An S3 bucket (AWS, MinIO, moto) through boto3; `prefix` namespaces the keys."""

    name = "s3"

    def __init__(self, bucket: str, *, prefix: str = "", endpoint_url: str | None = None,
                 region: str = "us-east-1", access_key_id: str | None = None,
                 secret_access_key: str | None = None) -> None:
        import boto3
        from botocore.config import Config

        self.bucket = bucket
        self.prefix = prefix
        self.client: Any = boto3.client(
            "s3", endpoint_url=endpoint_url, region_name=region, aws_access_key_id=access_key_id,
            aws_secret_access_key=secret_access_key,
            config=Config(signature_version="s3v4", retries={"max_attempts": 3, "mode": "standard"},
                          s3={"addressing_style": "path" if endpoint_url else "auto"},
                          connect_timeout=5, read_timeout=60))

    def _key(self, key: str) -> str:
        return self.prefix + _check_key(key)

    async def _call(self, method: str, **kwargs: Any) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return await asyncio.to_thread(getattr(self.client, method), **kwargs)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound", "NoSuchUpload"):
                raise FileNotFoundError(kwargs.get("Key", "")) from exc
            raise StorageError(f"S3 {method} failed: {exc}") from exc
        except BotoCoreError as exc:
            raise StorageError(f"S3 {method} failed: {exc}") from exc

    async def put_file(self, key: str, path: Path, content_type: str) -> None:
        await self._call("upload_file", Filename=str(path), Bucket=self.bucket, Key=self._key(key),
                         ExtraArgs={"ContentType": content_type})

    async def download(self, key: str, path: Path) -> bool:
        try:
            await self._call("download_file", Bucket=self.bucket, Key=self._key(key), Filename=str(path))
            return True
        except FileNotFoundError:
            return False

    async def read_bytes(self, key: str) -> bytes | None:
        try:
            response = await self._call("get_object", Bucket=self.bucket, Key=self._key(key))
        except FileNotFoundError:
            return None
        body: bytes = await asyncio.to_thread(response["Body"].read)
        return body

    async def stat(self, key: str) -> tuple[int, str | None] | None:
        try:
            head = await self._call("head_object", Bucket=self.bucket, Key=self._key(key))
        except FileNotFoundError:
            return None
        return int(head["ContentLength"]), head.get("ContentType")

    async def list_keys(self, prefix: str) -> list[str]:
        def walk() -> list[str]:
            keys: list[str] = []
            paginator = self.client.get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self._key(prefix)):
                keys.extend(item["Key"][len(self.prefix):] for item in page.get("Contents", []))
            return sorted(keys)

        return await asyncio.to_thread(walk)

    async def delete_prefix(self, prefix: str) -> int:
        if not prefix.endswith("/"):
            raise ValueError("a prefix to delete must name a folder")
        keys = await self.list_keys(prefix)
        for start in range(0, len(keys), 1000):  # DeleteObjects takes at most 1000 keys
            batch = [{"Key": self._key(k)} for k in keys[start:start + 1000]]
            await self._call("delete_objects", Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True})
        return len(keys)

    async def delete(self, key: str) -> None:
        await self._call("delete_object", Bucket=self.bucket, Key=self._key(key))

    async def presign_put(self, key: str, *, content_type: str, size: int, expires_in: int) -> str | None:
        # Content-Type and Content-Length are signed: S3 refuses a PUT that differs from the declaration.
        url: str = await asyncio.to_thread(
            self.client.generate_presigned_url, "put_object",
            Params={"Bucket": self.bucket, "Key": self._key(key), "ContentType": content_type,
                    "ContentLength": size},
            ExpiresIn=expires_in, HttpMethod="PUT")
        return url

    async def start_multipart(self, key: str, *, content_type: str) -> str | None:
        created = await self._call("create_multipart_upload", Bucket=self.bucket, Key=self._key(key),
                                   ContentType=content_type)
        upload_id: str = created["UploadId"]
        return upload_id

    async def presign_part(self, key: str, *, upload_id: str, part_number: int, size: int,
                           expires_in: int) -> str:
        url: str = await asyncio.to_thread(
            self.client.generate_presigned_url, "upload_part",
            Params={"Bucket": self.bucket, "Key": self._key(key), "UploadId": upload_id,
                    "PartNumber": part_number, "ContentLength": size},
            ExpiresIn=expires_in, HttpMethod="PUT")
        return url

    async def complete_multipart(self, key: str, *, upload_id: str, parts: list[tuple[int, str]]) -> None:
        from botocore.exceptions import ClientError

        try:
            await asyncio.to_thread(
                self.client.complete_multipart_upload, Bucket=self.bucket, Key=self._key(key), UploadId=upload_id,
                MultipartUpload={"Parts": [{"PartNumber": n, "ETag": etag} for n, etag in parts]})
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code == "NoSuchUpload":
                raise FileNotFoundError(upload_id) from exc
            if code in ("InvalidPart", "InvalidPartOrder", "EntityTooSmall", "MalformedXML"):
                raise ValueError(f"the parts do not make up the upload ({code})") from exc
            raise StorageError(f"S3 complete_multipart_upload failed: {exc}") from exc

    async def abort_multipart(self, key: str, *, upload_id: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            await self._call("abort_multipart_upload", Bucket=self.bucket, Key=self._key(key), UploadId=upload_id)

    async def ping(self) -> None:
        await self._call("head_bucket", Bucket=self.bucket)


def open_storage(settings: PlaybackSettings) -> Storage:
    if settings.storage_backend == "s3":
        if not settings.s3_bucket:
            raise ValueError("PLAYBACK_STORAGE_BACKEND=s3 needs PLAYBACK_S3_BUCKET")
        return S3Storage(
            settings.s3_bucket, prefix=settings.s3_key_prefix, endpoint_url=settings.s3_endpoint_url,
            region=settings.s3_region, access_key_id=settings.s3_access_key_id,
            secret_access_key=(settings.s3_secret_access_key.get_secret_value()
                               if settings.s3_secret_access_key else None))
    return LocalStorage(settings.media_root)


class StorageMediaStore(LocalMediaStore):
    """Playlists read from object storage, for the manifest routes when the media is not on a local
    disk (S3): segments are then served from the bucket by the CDN / edge, not by this process.

    Assets the bucket does not have are looked up in the local media root (the committed demo asset).
    """

    def __init__(self, storage: Storage, fallback_root: Path) -> None:
        super().__init__(fallback_root)
        self.storage = storage

    async def read_text(self, asset_id: str, relative: str) -> str | None:
        if not is_asset_id(asset_id) or not hls.is_safe_relative_path(relative):
            return None
        data = await self.storage.read_bytes(f"{asset_id}/{relative}")
        if data is None:
            return await super().read_text(asset_id, relative)
        return data.decode("utf-8", errors="replace")

    async def file(self, asset_id: str, relative: str) -> Path | None:
        return None

    async def ping(self) -> None:
        await self.storage.ping()
