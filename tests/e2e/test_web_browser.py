"""The web app in Debian's Chromium (Playwright, web/e2e/*.spec.ts), against the embedded platform
and, for the core path, the distributed topology through Nginx. Screenshots of the main pages are
kept under the test's tmp folder (and in var/web-screenshots, the last run's copy)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from gateway.distributed import REPO_ROOT, SERVICES, Topology, free_port

sys.path.insert(0, str(REPO_ROOT / "tests" / "web"))
from web_testkit import build, require_node, run_tool

from .conftest import _wait_ready

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
SCREENSHOTS = REPO_ROOT / "var" / "web-screenshots"


@pytest.fixture(scope="module")
def web_dist() -> Path:
    """The app as the gateways serve it (web/dist), built from the current sources."""
    require_node()
    if not Path(CHROMIUM).exists():
        pytest.skip(f"Chromium is not installed at {CHROMIUM} (apt-get install chromium)")
    return build()


@pytest.fixture(scope="module")
def small_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four seconds of test pattern and tone, H.264/AAC, for the studio's upload."""
    path = tmp_path_factory.mktemp("video") / "lesson.mp4"
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-f", "lavfi", "-i", "testsrc=size=320x240:rate=15",
                    "-f", "lavfi", "-i", "sine=frequency=440", "-t", "4", "-c:v", "libx264", "-pix_fmt", "yuv420p",
                    "-c:a", "aac", "-shortest", str(path)], check=True, timeout=120)
    return path


@pytest.fixture(scope="module")
def embedded_web(web_dist: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """`python -m gateway` serving the built app; heartbeats every 5 s so an ended stream shows soon."""
    data_dir = tmp_path_factory.mktemp("embedded-web")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "GATEWAY_PORT": str(port), "GATEWAY_PUBLIC_BASE_URL": url, "GATEWAY_DATA_DIR": str(data_dir),
           "GATEWAY_WEB_DIST": str(web_dist), "GATEWAY_LOGIN_RATE_LIMIT": "1200r/m", "GATEWAY_LOGIN_BURST": "200",
           "PLAYBACK_HEARTBEAT_INTERVAL_SECONDS": "5"}
    log_path = data_dir / "gateway.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen([sys.executable, "-m", "gateway"], cwd=REPO_ROOT, env=env, stdout=log,
                                   stderr=subprocess.STDOUT)
        try:
            _wait_ready(url, [f"/api/{s}/health/ready" for s in SERVICES], log_path)
            yield url, log_path
        finally:
            process.terminate()
            process.wait(timeout=20)


def check_serving(base_url: str, dist: Path) -> None:
    """Hashed assets cached a year, index.html revalidated, SPA fallback, the app's CSP, real types."""
    script = next(p.name for p in (dist / "assets").iterdir() if p.suffix == ".js" and p.name.startswith("index-"))
    with httpx.Client(base_url=base_url, timeout=10) as client:
        index = client.get("/")
        assert index.status_code == 200 and index.headers["cache-control"] == "no-cache"
        assert "script-src 'self'" in index.headers["content-security-policy"]
        assert "form-action 'self'" in index.headers["content-security-policy"]
        asset = client.get(f"/assets/{script}")
        assert asset.status_code == 200 and "immutable" in asset.headers["cache-control"]
        assert "max-age=31536000" in asset.headers["cache-control"]
        assert asset.headers["content-type"].split(";")[0] == "text/javascript"
        route = client.get("/courses/10000000-0000-4000-8000-000000000001")
        assert route.status_code == 200 and route.text == index.text, "SPA fallback"
        api = client.get("/api/catalog/courses")
        assert api.status_code == 200 and "default-src 'none'" in api.headers["content-security-policy"]
        assert client.get("/assets/index-gone.js").status_code == 404


def playwright(base_url: str, mail_log: Path, shots: Path, *args: str, **env: str) -> None:
    shots.mkdir(parents=True, exist_ok=True)
    try:
        run_tool("playwright", "test", *args, timeout=600, env={
            "BASE_URL": base_url, "MAIL_LOG": str(mail_log), "SCREENSHOT_DIR": str(shots), "CHROMIUM_PATH": CHROMIUM,
            "PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD": "1", "PLAYWRIGHT_OUTPUT_DIR": str(shots / "failures"), **env})
    finally:
        shutil.copytree(shots, SCREENSHOTS, dirs_exist_ok=True)


@pytest.mark.timeout(900)
def test_every_page_in_chromium_on_the_embedded_platform(embedded_web: tuple[str, Path], small_video: Path,
                                                         tmp_path: Path) -> None:
    url, log = embedded_web
    check_serving(url, REPO_ROOT / "web" / "dist")
    playwright(url, log, tmp_path / "screenshots", VIDEO_FILE=str(small_video), SCREENSHOT_PREFIX="embedded-")
    assert (tmp_path / "screenshots" / "embedded-07-player.png").exists()


@pytest.mark.timeout(900)
def test_core_path_in_chromium_through_nginx(web_dist: Path, distributed: Topology, tmp_path: Path) -> None:
    """Nginx serves the app and the API on one origin: the same learner path as embedded."""
    check_serving(distributed.gateway_url, web_dist)
    playwright(distributed.gateway_url, distributed.run_dir / "logs" / "auth-0.log", tmp_path / "screenshots",
               "e2e/learner.spec.ts", "-g", "registers", SCREENSHOT_PREFIX="distributed-")
    assert (tmp_path / "screenshots" / "distributed-07-player.png").exists()
