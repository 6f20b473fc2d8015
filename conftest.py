"""Session-wide preflight: the suite talks to real PostgreSQL, Redis and RabbitMQ (and runs nginx and
ffmpeg); when one is missing, say so in one line each, before any fixture fails with a traceback.

Point the tests elsewhere with TEST_PG_ADMIN_DSN, TEST_REDIS_URL and TEST_RABBITMQ_URL (see the
README); TEST_PREFLIGHT=0 skips the check.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent
# Tests that read files only (rendered manifests, compose, Dockerfiles): no infrastructure needed.
INFRASTRUCTURE_FREE = (ROOT / "tests" / "static",)


def pytest_collection_finish(session: pytest.Session) -> None:
    if os.environ.get("TEST_PREFLIGHT") == "0" or session.config.option.collectonly:
        return
    paths = {Path(str(item.path)) for item in session.items}
    if all(any(path.is_relative_to(free) for free in INFRASTRUCTURE_FREE) for path in paths):
        return
    from common import preflight
    from common.testing import PG_ADMIN_DSN, RABBITMQ_URL, REDIS_URL

    lines = preflight.problems([preflight.postgres(PG_ADMIN_DSN, "TEST_PG_ADMIN_DSN"),
                                preflight.redis_server(REDIS_URL, "TEST_REDIS_URL"),
                                preflight.rabbitmq(RABBITMQ_URL, "TEST_RABBITMQ_URL")])
    lines += preflight.missing_tools({"nginx": "nginx", "ffmpeg": "ffmpeg"})
    if lines:
        pytest.exit("the tests need:\n" + "\n".join(lines), returncode=pytest.ExitCode.USAGE_ERROR)
