"""The compose stack against the Compose Specification schema, its start-up graph, and `nginx -t`
on the gateway config exactly as the image would render it for compose and for both k8s overlays.

No Docker engine or cluster: the schema is committed (compose-spec.origin.txt says where from),
envsubst is reproduced by gateway.nginx.substitute, and the local nginx binary checks the result.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from gateway import nginx
from gateway.devcert import ensure_dev_cert
from gateway.limits import EDGE_LIMITS
from gateway.settings import GatewaySettings

# --import-mode=importlib does not put test folders on sys.path; the kit has a unique name.
sys.path.insert(0, str(Path(__file__).parent))

from compose_kit import COMPOSE_DIR, ROOT, compose, env_example

SCHEMA = Path(__file__).parent / "compose-spec.json"
SERVICES = ("auth", "catalog", "billing", "playback")
INTERPOLATION = re.compile(r"\$\{([A-Z][A-Z0-9_]*)(?::?([-?])([^}]*))?\}")


def interpolate(value: str, env: dict[str, str]) -> str:
    """Compose's ${VAR}, ${VAR:-default} and ${VAR:?error} with `env` (.env.example here)."""
    def one(match: re.Match[str]) -> str:
        name, kind, default = match.groups()
        if name in env and (env[name] or kind is None):
            return env[name]
        if kind == "-":
            return default
        raise AssertionError(f"${{{name}}} has no value")
    return INTERPOLATION.sub(one, value).replace("$$", "$")


def test_compose_file_follows_the_compose_specification() -> None:
    schema = json.loads(SCHEMA.read_text())
    data = dict(compose())
    # The committed schema revision predates the top-level project name (compose-spec.origin.txt).
    assert isinstance(data.pop("name"), str)
    errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(data), key=lambda e: list(e.path))
    assert not errors, [f"{list(e.path)}: {e.message}" for e in errors[:10]]


def test_schema_check_catches_mistakes() -> None:
    """The schema must reject what a typo produces, or the test above proves nothing."""
    schema = json.loads(SCHEMA.read_text())
    broken = {"services": {"x": {"image": "a", "depends_on": {"y": {"condition": "service_ready"}}}}}
    assert list(jsonschema.Draft7Validator(schema).iter_errors(broken))
    assert list(jsonschema.Draft7Validator(schema).iter_errors({"services": {"x": {"imagee": "a"}}}))


def healthy_target(service: dict[str, Any]) -> bool:
    """A healthcheck compose can wait on: its own, or the image's Dockerfile HEALTHCHECK."""
    check = service.get("healthcheck")
    if check is not None:
        return not check.get("disable", False)
    build = service.get("build")
    if isinstance(build, dict):
        dockerfile = (COMPOSE_DIR / build["context"] / build["dockerfile"]).resolve()
        return "HEALTHCHECK" in dockerfile.read_text()
    return False


def test_start_up_graph_waits_on_real_conditions() -> None:
    services = compose()["services"]
    for name, service in services.items():
        for target, spec in (service.get("depends_on") or {}).items():
            assert target in services, f"{name} depends on unknown {target}"
            assert not set(services[target].get("profiles", [])) - set(service.get("profiles", [])), \
                f"{name} waits on {target}, which only runs in a profile"
            if spec["condition"] == "service_healthy":
                assert healthy_target(services[target]), f"{name} waits for {target} to be healthy: no healthcheck"
            if spec["condition"] == "service_completed_successfully":
                assert services[target].get("restart") == "no", f"{target} is a one-shot step"
    # Every long-running container can report healthy; the others are one-shot steps (no
    # healthcheck: they exit) that something waits for to complete.
    awaited = {t for s in services.values() for t, spec in (s.get("depends_on") or {}).items()
               if spec["condition"] == "service_completed_successfully"}
    for name, service in services.items():
        if service.get("restart") == "no":
            assert name in awaited, f"one-shot {name} runs, but nothing waits for it"
        else:
            assert healthy_target(service), f"{name} has no healthcheck"


