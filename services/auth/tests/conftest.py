"""Fixtures of auth's tests; the harness lives in auth_testkit.py."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

# --import-mode=importlib does not put test folders on sys.path; the kit has a unique name.
sys.path.insert(0, str(Path(__file__).parent))

from auth_testkit import Auth, open_auth


@pytest.fixture(scope="module")
async def auth() -> AsyncIterator[Auth]:
    async with open_auth() as harness:
        yield harness
