"""The gateway config renders and passes `nginx -t`, and secure_link matches playback's signer."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from gateway import nginx

pytestmark = pytest.mark.skipif(shutil.which("nginx") is None and not Path("/usr/sbin/nginx").exists(),
                                reason="nginx is not installed")


def test_rendered_config_is_valid(tmp_path: Path) -> None:
    main = nginx.render(nginx.GatewayConfig(
        listen="127.0.0.1:18080",
        upstreams={"auth": ["127.0.0.1:1"], "catalog": ["127.0.0.1:2", "127.0.0.1:3"],
                   "billing": ["127.0.0.1:4"], "playback": ["127.0.0.1:5"]},
        media_root=tmp_path / "media", secure_link_secret="s3cr3t-value"), tmp_path / "nginx")
    nginx.check(main)
    rendered = (tmp_path / "nginx" / "gateway.conf").read_text()
    assert "${" not in rendered
    assert rendered.count("least_conn") == 4
    assert "server 127.0.0.1:3 max_fails" in rendered
    # The signature nginx checks is exactly what playback computes (docs/contracts.md).
    assert 'secure_link_md5 "$secure_link_expires/media/$asset/ s3cr3t-value"' in rendered

