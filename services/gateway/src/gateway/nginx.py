"""Render the Nginx gateway config for local processes (`make up`, e2e) from infra/nginx.

Compose and k8s render the same template with envsubst (the nginx image's templates feature);
here the values are the local ports, the local media folder, a dev certificate and a per-run
secret. The layout of the run folder mirrors /etc/nginx in the image, so the template's relative
includes resolve the same way in both:

    <prefix>/nginx.conf          the wrapper (the image has infra/nginx/nginx.conf)
    <prefix>/triple/             infra/nginx's static files (http.conf, header snippets, dhparam)
    <prefix>/conf.d/gateway.conf the rendered template
    <prefix>/conf.d/*.listen     extra listeners of the HTTPS server (the loopback plain one)
    <prefix>/conf.d/internal.conf one loopback address per service for service-to-service calls
"""

from __future__ import annotations

import ipaddress
import os
import re
import shutil
import string
import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from gateway.limits import EDGE_LIMITS, EdgeLimits

REPO_ROOT = Path(__file__).resolve().parents[4]
NGINX_DIR = REPO_ROOT / "infra" / "nginx"
TEMPLATE = NGINX_DIR / "gateway.conf.template"
WEB_DIST = REPO_ROOT / "web" / "dist"
# What the image copies to /etc/nginx/triple/ (services/gateway/Dockerfile).
STATIC_FILES = ("http.conf", "edge_headers.conf", "api_headers.conf", "web_types.conf", "ffdhe2048.pem")
# Passive health check of every upstream server line.
SERVER_PARAMS = "max_fails=2 fail_timeout=5s"