def test_stack_has_every_part() -> None:
    services = compose()["services"]
    assert services["minio"]["image"].startswith("minio/minio:")
    assert services["minio-init"]["depends_on"]["minio"]["condition"] == "service_healthy"
    assert services["rabbitmq"]["image"].endswith("-management")
    worker = services["playback-worker"]
    assert worker["command"] == ["python", "-m", "playback.worker"]
    assert worker["environment"] == services["playback"]["environment"], "worker and API share settings"
    assert worker["depends_on"]["migrate-playback"]["condition"] == "service_completed_successfully"
    assert worker["depends_on"]["rabbitmq"]["condition"] == "service_healthy"
    assert "media:/srv/media" in worker["volumes"], "renditions land where the gateway serves them"
    # The worker runs ffmpeg: its own image (Dockerfile.worker), not the API's, which has none.
    dockerfile = (COMPOSE_DIR / worker["build"]["context"] / worker["build"]["dockerfile"]).resolve()
    assert dockerfile.name == "Dockerfile.worker" and "ffmpeg" in dockerfile.read_text()
    assert "ffmpeg" not in (ROOT / "services" / "Dockerfile").read_text()
    assert "ffmpeg" not in str(services["playback"]["build"].get("args", {}))
    assert worker["image"].startswith("triple-academy/playback-worker:")
    # Read-only root: the image's scratch directory must be a volume or tmpfs.
    work_dir = re.search(r"PLAYBACK_TRANSCODE_WORK_DIR=(\S+)", dockerfile.read_text())
    assert work_dir and worker["read_only"] is True
    mounts = [m.split(":")[1] for m in worker["volumes"]] + [t.split(":")[0] for t in worker.get("tmpfs", [])]
    assert work_dir.group(1) in mounts, f"{work_dir.group(1)} is not writable in the worker"
    # The worker answers the app healthcheck (/health/ready on :8000 of its own small app).
    assert worker["healthcheck"] == services["playback"]["healthcheck"]
    observability = ["prometheus", "alertmanager", "postgres-exporter", "redis-exporter", "jaeger", "grafana"]
    assert [n for n, s in services.items() if s.get("profiles")] == observability
    assert all(services[name]["profiles"] == ["observability"] for name in observability)
    scrape = yaml.safe_load((COMPOSE_DIR / "prometheus" / "prometheus.yml").read_text())
    names = scrape["scrape_configs"][0]["dns_sd_configs"][0]["names"]
    assert set(names) == {*SERVICES, "playback-worker"}
    assert "./prometheus/prometheus.yml:/etc/prometheus/prometheus.yml:ro" in services["prometheus"]["volumes"]
    datasource = yaml.safe_load((COMPOSE_DIR / "grafana/provisioning/datasources/prometheus.yaml").read_text())
    assert datasource["datasources"][0]["url"] == "http://prometheus:9090"
    gateway = services["gateway"]
    assert {str(p).rsplit(":", 1)[-1] for p in gateway["ports"]} == {"8080", "8443"}
    assert set(gateway["secrets"]) == {"gateway_tls_cert", "gateway_tls_key"}


# --- nginx -t on the config the image renders --------------------------------------------------


ENVSH = ROOT / "infra" / "nginx" / "16-trusted-proxies.envsh"


