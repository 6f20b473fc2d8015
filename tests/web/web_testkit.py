"""Running the web app's Node tooling (web/node_modules, installed by `npm ci`) from pytest."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from gateway.distributed import REPO_ROOT

WEB_DIR = REPO_ROOT / "web"
BIN = WEB_DIR / "node_modules" / ".bin"


def require_node() -> None:
    """Node.js and the installed packages: `.ci/run` and `make test` run `npm ci` in web/."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("Node.js and npm are not installed: the web app's checks need them")
    assert BIN.is_dir(), "web/node_modules is missing: run `make web-deps` (npm ci in web/)"


def run_tool(tool: str, *args: str, env: dict[str, str] | None = None, timeout: float = 300) -> str:
    """Run a web/node_modules/.bin tool in web/; fails the test with its output when it fails."""
    return _run([str(BIN / tool), *args], env=env, timeout=timeout)


def run_node(script: str, *args: str) -> str:
    """Run one of web/'s own Node scripts."""
    return _run(["node", script, *args], env=None, timeout=300)


def _run(command: list[str], *, env: dict[str, str] | None, timeout: float) -> str:
    require_node()
    tool, args = command[0], command[1:]
    result = subprocess.run(command, cwd=WEB_DIR, capture_output=True, text=True, timeout=timeout,
                            env={**os.environ, "CI": "1", "NO_COLOR": "1", "FORCE_COLOR": "0", **(env or {})},
                            check=False)
    assert result.returncode == 0, f"{tool} {' '.join(args)} failed:\n{result.stdout[-6000:]}\n{result.stderr[-4000:]}"
    return result.stdout


def build(out_dir: Path | None = None) -> Path:
    """`vite build` of the current sources (into web/dist unless told otherwise)."""
    target = out_dir or WEB_DIR / "dist"
    run_tool("vite", "build", "--outDir", str(target), "--emptyOutDir", "--logLevel", "warn")
    return target
