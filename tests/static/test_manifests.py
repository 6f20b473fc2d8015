"""Static checks of the deployment files: Dockerfiles, infra/compose and both kustomize overlays.

No Docker engine or cluster is needed: YAML is read with PyYAML and the overlays are rendered with
`kubectl kustomize` (offline). Each test names the property it protects, so a failure says what
broke, not just that something changed.
"""

from __future__ import annotations

import fnmatch
import functools
import itertools
import re
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

# --import-mode=importlib does not put test folders on sys.path; the kit has a unique name.
sys.path.insert(0, str(Path(__file__).parent))

from compose_kit import COMPOSE_DIR, compose, env_example

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ("auth", "catalog", "billing", "playback")
DEPLOYABLES = (*SERVICES, "gateway")
NAMESPACE = "triple-academy"
OVERLAYS = ("dev", "prod")
NGINX_TEMPLATE = ROOT / "infra" / "nginx" / "gateway.conf.template"

# `${VAR}`, `${VAR:-default}`, `${VAR:?message}` (compose interpolation).
REF = re.compile(r"\$\{([A-Z][A-Z0-9_]*)(?:(:?[-?])([^}]*))?\}")
SECRET_NAME = re.compile(
    r"(SECRET|PASSWORD|_PASS|API_KEY|PRIVATE_KEY|SECRET_ACCESS_KEY|SERVICE_CLIENTS|REDISCLI_AUTH)$")
URL_PASSWORD = re.compile(r"://[^/@\s:]*:([^@]*)@")


# --- helpers -------------------------------------------------------------------------------------


def is_ref(value: str) -> bool:
    """A bare ${VAR} or ${VAR:?message}; a ${VAR:-default} would smuggle a literal secret in."""
    match = REF.fullmatch(value)
    return match is not None and match.group(2) in (None, ":?", "?")


def literal_secrets(key: str, value: str) -> list[str]:
    """Secret values written into a compose file rather than referenced as ${VAR}."""
    problems = [f"{key}: password in URL" for pw in URL_PASSWORD.findall(value) if not is_ref(pw)]
    if "://" in value or not SECRET_NAME.search(key):
        return problems
    if key.endswith("SERVICE_CLIENTS"):
        pairs = [pair.split(":", 1) for pair in value.split(",")]
        if not all(len(pair) == 2 and is_ref(pair[1]) for pair in pairs):
            problems.append(f"{key}: literal client secret")
    elif not is_ref(value):
        problems.append(f"{key}: literal value")
    return problems


def command_secrets(args: list[str]) -> list[str]:
    """Secrets passed on a command line: `--requirepass X`, `--role schema=role:password`, URLs."""
    problems = []
    for flag, arg in zip(["", *args], args, strict=False):
        if flag == "--requirepass" and not is_ref(arg):
            problems.append("--requirepass: literal value")
        elif flag == "--role" and not is_ref(arg.partition(":")[2]):
            problems.append(f"--role {arg.partition(':')[0]}: literal password")
        problems += literal_secrets("arg", arg)
    return problems


def env_dict(env: dict[str, Any] | list[str] | None) -> dict[str, str]:
    if env is None:
        return {}
    if isinstance(env, list):
        return dict(item.split("=", 1) for item in env)
    return {k: "" if v is None else str(v) for k, v in env.items()}


# Placeholders the image's entrypoint derives from another variable (infra/nginx/*.envsh).
ENTRYPOINT_DERIVED = {"SET_REAL_IP_FROM": "TRUSTED_PROXIES"}


def template_placeholders() -> set[str]:
    """The variables a deployment must set for the template: derived ones stand for their source."""
    found = set(re.findall(r"\$\{([A-Z][A-Z0-9_]*)\}", NGINX_TEMPLATE.read_text()))
    return {ENTRYPOINT_DERIVED.get(name, name) for name in found}


def selects(selector: dict[str, Any] | None, labels: dict[str, str]) -> bool:
    """Kubernetes label-selector semantics (matchLabels + matchExpressions); {} selects all."""
    selector = selector or {}
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values", [])
        ok = {"In": key in labels and labels[key] in values,
              "NotIn": key not in labels or labels[key] not in values,
              "Exists": key in labels, "DoesNotExist": key not in labels}[op]
        if not ok:
            return False
    return True


# --- Dockerfiles ---------------------------------------------------------------------------------


def instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    joined, out = "", []
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        joined += line[:-1] + " " if line.endswith("\\") else line
        if not line.endswith("\\"):
            word, _, rest = joined.partition(" ")
            out.append((word.upper(), rest.strip()))
            joined = ""
    return out


def final_stage(instrs: list[tuple[str, str]]) -> list[tuple[str, str]]:
    last_from = max(i for i, (word, _) in enumerate(instrs) if word == "FROM")
    return instrs[last_from:]


def workspace_members() -> list[str]:
    globs = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["uv"]["workspace"]["members"]
    return sorted(str(p.parent.relative_to(ROOT)) for g in globs for p in ROOT.glob(f"{g}/pyproject.toml"))


