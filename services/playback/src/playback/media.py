"""Media storage, and the embedded-mode stand-in for Nginx `secure_link` in front of it.

In distributed mode Nginx (or a CDN) serves `/media/<asset>/...` after checking the same md5/expires
signature; embedded, the gateway mounts `create_media_app(settings)` at `/media`.
"""

from __future__ import annotations

import asyncio
import math
import time
import uuid
from pathlib import Path

import aiofiles
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Route

from common.errors import problem
from common.observability.middleware import ObservabilityMiddleware
from playback import hls, signing
from playback.settings import PlaybackSettings

HLS_PLAYLIST = "application/vnd.apple.mpegurl"
CONTENT_TYPES = {
    ".m3u8": HLS_PLAYLIST,
    ".ts": "video/mp2t",
    ".m4s": "video/iso.segment",
    ".mp4": "video/mp4",
    ".aac": "audio/aac",
    ".vtt": "text/vtt",
}


def is_asset_id(value: str) -> bool:
    """Asset ids are canonical lowercase UUIDs, which also makes them safe folder names."""
    try:
        return str(uuid.UUID(value)) == value
    except ValueError:
        return False


class LocalMediaStore:
    """HLS assets on a local disk (<root>/<asset_id>/...); every read happens off the event loop."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _join(self, asset_id: str, relative: str) -> Path | None:
        if not is_asset_id(asset_id) or not hls.is_safe_relative_path(relative):
            return None
        return self.root / asset_id / relative

    async def read_text(self, asset_id: str, relative: str) -> str | None:
        path = self._join(asset_id, relative)
        if path is None:
            return None
        try:
            async with aiofiles.open(path, encoding="utf-8") as handle:
                text: str = await handle.read()
                return text
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return None

    async def file(self, asset_id: str, relative: str) -> Path | None:
        """The regular file for a request, or None; symlinks may not lead outside the root."""
        path = self._join(asset_id, relative)
        if path is None:
            return None

        def check(candidate: Path) -> Path | None:
            resolved = candidate.resolve()
            inside = resolved.is_relative_to(self.root.resolve())
            return resolved if inside and resolved.is_file() else None

        return await asyncio.to_thread(check, path)

    async def ping(self) -> None:
        if not await asyncio.to_thread(self.root.is_dir):
            raise FileNotFoundError(f"media root {self.root} is not a directory")


def create_media_app(settings: PlaybackSettings) -> Starlette:
    """Serve GET/HEAD /{asset_id}/{path} from `settings.media_root` when md5/expires verify.

    Status codes follow the Nginx setup: 403 missing or wrong signature, 410 expired, 404 no file.
    """
    store = LocalMediaStore(settings.media_root)
    secret = settings.secure_link_secret.get_secret_value()

    async def serve(request: Request) -> Response:
        asset_id: str = request.path_params["asset_id"]
        path: str = request.path_params["path"]
        verdict = signing.media_link_valid(secret, asset_id, request.query_params.get("md5"),
                                           request.query_params.get("expires"))
        if verdict is False:
            return problem(403, "Forbidden", "missing or invalid media signature", code="bad_signature")
        if verdict is None:
            return problem(410, "Gone", "the media link has expired", code="link_expired")
        content_type = CONTENT_TYPES.get(Path(path).suffix.lower())
        found = await store.file(asset_id, path) if content_type else None
        if found is None or content_type is None:
            return problem(404, "Not found", "no such media file")
        remaining = max(0, int(request.query_params["expires"]) - math.floor(time.time()))
        return FileResponse(found, media_type=content_type,
                            headers={"Cache-Control": f"private, max-age={min(remaining, 3600)}"})

    return Starlette(routes=[Route("/{asset_id}/{path:path}", serve, methods=["GET", "HEAD"])],
                     middleware=[Middleware(ObservabilityMiddleware, service="playback")])
