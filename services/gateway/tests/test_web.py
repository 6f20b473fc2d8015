"""The embedded gateway's web app files (gateway.web): what `make run` serves at /."""

from __future__ import annotations

from pathlib import Path

import httpx
from starlette.applications import Starlette
from starlette.routing import Route

from gateway.web import WebApp


def client(dist: Path) -> httpx.AsyncClient:
    app = Starlette(routes=[Route("/{path:path}", WebApp(dist).respond, methods=["GET", "HEAD"])])
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


async def test_built_app_with_cache_rules_and_spa_fallback(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    (dist / "assets").mkdir(parents=True)
    (dist / "index.html").write_text("<!doctype html><title>app</title>")
    (dist / "assets" / "index-1a2b.js").write_text("console.log(1)")
    (tmp_path / "secret.txt").write_text("not for the web")
    web = client(dist)
    index = await web.get("/")
    assert index.headers["cache-control"] == "no-cache" and "<title>app" in index.text
    asset = await web.get("/assets/index-1a2b.js")
    assert asset.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert asset.headers["content-type"].startswith("text/javascript")
    assert (await web.get("/learn/a/b")).text == index.text  # the app's own route
    assert (await web.get("/assets/index-old.js")).status_code == 404
    assert (await web.get("/api/unknown/route")).status_code == 404  # never the app's HTML for an API path
    assert (await web.get("/..%2Fsecret.txt")).text == index.text  # no way out of dist


async def test_without_a_build_the_index_says_how_to_get_the_ui(tmp_path: Path) -> None:
    web = client(tmp_path / "missing")
    index = await web.get("/")
    assert index.status_code == 200 and "make web" in index.json()["web_app"]
    assert (await web.get("/courses")).status_code == 404
