"""Render the Nginx gateway config for local processes (`make up`, e2e) from infra/nginx.

Compose and k8s render the same template with envsubst; here the values are the local ports,
the local media folder and a per-run secret.
"""

from __future__ import annotations

import os
import shutil
import string
import subprocess
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[4]
NGINX_DIR = REPO_ROOT / "infra" / "nginx"

WRAPPER = """\
worker_processes 2;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
{user}
events {{
    worker_connections 1024;
}}

http {{
    client_body_temp_path {prefix}/tmp/client_body;
    proxy_temp_path {prefix}/tmp/proxy;
    fastcgi_temp_path {prefix}/tmp/fastcgi;
    uwsgi_temp_path {prefix}/tmp/uwsgi;
    scgi_temp_path {prefix}/tmp/scgi;
    include {http_conf};
    include {prefix}/gateway.conf;
}}
"""


@dataclass(frozen=True)
class GatewayConfig:
    listen: str
    upstreams: dict[str, list[str]]  # service -> ["127.0.0.1:8101", ...]
    media_root: Path
    secure_link_secret: str
    api_rate_limit: str = "100r/s"
    login_rate_limit: str = "30r/m"


def nginx_binary() -> str:
    found = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
    if found is None:
        raise RuntimeError("nginx is not installed (apt-get install nginx)")
    return found


def render(config: GatewayConfig, prefix: Path) -> Path:
    """Write <prefix>/nginx.conf and gateway.conf; returns the main config path."""
    prefix = prefix.resolve()
    (prefix / "tmp").mkdir(parents=True, exist_ok=True)
    values = {
        f"{svc.upper()}_SERVERS": "\n    ".join(f"server {addr} max_fails=2 fail_timeout=5s;" for addr in addrs)
        for svc, addrs in config.upstreams.items()
    }
    values.update({
        "GATEWAY_LISTEN": config.listen,
        "ACCESS_LOG": str(prefix / "access.log"),
        "MEDIA_ROOT": str(config.media_root.resolve()),
        "SECURE_LINK_SECRET": config.secure_link_secret,
        "API_RATE_LIMIT": config.api_rate_limit,
        "LOGIN_RATE_LIMIT": config.login_rate_limit,
    })
    template = string.Template((NGINX_DIR / "gateway.conf.template").read_text())
    (prefix / "gateway.conf").write_text(template.safe_substitute(values))
    user = "user root;" if os.geteuid() == 0 else ""  # workers must read the repo's media files
    main = prefix / "nginx.conf"
    main.write_text(WRAPPER.format(prefix=prefix, http_conf=NGINX_DIR / "http.conf", user=user))
    return main


def check(main_conf: Path) -> None:
    subprocess.run([nginx_binary(), "-t", "-q", "-p", str(main_conf.parent), "-c", str(main_conf)],
                   check=True)


def start(main_conf: Path) -> None:
    subprocess.run([nginx_binary(), "-p", str(main_conf.parent), "-c", str(main_conf)], check=True)


def stop(main_conf: Path) -> None:
    if (main_conf.parent / "nginx.pid").exists():
        subprocess.run([nginx_binary(), "-p", str(main_conf.parent), "-c", str(main_conf), "-s", "quit"],
                       check=False)
