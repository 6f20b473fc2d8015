"""Static checks of playback's production wiring in the rendered prod overlay.

Renditions live in S3 in every cluster (k8s base), and Nginx `secure_link` only serves a local
disk, so in production segments must come from the CDN in front of the bucket, signed with the
CloudFront signer; these tests keep the overlay, the ExternalSecret and the settings consistent.
"""

from __future__ import annotations

import functools
import secrets
import shutil
import subprocess
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from playback.settings import PlaybackSettings

ROOT = Path(__file__).resolve().parents[2]


@functools.cache
def prod() -> list[dict[str, Any]]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed: the kustomize overlays cannot be rendered here")
    result = subprocess.run([kubectl, "kustomize", str(ROOT / "k8s" / "overlays" / "prod")],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    return [d for d in yaml.safe_load_all(result.stdout) if d]


def named(kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in prod() if d["kind"] == kind}


def container(workload: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = workload["spec"]["template"]["spec"]["containers"][0]
    return found


def config(workload: dict[str, Any]) -> dict[str, str]:
    """The ConfigMap values a workload's container gets through envFrom."""
    configmaps = named("ConfigMap")
    values: dict[str, str] = {}
    for source in container(workload).get("envFrom", []):
        if "configMapRef" in source:
            values.update(configmaps[source["configMapRef"]["name"]]["data"])
    return values


def external_keys(secret_name: str) -> set[str]:
    """The keys the ExternalSecret writing `secret_name` provides."""
    [external] = [e for e in named("ExternalSecret").values() if e["spec"]["target"]["name"] == secret_name]
    return {d["secretKey"] for d in external["spec"]["data"]}


def test_prod_serves_s3_segments_through_the_cdn_with_the_cloudfront_signer() -> None:
    env = config(named("Deployment")["playback"])
    assert env["PLAYBACK_STORAGE_BACKEND"] == "s3"
    assert env["PLAYBACK_MEDIA_SIGNER"] == "cloudfront", "Nginx secure_link cannot serve segments kept in S3"
    assert env["PLAYBACK_CLOUDFRONT_KEY_PAIR_ID"].strip()
    media, public = urlsplit(env["PLAYBACK_MEDIA_BASE_URL"]), urlsplit(env["PLAYBACK_PUBLIC_BASE_URL"])
    assert media.scheme == "https" and media.netloc, env["PLAYBACK_MEDIA_BASE_URL"]
    assert media.netloc != public.netloc, "segments come from the CDN, not the gateway's /media"
    assert not media.query and not media.fragment


def test_prod_cloudfront_key_is_mounted_from_the_external_store() -> None:
    deployment = named("Deployment")["playback"]
    key_file = PurePosixPath(config(deployment)["PLAYBACK_CLOUDFRONT_PRIVATE_KEY_FILE"])
    mounts = [m for m in container(deployment)["volumeMounts"] if m["mountPath"] == str(key_file.parent)]
    assert mounts, f"nothing is mounted at {key_file.parent}"
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    secret_name = volumes[mounts[0]["name"]]["secret"]["secretName"]
    assert key_file.name in external_keys(secret_name), f"{secret_name} does not provide {key_file.name}"
    # The key is a mounted file, never a ConfigMap value.
    assert "PLAYBACK_CLOUDFRONT_PRIVATE_KEY" not in config(deployment)


@pytest.mark.parametrize("workload", ["playback", "playback-worker", "playback-migrate"])
def test_prod_playback_settings_validate_in_every_playback_workload(workload: str,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """The API, the worker and the migrate job share the config; each must start with it (the
    settings refuse CloudFront signing without a key pair id and a key)."""
    # Migration Jobs carry the release in their name (playback-migrate-0.1.0).
    jobs = {f"{j['metadata']['labels']['app.kubernetes.io/name']}-migrate": j for j in named("Job").values()}
    found = {**named("Deployment"), **jobs}[workload]
    for name in list(__import__("os").environ):
        if name.startswith("PLAYBACK_") or name == "ENVIRONMENT":
            monkeypatch.delenv(name)
    for key, value in config(found).items():
        monkeypatch.setenv(key, value)
    for key in external_keys("playback-secrets"):  # values only the external store holds
        monkeypatch.setenv(key, "postgresql+psycopg://triple:" + secrets.token_hex(8) + "@db:5432/triple"
                           if key.endswith("_URL") else secrets.token_hex(16))
    settings = PlaybackSettings()
    assert settings.environment == "production"
    assert settings.media_signer == "cloudfront" and settings.storage_backend == "s3"
    assert settings.resolved_media_base_url == "https://media.academy.example.com"