def dockerignored(rel_path: str) -> bool:
    patterns = [line.strip().strip("/") for line in (ROOT / ".dockerignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    parts = rel_path.split("/")
    prefixes = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
    for pattern in patterns:
        bare = pattern.removeprefix("**/")
        for prefix in prefixes:
            if fnmatch.fnmatchcase(prefix, pattern):
                return True
            if pattern.startswith("**/") and fnmatch.fnmatchcase(prefix.rsplit("/", 1)[-1], bare):
                return True
    return False


def test_dockerignore_keeps_local_state_out_but_build_inputs_in() -> None:
    for local in (".git", ".venv", "var/data/auth.db", "libs/common/src/common/__pycache__",
                  ".pytest_cache", ".ruff_cache", ".mypy_cache", "infra/compose/.env"):
        assert dockerignored(local), f"{local} would be sent to the Docker daemon"
    for needed in ("uv.lock", "pyproject.toml", "infra/nginx/nginx.conf", "services/auth/migrations/env.py",
                   "services/playback/media", "libs/common/src/common/app.py"):
        assert not dockerignored(needed), f".dockerignore drops {needed}, which an image needs"


@pytest.mark.parametrize("service", SERVICES)
def test_python_dockerfile(service: str) -> None:
    """One recipe for every Python service, parametrised by SERVICE; compose builds each from it."""
    path = ROOT / "services" / "Dockerfile"
    build = compose()["services"][service]["build"]
    assert build["dockerfile"] == "services/Dockerfile" and build["args"]["SERVICE"] == service
    instrs = [(word, args.replace("${SERVICE}", service)) for word, args in instructions(path)]
    froms = [args for word, args in instrs if word == "FROM"]
    assert any(re.match(r"ghcr\.io/astral-sh/uv:\d+\.\d+\.\d+ ", f) for f in froms), "uv image, pinned"
    assert "ARG PYTHON_IMAGE=python:3.11-slim" in path.read_text() or any("python:3.11-slim" in f for f in froms)

    syncs = [args for word, args in instrs if word == "RUN" and "uv sync" in args]
    assert syncs, "dependencies come from `uv sync`"
    for args in syncs:
        for flag in ("--frozen", "--no-dev", f"--package {service}"):
            assert flag in args, f"`uv sync` without {flag}: {args}"

    # uv reads the whole workspace, so every member's pyproject.toml must be in the build stage.
    copied = " ".join(args for word, args in instrs if word == "COPY")
    for member in workspace_members():
        assert f"{member}/pyproject.toml" in copied, f"{member}/pyproject.toml not copied"
    for word, args in instrs:
        if word == "COPY" and "--from" not in args:
            for src in args.split()[:-1]:
                assert (ROOT / src).exists(), f"COPY source {src} does not exist"
                assert not dockerignored(src.rstrip("/")), f"COPY source {src} is in .dockerignore"

    final = final_stage(instrs)
    users = [args for word, args in final if word == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0"), "the image runs as root"
    assert re.fullmatch(r"\d+(:\d+)?", users[-1]), "numeric USER, so runAsNonRoot can be verified"
    assert ("EXPOSE", "8000") in final
    healthchecks = [args for word, args in final if word == "HEALTHCHECK"]
    assert healthchecks and "/health/live" in healthchecks[-1] and "urllib" in healthchecks[-1]
    # Shell form (for SERVICE) with exec, so uvicorn is PID 1 and receives SIGTERM.
    cmd = next(args for word, args in reversed(final) if word == "CMD").replace('"', "").split()
    # All interfaces inside the container: the port is only reachable through its network.
    assert cmd == ["exec", "uvicorn", f"{service}.main:create_app", "--factory", "--host", "0.0.0.0",  # noqa: S104
                   "--port", "8000", "--proxy-headers", "--no-server-header",
                   "--no-access-log"]  # tokens travel in query strings: no raw access log
    env = " ".join(args for word, args in final if word == "ENV").split()
    assert f"SERVICE={service}" in env and f"UVICORN_ROOT_PATH=/api/{service}" in env
    # main.py finds migrations at parents[2]: the service folder must keep its layout in the image.
    assert any(word == "COPY" and args.split()[-1].rstrip("/") == f"/app/services/{service}"
               for word, args in final), "the service folder (with migrations/) is not in the image"
    assert (ROOT / "services" / service / "migrations").is_dir()
    for word, args in instrs:
        if word in ("ENV", "ARG"):
            assert not SECRET_NAME.search(args.split("=")[0].split()[0]), f"secret baked into image: {args}"


def test_gateway_dockerfile() -> None:
    instrs = instructions(ROOT / "services" / "gateway" / "Dockerfile")
    # >= 1.27.3: `server ... resolve` in upstreams (compose and k8s).
    assert ("FROM", "nginx:1.28-alpine") in instrs
    copies = {src: args.split()[-1] for word, args in instrs if word == "COPY" for src in args.split()[:-1]}
    assert copies.get("infra/nginx/nginx.conf") == "/etc/nginx/nginx.conf"
    # nginx.conf includes triple/*.conf (relative to /etc/nginx), and the image entrypoint renders
    # /etc/nginx/templates/*.template into conf.d.
    for name in ("http.conf", "edge_headers.conf", "api_headers.conf", "web_types.conf", "ffdhe2048.pem"):
        assert copies.get(f"infra/nginx/{name}") == "/etc/nginx/triple/", name
        assert (ROOT / "infra" / "nginx" / name).exists()
    assert copies.get("infra/nginx/gateway.conf.template", "").startswith("/etc/nginx/templates/")
    # Sourced (executable *.envsh) by the entrypoint before 20-envsubst-on-templates.sh.
    envsh = next(args.split() for word, args in instrs if word == "COPY" and ".envsh" in args)
    assert envsh[0] == "--chmod=0755" and envsh[-1] == "/docker-entrypoint.d/16-trusted-proxies.envsh"
    assert (ROOT / envsh[1]).exists() and envsh[-1].rsplit("/", 1)[1] < "20-envsubst-on-templates.sh"
    users = [args for word, args in instrs if word == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0", "nginx")
    assert any(word == "HEALTHCHECK" and "/health/live" in args for word, args in instrs)
    assert ("EXPOSE", "8080 8443") in instrs
    env = " ".join(args for word, args in instrs if word == "ENV")
    assert "SECURE_LINK_SECRET" not in env, "the secure_link secret is a run-time value"
    assert "TLS_KEY" not in env, "the TLS key is a run-time file"


# --- YAML everywhere -----------------------------------------------------------------------------


def yaml_files() -> list[Path]:
    return sorted([*ROOT.glob("k8s/**/*.yaml"), *COMPOSE_DIR.glob("*.yaml")])


@pytest.mark.parametrize("path", yaml_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_yaml_parses(path: Path) -> None:
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    assert docs, f"{path} is empty"


# --- compose -------------------------------------------------------------------------------------


def test_compose_infrastructure_versions() -> None:
    services = compose()["services"]
    assert services["postgres"]["image"] == "postgres:15"
    assert services["redis"]["image"] == "redis:7"
    version = re.match(r"rabbitmq:(\d+)\.(\d+)", services["rabbitmq"]["image"])
    assert version, services["rabbitmq"]["image"]
    major, minor = map(int, version.groups())
    assert (major, minor) >= (3, 10), "quorum queues need RabbitMQ >= 3.10"
    for name in ("postgres", "redis", "rabbitmq"):
        assert services[name].get("healthcheck"), f"{name} has no healthcheck for depends_on to wait on"


@pytest.mark.parametrize("service", SERVICES)
def test_compose_app_service(service: str) -> None:
    services = compose()["services"]
    app, migrate = services[service], services[f"migrate-{service}"]
    assert "/health/ready" in " ".join(app["healthcheck"]["test"])
    assert app["depends_on"][f"migrate-{service}"]["condition"] == "service_completed_successfully"
    assert migrate["command"] == ["python", "-m", service, "migrate"]
    assert migrate["depends_on"]["db-init"]["condition"] == "service_completed_successfully"
    assert migrate["depends_on"]["rabbitmq"]["condition"] == "service_healthy"
    assert migrate["environment"] == app["environment"], "migrations must run with the app's settings"
    assert migrate["image"] == app["image"]
    for container in (app, migrate):
        assert container["read_only"] is True
        assert "/tmp" in container["tmpfs"]
        assert container["cap_drop"] == ["ALL"]
        assert "no-new-privileges:true" in container["security_opt"]
        assert "ports" not in container, "only the gateway is published"
    env = env_dict(app["environment"])
    prefix = service.upper()
    for key in ("DATABASE_URL", "REDIS_URL", "BROKER_URL", "AUTH_URL", "SERVICE_CLIENT_SECRET"):
        assert f"{prefix}_{key}" in env
    assert "@postgres:5432/triple" in env[f"{prefix}_DATABASE_URL"]
    assert env[f"{prefix}_DATABASE_URL"].startswith(f"postgresql+psycopg://triple_{service}:")


def test_compose_bootstraps_one_role_per_service() -> None:
    db_init = compose()["services"]["db-init"]
    assert db_init["depends_on"]["postgres"]["condition"] == "service_healthy"
    args = db_init["command"]
    assert args[:3] == ["python", "-m", "common.pgbootstrap"]
    specs = [arg for flag, arg in itertools.pairwise(args) if flag == "--role"]
    roles = {spec.split("=")[0]: spec.split("=")[1].split(":")[0] for spec in specs}
    assert roles == {s: f"triple_{s}" for s in SERVICES}


def test_compose_gateway() -> None:
    services = compose()["services"]
    gateway = services["gateway"]
    assert any(str(p).endswith(":8080") for p in gateway["ports"]), "the gateway publishes 8080"
    assert all(s in gateway["depends_on"] for s in SERVICES)
    env = env_dict(gateway["environment"])
    missing = template_placeholders() - set(env)
    assert not missing, f"gateway.conf.template placeholders with no value in compose: {sorted(missing)}"
    # secure_link needs the files playback writes: the same volume, at MEDIA_ROOT / PLAYBACK_MEDIA_ROOT.
    media_root = env_dict(services["playback"]["environment"])["PLAYBACK_MEDIA_ROOT"]
    assert f"media:{env['MEDIA_ROOT']}:ro" in gateway["volumes"]
    assert f"media:{media_root}" in services["playback"]["volumes"]
    assert env["SECURE_LINK_SECRET"] == env_dict(services["playback"]["environment"])[
        "PLAYBACK_SECURE_LINK_SECRET"], "gateway and playback must share the secure_link secret"
    assert gateway["read_only"] is True and gateway["cap_drop"] == ["ALL"]


def test_compose_has_no_literal_secrets() -> None:
    problems = []
    for name, svc in compose()["services"].items():
        for key, value in env_dict(svc.get("environment")).items():
            problems += [f"{name}: {p}" for p in literal_secrets(key, value)]
        if isinstance(svc.get("command"), list):
            problems += [f"{name}: {p}" for p in command_secrets(svc["command"])]
    assert not problems


def test_secret_detectors_flag_literals() -> None:
    """The detectors above must fail on what they guard against, or the compose test proves nothing."""
    assert literal_secrets("AUTH_DATABASE_URL", "postgresql://u:hunter2@db/x")
    assert literal_secrets("AUTH_SERVICE_CLIENTS", "catalog:${A},billing:hunter2")
    assert literal_secrets("BILLING_STRIPE_API_KEY", "sk_live_123")
    assert command_secrets(["redis-server", "--requirepass", "hunter2"])
    assert command_secrets(["--role", "auth=triple_auth:hunter2"])
    assert literal_secrets("AUTH_DATABASE_URL", "postgresql://u:${PW:-hunter2}@db/x")
    assert not literal_secrets("AUTH_DATABASE_URL", "postgresql://u:${PW:?set}@db/x")
    assert not literal_secrets("AUTH_SERVICE_CLIENTS", "catalog:${A},billing:${B}")


def test_env_example_defines_every_required_variable_with_placeholders() -> None:
    lines = (COMPOSE_DIR / "compose.yaml").read_text().splitlines()
    text = "\n".join(line for line in lines if not line.lstrip().startswith("#"))
    required = {m.group(1) for m in REF.finditer(text) if m.group(2) in (None, ":?", "?")}
    example = env_example()
    assert not required - set(example), f"missing from .env.example: {sorted(required - set(example))}"
    for key, value in example.items():
        if SECRET_NAME.search(key):
            assert "change-me" in value, f"{key} in .env.example must be an obvious placeholder"
    ignored = (COMPOSE_DIR / ".gitignore").read_text().split()
    assert ".env" in ignored and "secrets/" in ignored


# --- kustomize -----------------------------------------------------------------------------------


@functools.cache
def render(overlay: str) -> list[dict[str, Any]]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed: the kustomize overlays cannot be rendered here")
    result = subprocess.run([kubectl, "kustomize", str(ROOT / "k8s" / "overlays" / overlay)],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    return [d for d in yaml.safe_load_all(result.stdout) if d]


def objects(overlay: str, kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in render(overlay) if d["kind"] == kind}


def workloads(overlay: str) -> Iterator[dict[str, Any]]:
    yield from objects(overlay, "Deployment").values()
    yield from objects(overlay, "Job").values()


def migrate_jobs(overlay: str) -> dict[str, dict[str, Any]]:
    """Each service's migration Job, found by its labels (its name carries the release in prod)."""
    jobs = {}
    for job in objects(overlay, "Job").values():
        labels = job["metadata"].get("labels", {})
        if labels.get("app.kubernetes.io/component") == "migrate":
            jobs[labels["app.kubernetes.io/name"]] = job
    return jobs


def pod(workload: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = workload["spec"]["template"]["spec"]
    return spec


def pod_labels(overlay: str, name: str) -> dict[str, str]:
    labels: dict[str, str] = objects(overlay, "Deployment")[name]["spec"]["template"]["metadata"]["labels"]
    return labels


def env_keys(overlay: str, workload: dict[str, Any]) -> dict[str, str | None]:
    """Every variable a workload's first container gets: ConfigMap values, Secret keys (value None)."""
    configmaps, secrets = objects(overlay, "ConfigMap"), objects(overlay, "Secret")
    external = {e["spec"]["target"]["name"]: e for e in objects(overlay, "ExternalSecret").values()}
    keys: dict[str, str | None] = {}
    for source in pod(workload)["containers"][0].get("envFrom", []):
        if "configMapRef" in source:
            keys.update(configmaps[source["configMapRef"]["name"]]["data"])
        else:
            name = source["secretRef"]["name"]
            if name in secrets:
                keys.update(dict.fromkeys({**secrets[name].get("data", {}), **secrets[name].get("stringData", {})}))
            else:
                keys.update(dict.fromkeys(d["secretKey"] for d in external[name]["spec"]["data"]))
    return keys


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_service_has_its_objects(overlay: str) -> None:
    for kind in ("Deployment", "Service", "PodDisruptionBudget", "HorizontalPodAutoscaler"):
        missing = set(DEPLOYABLES) - set(objects(overlay, kind))
        assert not missing, f"{overlay}: no {kind} for {sorted(missing)}"
    jobs = migrate_jobs(overlay)
    for service in SERVICES:
        job = jobs[service]
        assert pod(job)["containers"][0]["command"] == ["python", "-m", service, "migrate"]
        assert pod(job)["restartPolicy"] == "Never"
    for doc in render(overlay):
        if doc["kind"] != "Namespace":
            assert doc["metadata"].get("namespace") == NAMESPACE, f"{doc['kind']}/{doc['metadata']['name']}"
    namespace = objects(overlay, "Namespace")[NAMESPACE]
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_pods_are_hardened(overlay: str) -> None:
    for workload in workloads(overlay):
        name, spec = workload["metadata"]["name"], pod(workload)
        pod_ctx = spec.get("securityContext", {})
        assert pod_ctx.get("seccompProfile", {}).get("type") == "RuntimeDefault", name
        assert spec.get("automountServiceAccountToken") is False, name
        for container in [*spec.get("initContainers", []), *spec["containers"]]:
            ctx, where = container.get("securityContext", {}), f"{name}/{container['name']}"
            assert ctx.get("runAsNonRoot", pod_ctx.get("runAsNonRoot")) is True, where
            assert ctx.get("runAsUser", pod_ctx.get("runAsUser", 1)) != 0, where
            assert ctx.get("readOnlyRootFilesystem") is True, where
            assert ctx.get("allowPrivilegeEscalation") is False, where
            assert ctx.get("capabilities", {}).get("drop") == ["ALL"], where
            assert not ctx.get("capabilities", {}).get("add"), where
            for bound in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(container.get("resources", {}).get(bound, {})), where


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_deployments_probe_the_health_endpoints(overlay: str) -> None:
    for name, deployment in objects(overlay, "Deployment").items():
        container = pod(deployment)["containers"][0]
        ports = {p["name"] for p in container["ports"]} | {p["containerPort"] for p in container["ports"]}
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            assert container.get(probe, {}).get("httpGet", {}).get("port") in ports, f"{name}: {probe}"
        assert container["livenessProbe"]["httpGet"]["path"] == "/health/live", name
        # The edge has no /health/ready of its own; every service does.
        ready = "/health/live" if name == "gateway" else "/health/ready"
        assert container["readinessProbe"]["httpGet"]["path"] == ready, name
        if name in SERVICES:
            annotations = deployment["spec"]["template"]["metadata"]["annotations"]
            assert annotations["prometheus.io/scrape"] == "true"
            assert annotations["prometheus.io/path"] == "/metrics"
            assert annotations["prometheus.io/port"] == "8000"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_services_pdbs_hpas_and_spread_select_the_serving_pods(overlay: str) -> None:
    jobs = migrate_jobs(overlay)
    for name in DEPLOYABLES:
        labels = pod_labels(overlay, name)
        service = objects(overlay, "Service")[name]
        assert selects({"matchLabels": service["spec"]["selector"]}, labels), name
        if name in SERVICES:  # migration pods must never receive traffic
            job_labels = jobs[name]["spec"]["template"]["metadata"]["labels"]
            assert not selects({"matchLabels": service["spec"]["selector"]}, job_labels), name
        pdb = objects(overlay, "PodDisruptionBudget")[name]
        assert pdb["spec"]["minAvailable"] == 1 and selects(pdb["spec"]["selector"], labels), name
        hpa = objects(overlay, "HorizontalPodAutoscaler")[name]["spec"]
        assert hpa["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": name}
        assert hpa["metrics"][0]["resource"]["name"] == "cpu"
        assert hpa["metrics"][0]["resource"]["target"]["averageUtilization"] == 70
        spread = pod(objects(overlay, "Deployment")[name])["topologySpreadConstraints"]
        assert spread and all(selects(c["labelSelector"], labels) for c in spread), name


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_services_get_their_settings_from_a_configmap_and_a_secret(overlay: str) -> None:
    jobs = migrate_jobs(overlay)
    for service in SERVICES:
        deployment = objects(overlay, "Deployment")[service]
        env_from = pod(deployment)["containers"][0]["envFrom"]
        assert sorted(next(iter(s)) for s in env_from) == ["configMapRef", "secretRef"]
        assert pod(jobs[service])["containers"][0]["envFrom"] == env_from, \
            "migrations must run with the app's settings"
        keys, prefix = env_keys(overlay, deployment), service.upper()
        for key in ("DATABASE_URL", "REDIS_URL", "BROKER_URL", "AUTH_URL", "CATALOG_URL", "PUBLIC_BASE_URL"):
            assert f"{prefix}_{key}" in keys, f"{overlay}/{service}: no {prefix}_{key}"
        # Credentials belong in the Secret, never in the ConfigMap.
        for key in ("DATABASE_URL", "REDIS_URL", "BROKER_URL", "SERVICE_CLIENT_SECRET"):
            assert keys.get(f"{prefix}_{key}", "x") is None, f"{overlay}/{service}: {key} not secret"
        assert keys["ENVIRONMENT"] == ("production" if overlay == "prod" else "development")
    assert "AUTH_SERVICE_CLIENTS" in env_keys(overlay, objects(overlay, "Deployment")["auth"])
    assert "BILLING_STRIPE_WEBHOOK_SECRET" in env_keys(overlay, objects(overlay, "Deployment")["billing"])
    playback = env_keys(overlay, objects(overlay, "Deployment")["playback"])
    assert "PLAYBACK_SECURE_LINK_SECRET" in playback


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_public_urls_name_the_tls_edge(overlay: str) -> None:
    """Links the services hand out (emails, checkout returns, media) point at the HTTPS listener:
    plain HTTP only redirects."""
    https_port = env_keys(overlay, objects(overlay, "Deployment")["gateway"])["HTTPS_PORT"]
    urls = {key: value for config in objects(overlay, "ConfigMap").values()
            for key, value in (config.get("data") or {}).items()
            if key.endswith(("_PUBLIC_BASE_URL", "_MEDIA_BASE_URL"))}
    assert {f"{s.upper()}_PUBLIC_BASE_URL" for s in SERVICES} <= set(urls)
    for key, url in urls.items():
        assert url.startswith("https://"), (key, url)
        port = re.match(r"https://[^/:]+(?::(\d+))?", url).group(1) or "443"  # type: ignore[union-attr]
        assert port == https_port, (key, url, https_port)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_gateway_config_fills_every_template_placeholder(overlay: str) -> None:
    keys = env_keys(overlay, objects(overlay, "Deployment")["gateway"])
    missing = template_placeholders() - set(keys)
    assert not missing, f"{overlay}: gateway.conf.template placeholders without a value: {sorted(missing)}"
    # Upstream = the headless Service (one address per ready pod), re-resolved: least_conn per pod.
    services = objects(overlay, "Service")
    for service in SERVICES:
        servers = keys[f"{service.upper()}_SERVERS"] or ""
        assert f"server {service}-headless.{NAMESPACE}.svc.cluster.local:8000 resolve max_fails=" in servers
        headless = services[f"{service}-headless"]["spec"]
        assert headless["clusterIP"] == "None"
        assert selects({"matchLabels": headless["selector"]}, pod_labels(overlay, service))
        assert headless["selector"] == services[service]["spec"]["selector"], "same pods as the ClusterIP"
    gateway = pod(objects(overlay, "Deployment")["gateway"])
    mounts = {m["mountPath"]: m for m in gateway["containers"][0]["volumeMounts"]}
    assert keys["MEDIA_ROOT"] in mounts and "/etc/nginx/conf.d" in mounts and "/tmp" in mounts
    assert str(keys["CACHE_DIR"]).startswith("/var/cache/nginx") and "/var/cache/nginx" in mounts
    # TLS ends in nginx: the certificate's Secret is mounted where TLS_CERT/TLS_KEY point.
    tls_dir = str(Path(str(keys["TLS_CERT"])).parent)
    assert Path(str(keys["TLS_KEY"])).parent == Path(tls_dir) and mounts[tls_dir]["readOnly"] is True
    volume = next(v for v in gateway["volumes"] if v["name"] == mounts[tls_dir]["name"])
    certificate = objects(overlay, "Certificate")["gateway-tls"]["spec"]
    assert volume["secret"]["secretName"] == certificate["secretName"]
    assert {p["containerPort"] for p in gateway["containers"][0]["ports"]} == {8080, 8443}
    assert {p["port"] for p in services["gateway"]["spec"]["ports"]} == {80, 443}


# NetworkPolicy reachability: evaluated from the rendered policies, not from their names.

ALLOWED_CALLS = {("gateway", s) for s in SERVICES} | {(s, "auth") for s in ("catalog", "billing", "playback")} \
    | {("billing", "catalog"), ("playback", "catalog")}


def policy_allows(overlay: str, direction: str, subject: dict[str, str], peer: dict[str, str],
                  port: int, peer_namespace: str = NAMESPACE) -> bool:
    policies = [p for p in objects(overlay, "NetworkPolicy").values()
                if direction in p["spec"]["policyTypes"] and selects(p["spec"]["podSelector"], subject)]
    if not policies:
        return True  # not isolated in this direction
    field, peers_key = ("ingress", "from") if direction == "Ingress" else ("egress", "to")
    namespace_labels = {"kubernetes.io/metadata.name": peer_namespace}
    for policy in policies:
        for rule in policy["spec"].get(field, []):
            ports = rule.get("ports")
            if ports and not any(p.get("port") == port for p in ports):
                continue
            peers = rule.get(peers_key)
            if not peers:
                return True
            for p in peers:
                if "namespaceSelector" in p:
                    in_ns = selects(p["namespaceSelector"], namespace_labels)
                else:
                    in_ns = peer_namespace == NAMESPACE
                if "ipBlock" not in p and in_ns and selects(p.get("podSelector"), peer):
                    return True
    return False


def can_call(overlay: str, source: dict[str, str], target: dict[str, str], port: int) -> bool:
    return (policy_allows(overlay, "Egress", source, target, port)
            and policy_allows(overlay, "Ingress", target, source, port))


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_network_policies_allow_exactly_the_designed_calls(overlay: str) -> None:
    default_deny = [p for p in objects(overlay, "NetworkPolicy").values()
                    if p["spec"]["podSelector"] == {} and set(p["spec"]["policyTypes"]) == {"Ingress", "Egress"}
                    and not p["spec"].get("ingress") and not p["spec"].get("egress")]
    assert default_deny, "no default-deny NetworkPolicy"
    labels = {name: pod_labels(overlay, name) for name in DEPLOYABLES}
    for source in DEPLOYABLES:
        for target in SERVICES:
            if source != target:
                expected = (source, target) in ALLOWED_CALLS
                assert can_call(overlay, labels[source], labels[target], 8000) is expected, (source, target)
    stranger = {"app": "something-else"}
    assert policy_allows(overlay, "Ingress", labels["gateway"], stranger, 8080), "the edge is unreachable"
    assert policy_allows(overlay, "Ingress", labels["gateway"], stranger, 8443), "the TLS edge is unreachable"
    assert not can_call(overlay, stranger, labels["billing"], 8000)
    for service in SERVICES:
        migrate = migrate_jobs(overlay)[service]["spec"]["template"]["metadata"]["labels"]
        for port in (5432, 5672):
            assert policy_allows(overlay, "Egress", labels[service], {"app": "postgres"}, port), service
            assert policy_allows(overlay, "Egress", migrate, {"app": "postgres"}, port), f"{service}-migrate"
        assert policy_allows(overlay, "Egress", labels[service], {"app": "redis"}, 6379), service
        dns = {"k8s-app": "kube-dns"}
        assert policy_allows(overlay, "Egress", labels[service], dns, 53, peer_namespace="kube-system")
    assert not policy_allows(overlay, "Egress", labels["gateway"], {"app": "postgres"}, 5432)


# --- overlay specifics ---------------------------------------------------------------------------


def test_dev_runs_one_replica_of_local_images() -> None:
    for name, deployment in objects("dev", "Deployment").items():
        assert objects("dev", "HorizontalPodAutoscaler")[name]["spec"]["minReplicas"] == 1, name
        assert pod(deployment)["containers"][0]["image"] == f"triple-academy/{name}:dev"
    # Without a key file playback generates one per pod, so it must not scale out.
    playback = env_keys("dev", objects("dev", "Deployment")["playback"])
    assert "PLAYBACK_TOKEN_PRIVATE_KEY_FILE" not in playback
    assert str(playback["PLAYBACK_GENERATED_TOKEN_KEY_FILE"]).startswith("/tmp/")
    assert objects("dev", "HorizontalPodAutoscaler")["playback"]["spec"]["maxReplicas"] == 1


def test_prod_runs_three_replicas_of_pinned_images() -> None:
    for name in DEPLOYABLES:
        assert objects("prod", "HorizontalPodAutoscaler")[name]["spec"]["minReplicas"] >= 3, name
    for workload in workloads("prod"):
        spec = pod(workload)
        for container in [*spec.get("initContainers", []), *spec["containers"]]:
            image = container["image"]
            tag = image.rsplit("@", 1)[-1] if "@" in image else image.rsplit("/", 1)[-1].partition(":")[2]
            assert tag and tag != "latest", f"{image} is not pinned"
            assert "/" in image.split("/", 1)[0] or "." in image.split("/", 1)[0], f"{image}: no registry"


def test_prod_has_no_literal_secrets() -> None:
    for name, secret in objects("prod", "Secret").items():
        assert not secret.get("data") and not secret.get("stringData"), f"literal Secret {name} in prod"
    targets = {e["spec"]["target"]["name"]: e for e in objects("prod", "ExternalSecret").values()}
    # cert-manager writes the certificates' Secrets (keys generated in the cluster, never in git).
    certificates = {c["spec"]["secretName"] for c in objects("prod", "Certificate").values()}
    for workload in workloads("prod"):
        spec = pod(workload)
        refs = {s["secretRef"]["name"] for c in spec["containers"] for s in c.get("envFrom", []) if "secretRef" in s}
        refs |= {v["secret"]["secretName"] for v in spec.get("volumes", []) if "secret" in v}
        missing = refs - set(targets) - certificates
        assert not missing, f"{workload['metadata']['name']}: no ExternalSecret for {sorted(missing)}"


def test_prod_playback_signs_with_one_mounted_key() -> None:
    deployment = objects("prod", "Deployment")["playback"]
    key_file = Path(str(env_keys("prod", deployment)["PLAYBACK_TOKEN_PRIVATE_KEY_FILE"]))
    container, volumes = pod(deployment)["containers"][0], {v["name"]: v for v in pod(deployment)["volumes"]}
    mount = next(m for m in container["volumeMounts"] if m["mountPath"] == str(key_file.parent))
    secret_name = volumes[mount["name"]]["secret"]["secretName"]
    external = next(e for e in objects("prod", "ExternalSecret").values() if e["spec"]["target"]["name"] == secret_name)
    assert key_file.name in {d["secretKey"] for d in external["spec"]["data"]}


# --- operations: who sets replicas, release order, the transcode worker ---------------------------

# The first phase of the deploy procedure in k8s/README.md: everything but the serving workloads, so
# the new release's migration Jobs (and the configuration they read) run before any new pod starts.
MIGRATION_PHASE_SELECTOR = "app.kubernetes.io/component notin (api,worker,edge)"
K8S_README = ROOT / "k8s" / "README.md"


def autoscaled(overlay: str) -> set[str]:
    """Deployments an HPA or a KEDA ScaledObject (which creates an HPA) scales."""
    targets = {h["spec"]["scaleTargetRef"]["name"] for h in objects(overlay, "HorizontalPodAutoscaler").values()
               if h["spec"]["scaleTargetRef"]["kind"] == "Deployment"}
    return targets | {s["spec"]["scaleTargetRef"]["name"] for s in objects(overlay, "ScaledObject").values()}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_replicas_are_left_to_the_autoscaler(overlay: str) -> None:
    """`kubectl apply -k` would reset every autoscaled Deployment to its `spec.replicas`."""
    scaled = autoscaled(overlay)
    for name, deployment in objects(overlay, "Deployment").items():
        assert name in scaled, f"{overlay}: {name} has no autoscaler (then set replicas, or scale by hand)"
        assert "replicas" not in deployment["spec"], f"{overlay}: {name} sets replicas under an autoscaler"
    hpa_targets = [h["spec"]["scaleTargetRef"]["name"] for h in objects(overlay, "HorizontalPodAutoscaler").values()]
    so_targets = [s["spec"]["scaleTargetRef"]["name"] for s in objects(overlay, "ScaledObject").values()]
    both = hpa_targets + so_targets
    assert len(both) == len(set(both)), f"{overlay}: two autoscalers on one Deployment: {sorted(both)}"


def test_prod_migration_jobs_are_named_after_the_release(tmp_path: Path) -> None:
    """A second release must create new Jobs: a finished Job's pod template cannot be patched."""
    def names(rendered: list[dict[str, Any]]) -> dict[str, str]:
        return {d["metadata"]["labels"]["app.kubernetes.io/name"]: d["metadata"]["name"] for d in rendered
                if d["kind"] == "Job" and d["metadata"]["labels"].get("app.kubernetes.io/component") == "migrate"}

    current = names(render("prod"))
    for service, job in migrate_jobs("prod").items():
        tag = pod(job)["containers"][0]["image"].rsplit(":", 1)[1]
        assert current[service] == f"{service}-migrate-{tag}"
    # The next release: bump every tag in a copy of k8s/ and render again.
    shutil.copytree(ROOT / "k8s", tmp_path / "k8s")
    overlay = tmp_path / "k8s" / "overlays" / "prod" / "kustomization.yaml"
    overlay.write_text(re.sub(r'newTag: "[^"]+"', 'newTag: "0.99.0"', overlay.read_text()))
    result = subprocess.run(["kubectl", "kustomize", str(overlay.parent)], capture_output=True, text=True,
                            timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    following = names([d for d in yaml.safe_load_all(result.stdout) if d])
    assert set(following) == set(SERVICES)
    for service in SERVICES:
        assert following[service] == f"{service}-migrate-0.99.0" != current[service]


def parse_notin(selector: str) -> dict[str, Any]:
    key, values = re.fullmatch(r"(\S+) notin \(([^)]*)\)", selector).groups()  # type: ignore[union-attr]
    return {"matchExpressions": [{"key": key, "operator": "NotIn", "values": values.split(",")}]}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_deploy_procedure_runs_migrations_before_the_rollout(overlay: str) -> None:
    """Phase one of k8s/README.md applies the Jobs with everything they read, and no serving pod."""
    readme = K8S_README.read_text()
    assert f"-l '{MIGRATION_PHASE_SELECTOR}'" in readme
    assert "kubectl wait" in readme and "--for=condition=complete" in readme and "rollout status" in readme
    selector = parse_notin(MIGRATION_PHASE_SELECTOR)
    phase_one = {(d["kind"], d["metadata"]["name"]) for d in render(overlay)
                 if selects(selector, d["metadata"].get("labels", {}))}
    assert not {name for kind, name in phase_one if kind == "Deployment"}, "a serving workload in phase one"
    external = {e["spec"]["target"]["name"]: name for name, e in objects(overlay, "ExternalSecret").items()}
    for service, job in migrate_jobs(overlay).items():
        assert ("Job", job["metadata"]["name"]) in phase_one, service
        for source in pod(job)["containers"][0]["envFrom"]:
            if "configMapRef" in source:
                assert ("ConfigMap", source["configMapRef"]["name"]) in phase_one, service
            else:
                name = source["secretRef"]["name"]
                assert ("Secret", name) in phase_one or ("ExternalSecret", external.get(name)) in phase_one, service
    # Dev images keep their `:dev` tag, so dev Jobs keep their names: delete them before applying.
    assert "kubectl delete job -n triple-academy -l app.kubernetes.io/component=migrate" in readme


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_transcode_worker_finishes_its_encode_and_is_drained_one_at_a_time(overlay: str) -> None:
    from playback.settings import PlaybackSettings

    worker = objects(overlay, "Deployment")["playback-worker"]
    labels = worker["spec"]["template"]["metadata"]["labels"]
    pdbs = [p for p in objects(overlay, "PodDisruptionBudget").values() if selects(p["spec"]["selector"], labels)]
    assert len(pdbs) == 1 and pdbs[0]["spec"].get("maxUnavailable") == 1, "the worker needs its own PDB"
    env = {e["name"]: e["value"] for e in pod(worker)["containers"][0].get("env", [])}
    config = {k: v for k, v in env_keys(overlay, worker).items() if k.startswith("PLAYBACK_") and v is not None}
    settings = PlaybackSettings.model_construct(**{k.removeprefix("PLAYBACK_").lower(): v
                                                   for k, v in {**config, **env}.items()})
    stop_grace = float(settings.worker_stop_grace_seconds)
    assert stop_grace >= float(settings.transcode_timeout_seconds), "a stopped worker would cut an encode short"
    assert pod(worker)["terminationGracePeriodSeconds"] > stop_grace, "the kubelet kills before the worker is done"


def test_prod_worker_scales_on_its_queue_depth() -> None:
    from playback.assets.jobs import queue_names
    from playback.settings import PlaybackSettings

    worker = objects("prod", "Deployment")["playback-worker"]
    assert "playback-worker" not in {h["spec"]["scaleTargetRef"]["name"]
                                     for h in objects("prod", "HorizontalPodAutoscaler").values()}
    scaled = objects("prod", "ScaledObject")["playback-worker"]["spec"]
    assert scaled["scaleTargetRef"]["name"] == "playback-worker"
    [trigger] = scaled["triggers"]
    assert trigger["type"] == "rabbitmq" and trigger["metadata"]["mode"] == "QueueLength"
    prefix = env_keys("prod", worker).get("PLAYBACK_BROKER_QUEUE_PREFIX") or ""
    settings = PlaybackSettings.model_construct(broker_queue_prefix=prefix)
    assert trigger["metadata"]["queueName"] == queue_names(settings)[0], "KEDA watches another queue"
    auth = objects("prod", "TriggerAuthentication")[trigger["authenticationRef"]["name"]]["spec"]
    [ref] = auth["secretTargetRef"]
    assert ref["parameter"] == "host" and ref["key"] == "PLAYBACK_BROKER_URL"
    worker_secrets = {s["secretRef"]["name"] for s in pod(worker)["containers"][0]["envFrom"] if "secretRef" in s}
    assert ref["name"] in worker_secrets, "KEDA reads another Secret than the worker"


def test_demo_media_is_seeded_in_dev_only() -> None:
    def seeds(overlay: str) -> list[str]:
        spec = pod(objects(overlay, "Deployment")["gateway"])
        return [c["name"] for c in spec.get("initContainers", []) if "playback/media" in " ".join(c["command"])]

    assert seeds("dev") == ["media-seed"]
    assert seeds("prod") == [], "production media comes from the CDN, not the image"
