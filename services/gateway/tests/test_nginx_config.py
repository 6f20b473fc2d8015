"""The gateway config renders and passes `nginx -t`, and secure_link matches playback's signer."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from gateway import nginx
from gateway.devcert import ensure_dev_cert
from gateway.headers import MAX_BODY_BYTES, UPLOAD_PATH

pytestmark = pytest.mark.skipif(shutil.which("nginx") is None and not Path("/usr/sbin/nginx").exists(),
                                reason="nginx is not installed")


def render(tmp_path: Path) -> str:
    cert = ensure_dev_cert(tmp_path / "certs")
    main = nginx.render(nginx.GatewayConfig(
        https_listen="127.0.0.1:18443", http_listen="127.0.0.1:18080",
        upstreams={"auth": ["127.0.0.1:1"], "catalog": ["127.0.0.1:2", "127.0.0.1:3"],
                   "billing": ["127.0.0.1:4"], "playback": ["127.0.0.1:5"]},
        media_root=tmp_path / "media", secure_link_secret="s3cr3t-value", tls_cert=cert.cert,
        tls_key=cert.key), tmp_path / "nginx")
    nginx.check(main)
    return (tmp_path / "nginx" / "conf.d" / "gateway.conf").read_text()


def test_rendered_config_is_valid(tmp_path: Path) -> None:
    rendered = render(tmp_path)
    assert "${" not in rendered
    assert rendered.count("least_conn") == 4 and rendered.count("keepalive 32") == 4
    assert "server 127.0.0.1:3 max_fails=2 fail_timeout=5s;" in rendered
    # The signature nginx checks is exactly what playback computes (docs/contracts.md).
    assert 'secure_link_md5 "$secure_link_expires/media/$asset/ s3cr3t-value"' in rendered
    # One set_real_ip_from per trusted proxy; a name or a directive smuggled in is refused.
    assert re.findall(r"^set_real_ip_from [^;]*;", rendered, re.M) == ["set_real_ip_from 127.0.0.2/32;"]
    for bad in ("lb.example.com", "10.0.0.0/8; include /etc/passwd"):
        with pytest.raises(ValueError):
            nginx.real_ip_from([bad])
    # No plain listener unless asked for (the images never have one).
    assert not (tmp_path / "nginx" / "conf.d" / "plain.listen").exists()


def test_post_is_never_re_sent_to_another_replica() -> None:
    """proxy_next_upstream without `non_idempotent`, anywhere (tests/test_edge.py shows it live)."""
    for path in (nginx.NGINX_DIR / "http.conf", nginx.TEMPLATE):
        directives = re.findall(r"^\s*proxy_next_upstream\s+([^;]*);", path.read_text(), re.M)
        assert all("non_idempotent" not in d for d in directives)
    http_conf = (nginx.NGINX_DIR / "http.conf").read_text()
    assert "proxy_next_upstream error timeout http_502 http_504;" in http_conf  # a 503 is no replica failure


def test_every_location_with_its_own_headers_includes_the_edge_headers() -> None:
    """nginx drops inherited add_header in a block that adds its own: each such block re-includes."""
    text = nginx.TEMPLATE.read_text()
    for block in re.findall(r"\n    location [^{]*\{(.*?)\n    \}", text, re.S):
        if "add_header" in block:
            assert "include triple/edge_headers.conf;" in block or "include triple/api_headers.conf;" in block, block


def test_the_embedded_edge_has_nginx_body_limits() -> None:
    """gateway.headers' limit and its one exception are the ones infra/nginx applies."""
    http_conf = (nginx.NGINX_DIR / "http.conf").read_text()
    size = re.search(r"^client_max_body_size (\d+)([km]?);", http_conf, re.M)
    assert size is not None
    assert int(size.group(1)) * {"": 1, "k": 1024, "m": 1024 * 1024}[size.group(2)] == MAX_BODY_BYTES
    own_limit = re.findall(r'location ~ "([^"]+)" \{\n\s*client_max_body_size', nginx.TEMPLATE.read_text())
    assert own_limit == [UPLOAD_PATH.pattern]