# `make up`'s stand-in for a Kubernetes Service: one loopback address per service, balanced over its
# replicas by the same upstream block as the edge (passive health checks, idempotent retries), so a
# peer's dead replica is routed around instead of failing every call to it. Not in the images
# (compose and k8s name services through DNS). Internal routes stay reachable here (loopback only,
# service tokens required); the caller's own X-Request-ID, traceparent and Cache-Control pass on.
INTERNAL_SERVER = """\
server {{
    listen {listen};
    access_log off;
    # Setting any proxy header here drops every inherited one: the whole set, the caller's ids kept.
    proxy_set_header Connection "";
    proxy_set_header Host $host;
    proxy_set_header X-Request-ID $http_x_request_id;
    proxy_set_header traceparent $http_traceparent;
    proxy_set_header X-Forwarded-For $remote_addr;
    proxy_set_header X-Forwarded-Proto $scheme;
    proxy_pass_header Cache-Control;
    proxy_read_timeout 120s;
    location / {{
        proxy_pass http://{service}_upstream;
    }}
}}
"""

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
    include triple/http.conf;
    include conf.d/*.conf;
}}
"""


@dataclass(frozen=True)
class GatewayConfig:
    """The values of one local gateway.

    `https_listen` is the TLS edge and `http_listen` the plain listener that only redirects to it
    (and answers /health/live), as in compose and k8s. `plain_listen`, when set, adds a plain-HTTP
    listener with the whole API to the HTTPS server: loopback only, for tests and tools that do not
    trust the dev CA (it never exists in the images).
    """

    https_listen: str
    http_listen: str
    upstreams: Mapping[str, list[str]]  # service -> ["127.0.0.1:8101", ...]
    media_root: Path
    secure_link_secret: str
    tls_cert: Path
    tls_key: Path
    plain_listen: str | None = None
    limits: EdgeLimits = EDGE_LIMITS
    cors_origins: tuple[str, ...] = ("http://localhost:3000",)
    # The load balancers in front whose X-Forwarded-For is believed (loopback stand-in for tests).
    trusted_proxies: tuple[str, ...] = ("127.0.0.2/32",)
    # The built web app served at / (`npm run build` in web/; absent: / answers 404 per file).
    web_root: Path = WEB_DIST
    # service -> "127.0.0.1:port": the balanced address its peers call it on (INTERNAL_SERVER).
    internal_listens: Mapping[str, str] = field(default_factory=dict)


def nginx_binary() -> str:
    found = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
    if found is None:
        raise RuntimeError("nginx is not installed (apt-get install nginx)")
    return found


def nginx_version() -> tuple[int, ...]:
    out = subprocess.run([nginx_binary(), "-v"], capture_output=True, text=True, check=False).stderr
    match = re.search(r"nginx/(\d+)\.(\d+)\.(\d+)", out)
    return tuple(int(p) for p in match.groups()) if match else (0, 0, 0)


def port_of(listen: str) -> int:
    return int(listen.rsplit(":", 1)[-1].split()[0])


def server_lines(addresses: Iterable[str], params: str = SERVER_PARAMS) -> str:
    return "\n    ".join(f"server {addr} {params};" for addr in addresses)


def real_ip_from(proxies: Iterable[str]) -> str:
    """The SET_REAL_IP_FROM placeholder: one `set_real_ip_from` per trusted proxy (address or CIDR),
    as infra/nginx/16-trusted-proxies.envsh renders TRUSTED_PROXIES in the image."""
    return "".join(f"set_real_ip_from {ipaddress.ip_network(p.strip(), strict=False)}; " for p in proxies)


def cors_pattern(origins: Iterable[str]) -> str:
    """The CORS_ORIGINS placeholder: exact origins as one regex alternation."""
    return "|".join(re.escape(origin) for origin in origins)


def substitute(template: str, values: Mapping[str, str]) -> str:
    """envsubst semantics: ${NAME} of a known NAME is replaced, nginx's own $variables are kept."""
    return string.Template(template).safe_substitute(values)


def template_values(config: GatewayConfig, prefix: Path) -> dict[str, str]:
    values = {f"{svc.upper()}_SERVERS": server_lines(addrs) for svc, addrs in config.upstreams.items()}
    values.update({
        "HTTP_LISTEN": config.http_listen,
        "HTTPS_LISTEN": config.https_listen,
        "HTTPS_PORT": str(port_of(config.https_listen)),
        "TLS_CERT": str(config.tls_cert.resolve()),
        "TLS_KEY": str(config.tls_key.resolve()),
        "SET_REAL_IP_FROM": real_ip_from(config.trusted_proxies),
        "RESOLVER": "127.0.0.1",  # local upstreams are addresses: never asked
        "CORS_ORIGINS": cors_pattern(config.cors_origins),
        "CACHE_DIR": str(prefix / "cache"),
        "ACCESS_LOG": str(prefix / "access.log"),
        "MEDIA_ROOT": str(config.media_root.resolve()),
        "WEB_ROOT": str(config.web_root.resolve()),
        "SECURE_LINK_SECRET": config.secure_link_secret,
        **config.limits.template_values(),
    })
    return values


def install_static_files(prefix: Path) -> None:
    """infra/nginx's static files where the template's relative includes expect them."""
    (prefix / "triple").mkdir(parents=True, exist_ok=True)
    for name in STATIC_FILES:
        shutil.copyfile(NGINX_DIR / name, prefix / "triple" / name)


def render(config: GatewayConfig, prefix: Path) -> Path:
    """Write <prefix>/nginx.conf and its includes; returns the main config path."""
    prefix = prefix.resolve()
    (prefix / "tmp").mkdir(parents=True, exist_ok=True)
    (prefix / "conf.d").mkdir(parents=True, exist_ok=True)
    install_static_files(prefix)
    rendered = substitute(TEMPLATE.read_text(), template_values(config, prefix))
    (prefix / "conf.d" / "gateway.conf").write_text(rendered)
    plain = prefix / "conf.d" / "plain.listen"
    if config.plain_listen:
        plain.write_text(f"listen {config.plain_listen};\n")
    else:
        plain.unlink(missing_ok=True)
    (prefix / "conf.d" / "internal.conf").write_text("".join(
        INTERNAL_SERVER.format(listen=listen, service=service) for service, listen in config.internal_listens.items()))
    user = "user root;" if os.geteuid() == 0 else ""  # workers must read the repo's media files
    main = prefix / "nginx.conf"
    main.write_text(WRAPPER.format(prefix=prefix, user=user))
    return main


def check(main_conf: Path) -> None:
    result = subprocess.run([nginx_binary(), "-t", "-q", "-p", str(main_conf.parent), "-c", str(main_conf)],
                            capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"nginx -t failed for {main_conf}:\n{result.stderr}")


def start(main_conf: Path) -> None:
    subprocess.run([nginx_binary(), "-p", str(main_conf.parent), "-c", str(main_conf)], check=True)


def stop(main_conf: Path) -> None:
    if (main_conf.parent / "nginx.pid").exists():
        subprocess.run([nginx_binary(), "-p", str(main_conf.parent), "-c", str(main_conf), "-s", "quit"],
                       check=False)
