"""A real Nginx rendered from infra/nginx in front of small scriptable upstreams.

The upstreams stand in for the services so the edge's own behaviour (TLS, headers, limits, cache,
retries) is tested exactly and quickly; tests/e2e runs the same config in front of the real ones.
"""

from __future__ import annotations

import shutil
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from gateway import nginx
from gateway.devcert import ensure_dev_cert
from gateway.distributed import free_port
from gateway.limits import EdgeLimits

# --import-mode=importlib does not put test folders on sys.path; the kit has a unique name.
sys.path.insert(0, str(Path(__file__).parent))

from gateway_edgekit import Edge, Upstream

if shutil.which("nginx") is None and not Path("/usr/sbin/nginx").exists():
    pytest.skip("nginx is not installed", allow_module_level=True)


@pytest.fixture(scope="session")
def edge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Edge]:
    base = tmp_path_factory.mktemp("edge")
    cert = ensure_dev_cert(base / "certs")
    upstreams = {"auth": [Upstream("auth")], "catalog": [Upstream("catalog")],
                 "billing": [Upstream("billing-a"), Upstream("billing-b")]}
    addresses = {name: [u.address for u in group] for name, group in upstreams.items()}
    addresses["playback"] = [f"127.0.0.1:{free_port()}"]  # nothing listens: every request is a 502
    ports = {name: free_port() for name in ("plain", "https", "redirect")}
    web = base / "web"  # a stand-in build of web/ (index.html + one hashed asset)
    (web / "assets").mkdir(parents=True)
    (web / "index.html").write_text("<!doctype html><title>app</title><script type=module src=/assets/app-1a2b.js>")
    (web / "assets" / "app-1a2b.js").write_text("console.log('app');")
    main = nginx.render(nginx.GatewayConfig(
        https_listen=f"127.0.0.1:{ports['https']}", http_listen=f"127.0.0.1:{ports['redirect']}",
        plain_listen=f"127.0.0.1:{ports['plain']}", upstreams=addresses,
        media_root=base / "media", secure_link_secret="edge-test-secret", tls_cert=cert.cert, tls_key=cert.key,
        limits=EdgeLimits(api_rate_limit="10r/s"), cors_origins=("https://app.example.test",),
        trusted_proxies=("127.0.0.2/32", "127.0.0.3"), web_root=web), base / "nginx")
    nginx.check(main)
    nginx.start(main)
    edge = Edge(plain_url=f"http://127.0.0.1:{ports['plain']}", https_url=f"https://127.0.0.1:{ports['https']}",
                redirect_url=f"http://127.0.0.1:{ports['redirect']}", cert=cert, prefix=main.parent,
                upstreams=upstreams)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                httpx.get(edge.plain_url + "/health/live", timeout=1)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        yield edge
    finally:
        nginx.stop(main)
        for group in upstreams.values():
            for upstream in group:
                upstream.close()
