"""The web app's static files (web/dist) at `/`, as the Nginx edge serves them.

Hashed files under /assets/ never change, so they are cached for a year; index.html is revalidated
on every load so a new release is picked up at once; any other path is one of the single-page
app's own routes and gets index.html (SPA fallback).
"""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response

from common.settings import SERVICE_NAMES

IMMUTABLE = "public, max-age=31536000, immutable"
REVALIDATE = "no-cache"


class WebApp:
    """Answers every GET outside /api and /media from `dist`; without a build, the JSON index."""

    def __init__(self, dist: Path) -> None:
        self.dist = dist.resolve()

    @property
    def built(self) -> bool:
        return (self.dist / "index.html").is_file()

    async def respond(self, request: Request) -> Response:
        path = request.path_params.get("path", "")
        if path.startswith(("api/", "media/")):  # not a mounted service: never the app's HTML
            return _not_found()
        if not self.built:
            return self.index_without_ui(request)
        candidate = (self.dist / path).resolve()
        if path and candidate.is_file() and candidate.is_relative_to(self.dist):
            cache = IMMUTABLE if path.startswith("assets/") else REVALIDATE
            return FileResponse(candidate, headers={"cache-control": cache})
        if path.startswith("assets/"):  # a stale hashed name: a 404, not the app's HTML
            return _not_found()
        return FileResponse(self.dist / "index.html", headers={"cache-control": REVALIDATE})

    @staticmethod
    def index_without_ui(request: Request) -> Response:
        if request.path_params.get("path"):
            return _not_found()
        return JSONResponse({
            "platform": "Triple Academy (embedded mode)",
            "web_app": "not built: install Node.js 20+ and npm, then `make web` (or `make run` again)",
            "apis": {name: f"/api/{name}/docs" for name in SERVICE_NAMES},
            "health": {name: f"/api/{name}/health/ready" for name in SERVICE_NAMES},
        })


def _not_found() -> Response:
    return JSONResponse({"type": "about:blank", "title": "Not Found", "status": 404}, status_code=404,
                        media_type="application/problem+json")
