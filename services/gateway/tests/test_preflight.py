"""A newcomer without PostgreSQL, Redis or RabbitMQ gets one line each (what, where, how to start it
or where to point), from `make test` and from `make up`, instead of tracebacks."""

from __future__ import annotations

import os
import subprocess
import sys

from common import preflight
from common.testing import PG_ADMIN_DSN, RABBITMQ_URL, REDIS_URL
from gateway.distributed import REPO_ROOT, free_port


def test_every_configured_dependency_answers() -> None:
    """The check itself against the real servers the suite uses: nothing reported."""
    assert preflight.problems([preflight.postgres(PG_ADMIN_DSN, "TEST_PG_ADMIN_DSN"),
                               preflight.redis_server(REDIS_URL, "TEST_REDIS_URL"),
                               preflight.rabbitmq(RABBITMQ_URL, "TEST_RABBITMQ_URL")]) == []


def test_a_missing_dependency_is_one_line_without_its_password() -> None:
    port = free_port()  # nothing listens there
    [line] = preflight.problems([preflight.rabbitmq(f"amqp://guest:s3cret-pw@127.0.0.1:{port}/", "TEST_RABBITMQ_URL")])
    assert line.startswith(f"RabbitMQ does not answer at 127.0.0.1:{port}")
    assert "TEST_RABBITMQ_URL" in line and "rabbitmq-server" in line and "s3cret-pw" not in line


def test_pytest_session_stops_with_one_line_per_missing_service() -> None:
    """An integration test file needs the servers: the session stops before any test (unit-only runs skip this)."""
    down = f"127.0.0.1:{free_port()}"
    env = {**os.environ, "TEST_PG_ADMIN_DSN": f"postgresql://postgres@{down}/postgres",
           "TEST_REDIS_URL": f"redis://{down}/0"}
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                             "libs/common/tests/test_infrastructure.py"], cwd=REPO_ROOT, env=env,
                            capture_output=True, text=True, timeout=120, check=False)
    output = result.stdout + result.stderr
    assert result.returncode == 4, output
    assert "Traceback" not in output and "passed" not in output
    lines = [line for line in output.splitlines() if "does not answer" in line]
    assert [line.split()[0] for line in lines] == ["PostgreSQL", "Redis"], output
    assert "TEST_PG_ADMIN_DSN" in lines[0] and "TEST_REDIS_URL" in lines[1]


def test_make_up_stops_before_starting_anything_when_the_broker_is_down() -> None:
    broker = f"amqp://guest:guest@127.0.0.1:{free_port()}/"
    result = subprocess.run([sys.executable, "-m", "gateway.distributed", "up", "--broker-url", broker,
                             "--pg-admin-dsn", PG_ADMIN_DSN, "--redis-url", REDIS_URL], cwd=REPO_ROOT,
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 1
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("RabbitMQ does not answer") and "--broker-url" in line
