"""The README's commands run as written: every ```bash block marked `<!-- readme-test: NAME -->` is
run, blocks of one NAME in order in one shell, the way a newcomer pastes them."""

from __future__ import annotations

import base64
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from gateway.distributed import REPO_ROOT

README = REPO_ROOT / "README.md"
MARKED = re.compile(r"<!-- readme-test: ([\w-]+) -->\n```bash\n(.*?)\n```", re.DOTALL)


def script(name: str) -> str:
    blocks = [body for marker, body in MARKED.findall(README.read_text()) if marker == name]
    assert blocks, f"no README block marked readme-test: {name}"
    return "\n".join(blocks)


def run(name: str, cwd: Path, env: dict[str, str], timeout: float = 600) -> str:
    result = subprocess.run(["bash", "-euo", "pipefail", "-c", script(name)], cwd=cwd,
                            env={**os.environ, **env}, capture_output=True, text=True, timeout=timeout,
                            check=False)
    assert result.returncode == 0, f"README block {name} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result.stdout


def test_every_marked_block_is_run() -> None:
    """A misspelt marker would silently drop a block from this test."""
    markers = re.findall(r"<!-- readme-test: ([\w-]+) -->", README.read_text())
    assert set(markers) == {"walkthrough", "compose-env"}
    assert len(markers) == len(MARKED.findall(README.read_text())), "a marker not followed by a bash block"


def test_walkthrough_runs_as_written(fresh_embedded: str, tmp_path: Path) -> None:
    """Steps 1-9 of the core path and the instructor's upload, with curl and python3 only."""
    out = run("walkthrough", tmp_path, {"B": fresh_embedded, "PATH": os.environ["PATH"]})
    assert "student@triple.academy" in out
    assert "order paid" in out
    assert "#EXTM3U" in out and "200 video/mp2t" in out
    assert "playback token after the refund: 403" in out
    assert '"status":"ready"' in out, out[-2000:]
    assert (tmp_path / "intro.mp4").exists()


def test_compose_environment_setup_runs_as_written(tmp_path: Path) -> None:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    (tmp_path / "infra" / "compose").mkdir(parents=True)
    shutil.copy(REPO_ROOT / "infra" / "compose" / ".env.example", tmp_path / "infra" / "compose")
    run("compose-env", tmp_path, {})
    env = dict(line.split("=", 1) for line in (tmp_path / "infra" / "compose" / ".env").read_text().splitlines()
               if line and not line.startswith("#"))
    assert not [key for key, value in env.items() if "change-me" in value]
    kek = env["AUTH_SIGNING_KEY_ENCRYPTION_KEYS"]
    assert len(base64.urlsafe_b64decode(kek + "=" * (-len(kek) % 4))) == 32
    key = load_pem_private_key((tmp_path / "infra" / "compose" / "secrets" / "playback-token-key.pem").read_bytes(),
                               password=None)
    assert isinstance(key, Ed25519PrivateKey)