def sourced_envsh(values: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """What the image's entrypoint adds to the environment by sourcing 16-trusted-proxies.envsh."""
    return subprocess.run(["sh", "-c", f'. "{ENVSH}" && printf %s "$SET_REAL_IP_FROM"'],
                          env={"PATH": "/usr/bin:/bin", **values}, capture_output=True, text=True, check=False)


def image_prefix(tmp_path: Path, values: dict[str, str]) -> Path:
    """/etc/nginx as the gateway image has it, in tmp_path, with the template rendered by envsubst
    rules after the entrypoint's envsh; returns the main config. Paths only the container has are
    pointed at local stand-ins."""
    if shutil.which("nginx") is None and not Path("/usr/sbin/nginx").exists():
        pytest.skip("nginx is not installed")
    cert = ensure_dev_cert(tmp_path / "certs")
    derived = sourced_envsh(values)
    assert derived.returncode == 0, derived.stderr
    local = {**values, "SET_REAL_IP_FROM": derived.stdout, "TLS_CERT": str(cert.cert), "TLS_KEY": str(cert.key),
             "CACHE_DIR": str(tmp_path / "cache"), "ACCESS_LOG": str(tmp_path / "access.log")}
    rendered = nginx.substitute(nginx.TEMPLATE.read_text(), local)
    assert "${" not in rendered, "a placeholder without a value"
    directives = re.findall(r"set_real_ip_from [0-9A-Fa-f.:/]+;", rendered)
    assert len(directives) == len(values["TRUSTED_PROXIES"].replace(",", " ").split())
    if nginx.nginx_version() < (1, 27, 3):
        # This nginx predates `resolve` (the image has it): check the rest with local addresses.
        rendered = re.sub(r"server [a-z0-9.-]+:(\d+) resolve ", r"server 127.0.0.1:\1 ", rendered)
    prefix = tmp_path / "etc-nginx"
    nginx.install_static_files(prefix)
    (prefix / "conf.d").mkdir()
    (prefix / "conf.d" / "gateway.conf").write_text(rendered)
    mime = Path("/etc/nginx/mime.types")
    (prefix / "mime.types").write_text(mime.read_text() if mime.exists() else "types { text/html html; }\n")
    main = prefix / "nginx.conf"
    shutil.copyfile(ROOT / "infra" / "nginx" / "nginx.conf", main)
    return main


def nginx_test(main: Path) -> None:
    result = subprocess.run([nginx.nginx_binary(), "-t", "-p", str(main.parent), "-c", str(main)],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr


def test_compose_gateway_config_passes_nginx_t(tmp_path: Path) -> None:
    env = {k: interpolate(str(v), env_example()) for k, v in compose()["services"]["gateway"]["environment"].items()}
    nginx_test(image_prefix(tmp_path, env))


def test_every_target_enforces_the_same_edge_limits() -> None:
    """One definition (gateway.limits): compose, the k8s base, the embedded gateway and the nginx
    template all carry its values, so a change there cannot leave one target behind."""
    expected = EDGE_LIMITS.template_values()
    compose_env = {k: interpolate(str(v), env_example())
                   for k, v in compose()["services"]["gateway"]["environment"].items()}
    assert {k: compose_env[k] for k in expected} == expected
    kustomization = yaml.safe_load((ROOT / "k8s" / "base" / "gateway" / "kustomization.yaml").read_text())
    literals = dict(item.split("=", 1) for generator in kustomization["configMapGenerator"]
                    for item in generator.get("literals", []))
    assert {k: literals[k] for k in expected} == expected
    embedded = GatewaySettings()
    assert (embedded.api_rate_limit, embedded.api_burst, embedded.login_rate_limit, embedded.login_burst) == (
        EDGE_LIMITS.api_rate_limit, EDGE_LIMITS.api_burst, EDGE_LIMITS.login_rate_limit, EDGE_LIMITS.login_burst)
    template = (ROOT / "infra" / "nginx" / "gateway.conf.template").read_text()
    assert "burst=200" not in template and "burst=${API_BURST}" in template


def test_trusted_proxies_is_a_list_with_one_set_real_ip_from_each(tmp_path: Path) -> None:
    """The image (envsh) and `make up` (gateway.nginx) turn the same list into the same lines."""
    listed = "10.0.0.0/8, 192.168.1.10,2001:db8::/32"
    derived = sourced_envsh({"TRUSTED_PROXIES": listed})
    expected = "set_real_ip_from 10.0.0.0/8; set_real_ip_from 192.168.1.10; set_real_ip_from 2001:db8::/32; "
    assert derived.returncode == 0 and derived.stdout == expected
    assert nginx.real_ip_from(["10.0.0.0/8", "192.168.1.10", "2001:db8::/32"]) == expected.replace(
        "192.168.1.10;", "192.168.1.10/32;")
    assert sourced_envsh({"TRUSTED_PROXIES": ""}).stdout == "", "empty: nobody's X-Forwarded-For is believed"
    # Anything else fails the container's start instead of reaching nginx.conf.
    for bad in ("10.0.0.0/8; include /etc/passwd", "*", "lb.example.com"):
        refused = sourced_envsh({"TRUSTED_PROXIES": bad})
        assert refused.returncode != 0 and "TRUSTED_PROXIES" in refused.stderr, bad
    env = {k: interpolate(str(v), env_example()) for k, v in compose()["services"]["gateway"]["environment"].items()}
    nginx_test(image_prefix(tmp_path, {**env, "TRUSTED_PROXIES": listed}))


@pytest.mark.parametrize("overlay", ["dev", "prod"])
def test_k8s_gateway_config_passes_nginx_t(tmp_path: Path, overlay: str) -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed")
    out = subprocess.run([kubectl, "kustomize", str(ROOT / "k8s" / "overlays" / overlay)], capture_output=True,
                         text=True, timeout=60, check=True).stdout
    docs = [d for d in yaml.safe_load_all(out) if d]
    config = next(d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"].startswith("gateway-config"))
    # The resolver's name resolves inside the cluster only (nginx looks it up at start).
    assert config["data"]["RESOLVER"] == "kube-dns.kube-system.svc.cluster.local"
    values = {**config["data"], "SECURE_LINK_SECRET": "from-the-secret", "RESOLVER": "127.0.0.1"}
    nginx_test(image_prefix(tmp_path, values))
